import numpy as np
import pandas as pd
import pytest

import tower_zoo
from tower_zoo.data import build_interaction_data
from tower_zoo.data.memory.item_to_item import engaged_pairs, genre_overlap, item_to_item_split, title_words
from tower_zoo.evaluation.relevance import relevance_engagement_report
from tower_zoo.tasks.samplers import popularity_ipw_weights
from tower_zoo.training import Trainer
from tower_zoo.training.relevance import RelevanceSwitches, relevance_recipe

from multifeedback_helpers import assert_decomposable


def test_pairs_words_and_ipw_by_hand():
    ratings = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2], "item_id": [10, 11, 12, 13, 10, 12],
                            "rating": [5, 2, 4, 4, 4, 5], "timestamp": [1, 2, 3, 4, 1, 2]})
    pairs = engaged_pairs(ratings, 4.0)       # user 1 engaged 10, 12, 13 (11 is not engaged); user 2: 10, 12
    assert pairs[["user", "seed", "target"]].values.tolist() == [[1, 10, 12], [1, 12, 13], [2, 10, 12]]
    assert pairs["last"].tolist() == [False, True, True]
    assert title_words(["Toy Story (1995)", "Story of Us, The (1999)", "Heat (1995)"]) == [
        ("story",), ("story",), ("<none>",)]
    weights = popularity_ipw_weights(np.array([0, 1, 4]), 0.5, max_weight=10)
    raw = np.array([0, (1 / 2.5) ** -0.5, (4 / 2.5) ** -0.5])
    np.testing.assert_allclose(weights, raw * 5 / (1 * raw[1] + 4 * raw[2]))
    assert np.dot([0, 1, 4], weights) == pytest.approx(5)            # the mean row keeps weight 1


@pytest.fixture(scope="module")
def movies():
    rng = np.random.default_rng(0)
    genres = [("Drama",), ("Comedy",), ("Drama", "Comedy"), ("Horror",)]
    items = pd.DataFrame({"item_id": np.arange(1, 41), "genres": [genres[i % 4] for i in range(40)],
                          "year": rng.integers(1950, 1998, 40), "title": [f"Film {i % 7} Night" for i in range(40)]})
    users = pd.DataFrame({"user_id": np.arange(1, 61), "age": rng.integers(18, 60, 60)})
    ratings = pd.DataFrame({"user_id": np.repeat(np.arange(1, 61), 10), "item_id": rng.integers(1, 41, 600),
                            "rating": rng.integers(3, 6, 600).astype(float), "timestamp": np.arange(600)})
    return build_interaction_data("movies", ratings, users, items, sequence_columns=("genres",), history_length=0)


def test_switches_change_what_training_sees_and_the_report(movies):
    split = item_to_item_split(movies)
    predicate = genre_overlap(movies)
    assert predicate(np.array([1, 1, 4]), np.array([3, 2, 1])).tolist() == [True, False, False]
    plain = relevance_recipe(split, predicate, RelevanceSwitches())
    assert "title_words" not in plain["model_overrides"]["item_features"] and plain["kept_share"] == 1.0
    strict = relevance_recipe(split, predicate, RelevanceSwitches(True, True, 0.5, True))
    kept = predicate(split.train["user_id"].to_numpy(), split.train["item_id"].to_numpy())
    assert strict["kept_share"] == pytest.approx(kept.mean())
    assert len(strict["examples"]["item_id"]) == kept.sum() and strict["model_overrides"] == {}
    assert strict["trainer_options"]["negatives"] == "mixed" and strict["trainer_options"]["alpha"] == 0.0
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16,), **strict["model_overrides"])
    items, _ = split.candidates()
    history = Trainer(model, epochs=2, batch_size=32, num_global_negatives=16,
                      **{k: v for k, v in strict["trainer_options"].items() if k != "num_global_negatives"}).fit(
        strict["examples"], item_table=items, verbose=False)
    assert np.isfinite(history[-1]["loss"])
    assert_decomposable(model, split.data.feature_spec, {k: v[:5] for k, v in split.examples("train").items()})
    report = relevance_engagement_report(model, split, predicate, ks=(5,))
    assert 0 <= report["relevance@5"] <= 1 and 0 <= report["recall@5"] <= 1
    with pytest.raises(ValueError, match="popularity_ipw must be a number"):
        RelevanceSwitches(popularity_ipw="0.5")


def test_ipw_changes_the_loss_by_row_weights(movies):
    split = item_to_item_split(movies)
    examples = {k: v[:64] for k, v in split.examples("train").items()}
    losses = {}
    for power in (0.0, 1.0):
        model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(8,))
        trainer = Trainer(model, epochs=1, batch_size=64, popularity_ipw=power, learning_rate=1e-9)
        losses[power] = trainer.fit(examples, verbose=False)[0]["loss"]
    assert losses[0.0] != pytest.approx(losses[1.0], rel=1e-6)
    with pytest.raises(ValueError, match="popularity_ipw_max must be >= 1.0"):
        Trainer(tower_zoo.create_model("dssm", split.data.feature_spec), popularity_ipw_max=0.5)
