import itertools
import math

import numpy as np
import pytest

from tower_zoo.evaluation.preranking import auc, gauc, logloss


def _auc_pairs(labels, scores):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_by_hand_with_ties():
    # positives 0.9, 0.5; negatives 0.5, 0.1 -> pairs: (0.9>0.5) 1, (0.9>0.1) 1, (0.5=0.5) 0.5, (0.5>0.1) 1
    assert auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1])) == pytest.approx(3.5 / 4)
    assert math.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_auc_and_gauc_match_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + labels * 0.5, 1)     # rounding makes many ties
    users = rng.integers(0, 40, 500)
    assert auc(labels, scores) == pytest.approx(_auc_pairs(labels, scores), rel=1e-12)
    total = weight = 0.0
    for u in np.unique(users):
        rows = users == u
        if 0 < labels[rows].sum() < rows.sum():
            total += rows.sum() * _auc_pairs(labels[rows], scores[rows])
            weight += rows.sum()
    value, used = gauc(labels, scores, users)
    assert value == pytest.approx(total / weight, rel=1e-12)
    assert used == sum(1 for u in np.unique(users) if 0 < labels[users == u].sum() < (users == u).sum())


def test_gauc_skips_single_class_users_and_weights_by_impressions():
    labels = np.array([1, 0, 0, 1, 1, 1, 0, 1, 0])
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.8, 0.7, 0.6, 0.1, 0.5])
    users = np.array([1, 1, 1, 2, 2, 2, 3, 3, 3])
    # user 1: AUC 1 (3 impressions); user 2: all positive -> skipped; user 3: pos 0.1 vs neg 0.6, 0.5 -> 0
    value, used = gauc(labels[[0, 1, 2, 6, 7, 8]], scores[[0, 1, 2, 6, 7, 8]], users[[0, 1, 2, 6, 7, 8]])
    assert (value, used) == (pytest.approx(0.5), 2)
    value, used = gauc(labels, scores, users)
    assert used == 2 and value == pytest.approx(0.5)


def test_logloss_from_logits():
    got = logloss(np.array([1, 0]), np.array([0.0, 2.0]))
    assert got == pytest.approx((math.log(2) + math.log(1 + math.exp(2))) / 2)
    assert logloss(np.array([1]), np.array([800.0])) == pytest.approx(0.0)   # no overflow


@pytest.mark.parametrize("labels,scores,message", [
    ([1, 2], [0.1, 0.2], "labels must be 0/1"),
    ([1, 0], [0.1, np.nan], "NaN"),
    ([1, 0], [0.1], "differ in length"),
    ([], [], "no impressions"),
])
def test_bad_inputs(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        auc(np.array(labels), np.array(scores))


def test_streamed_exposures_give_the_same_auc_gauc_and_logloss():
    import tower_zoo
    from tower_zoo.data import time_split, synthetic_interactions
    from tower_zoo.evaluation.preranking import PreRankingEvaluator

    split = time_split(synthetic_interactions(num_users=60, num_items=30, interactions_per_user=8))
    model = tower_zoo.create_model("logistic_regression", split.data.feature_spec)
    model.build_weights()
    features, labels = split.examples("test"), split.labels("test")
    whole = PreRankingEvaluator().evaluate(model, features, labels)
    rows = len(features["user_id"])
    chunks = [({k: v[s:s + 37] for k, v in features.items()}, {k: v[s:s + 37] for k, v in labels.items()})
              for s in range(0, rows, 37)]
    streamed = PreRankingEvaluator(batch_size=16).evaluate_chunks(model, chunks)
    for name, values in whole.metrics.items():
        for metric, value in values.items():
            assert streamed.metrics[name][metric] == pytest.approx(value, rel=1e-5)
