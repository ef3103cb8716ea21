"""cold and three_tower: what they compute, what they cache, how they train."""

import math

import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.data.schema.keys import LABEL, objective_label
from tower_zoo.models.cold import rank_fields, selected_config
from tower_zoo.tasks import RankingTask
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return time_split(synthetic_interactions(num_users=80, num_items=40, interactions_per_user=10), 0.2)


def test_cold_scores_pairs_through_se_weighted_fields_and_ranks_them(split):
    model = tower_zoo.create_model("cold", split.data.feature_spec, hidden_units=(8,))
    model.build_weights()
    batch = {k: v[:16] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(batch), model.item_embedding(batch)
    fields, importance = model.scored_fields(users, items)
    assert fields.shape == (16, len(model.field_names), 16) and importance.shape == (16, len(model.field_names))
    assert np.all((importance.numpy() > 0) & (importance.numpy() < 1))
    # score_matrix's diagonal is the row-aligned score: the all-pairs path tiles the same computation
    diagonal = np.diag(model.logits(users, items).numpy())
    np.testing.assert_allclose(diagonal, model.pair_logits(users, items).numpy(), rtol=1e-5)
    ranking = rank_fields(model, batch)
    assert sorted(name for name, _ in ranking) == sorted(model.field_names)
    assert [value for _, value in ranking] == sorted((value for _, value in ranking), reverse=True)
    kept = selected_config(model, ranking, budget=3)
    assert "user_id" in kept["user_features"] and "item_id" in kept["item_features"]
    smaller = tower_zoo.create_model("cold", split.data.feature_spec, hidden_units=(8,), **kept)
    assert len(smaller.field_names) <= 3 + 2                                  # the budget plus the two ids


def test_three_tower_trains_one_head_per_objective_on_its_own_labels(split):
    model = tower_zoo.create_model("three_tower", split.data.feature_spec, objectives=("like", "love"))
    model.build_weights()
    examples, labels = split.examples("train"), split.labels("train")
    batch = {**{k: tf.constant(v[:32]) for k, v in examples.items()}, LABEL: tf.constant(labels["like"][:32]),
             objective_label("like"): tf.constant(labels["like"][:32]),
             objective_label("love"): tf.constant(labels["love"][:32])}
    heads = model.objective_logits(model.user_embedding(batch), model.item_embedding(batch)).numpy()
    by_hand = sum(np.mean(np.logaddexp(0.0, heads[:, k]) - labels[name][:32] * heads[:, k])
                  for k, name in enumerate(("like", "love")))
    assert float(RankingTask()(model, batch)["ranking_loss"]) == pytest.approx(by_hand, rel=1e-5)
    with pytest.raises(ValueError, match=r"pass objective_labels= with labels for \['like', 'love'\]"):
        Trainer(model, epochs=1, batch_size=64).fit(examples, labels=labels["like"], verbose=False)
    history = Trainer(model, epochs=3, batch_size=64).fit(
        examples, labels=labels["like"], objective_labels={"like": labels["like"], "love": labels["love"]},
        verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
