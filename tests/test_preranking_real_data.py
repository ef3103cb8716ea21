"""Pre-ranking on real MovieLens-100K exposures (time split): each pre-ranking model must beat logistic
regression on test AUC, every model getting the same budget (up to 4 epochs, best validation AUC kept)."""

import pytest

import tower_zoo
from tower_zoo.data import movielens_100k, time_split
from tower_zoo.evaluation.preranking import PreRankingEvaluator, auc
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return time_split(movielens_100k(), test_fraction=0.2, valid_fraction=0.1)


def _test_auc(split, name):
    evaluator = PreRankingEvaluator()
    model = tower_zoo.create_model(name, split.data.feature_spec)
    if name == "rq_target_attention":
        model.build_weights()
        model.initialize_codebooks(split.candidates()[0])
    valid, valid_like = split.examples("valid"), split.labels("valid")["like"]
    Trainer(model, task="ranking", epochs=4, seed=42).fit_with_early_stopping(
        split.examples("train"), lambda m: auc(valid_like, evaluator.predict(m, valid)), patience=1,
        labels=split.labels("train")["like"], verbose=False)
    return evaluator.evaluate(model, split.examples("test"), split.labels("test")).metrics["like"]


@pytest.fixture(scope="module")
def baseline(split):
    return _test_auc(split, "logistic_regression")


def test_logistic_regression_is_a_real_baseline(baseline):
    assert 0.62 < baseline["auc"] < 0.72          # rating >= 4 is predictable, but not trivially
    assert baseline["gauc"] > 0.6


@pytest.mark.parametrize("name", ["int_tower", "hit", "rq_target_attention"])
def test_preranking_model_beats_logistic_regression(split, baseline, name):
    metrics = _test_auc(split, name)
    assert metrics["auc"] > baseline["auc"], (name, metrics["auc"], baseline["auc"])
    assert metrics["logloss"] < 0.69                # better than a constant coin flip
