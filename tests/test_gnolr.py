import collections

import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.tasks.ordinal import NestedOrdinalLoss, nested_ordinal_log_likelihood
from tower_zoo.training import Trainer

from multifeedback_helpers import assert_decomposable


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def ordinal_probability(z, category, top):
    """P(category) of an ordinal regression truncated at level ``top`` (levels above merged), by hand."""
    at_least = [1.0] + [sigmoid(v) for v in z[:top]] + [0.0]   # P(>= 0) .. P(>= top), P(>= top + 1) = 0
    return at_least[category] - at_least[category + 1]


def test_nested_log_likelihood_by_hand():
    z = np.array([[1.2, -0.7, -3.1], [0.3, -1.5, -2.0], [2.0, 0.4, -0.2]])
    levels = np.array([1, 2, 3])
    got = nested_ordinal_log_likelihood(tf.constant(z, tf.float32), tf.constant(levels)).numpy()
    expected = [sum(np.log(ordinal_probability(row, min(y, t), t)) for t in (1, 2, 3)) for row, y in zip(z, levels)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # a flat (non-nested) likelihood, only the full truncation, gives other numbers
    flat = [np.log(ordinal_probability(row, y, 3)) for row, y in zip(z, levels)]
    assert not np.allclose(got, flat)


def test_pointwise_loss_counts_negatives_once_per_level_and_listwise_per_level():
    cumulative = tf.constant([[[0.5, 0.2, 0.1], [0.1, -0.3, -0.6], [-0.2, 0.1, 0.4]]], tf.float32)  # [1, C=3, K=3]
    thresholds = np.array([0.7, 3.5, 6.2])
    logits = 2.5 * cumulative - thresholds
    loss = NestedOrdinalLoss(listwise_weight=0.0)
    negatives = tf.constant([[False, True, True]])
    value = loss(cumulative, logits, tf.constant([2]), tf.constant([0]), negatives, 0.05).numpy()
    z = logits.numpy()[0]
    positive = -sum(np.log(ordinal_probability(z[0], min(2, t), t)) for t in (1, 2, 3))
    negative = np.mean([-3 * np.log(1 - sigmoid(z[j, 0])) for j in (1, 2)])
    assert value == pytest.approx(positive + negative, rel=1e-5)
    listwise = NestedOrdinalLoss(listwise_weight=1.0)(cumulative, logits, tf.constant([2]), tf.constant([0]),
                                                      negatives, 0.05).numpy()
    s = cumulative.numpy()[0] / 0.05
    softmax = [-(s[0, t] - np.log(np.exp(s[:, t]).sum())) for t in (0, 1)]   # levels 1 and 2 only: row is at 2
    assert listwise == pytest.approx(value + sum(softmax), rel=1e-5)


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=80, num_items=60, interactions_per_user=8))


def _model(split, **overrides):
    return tower_zoo.create_model("gnolr", split.data.feature_spec, head_dim=8, hidden_units=(16,), **overrides)


def test_one_dot_product_ordered_thresholds_and_decomposable(split):
    model = _model(split)
    examples = {k: v[:6] for k, v in split.examples("train").items()}
    users, items = model.level_user_embedding(examples).numpy(), model.level_item_embedding(examples).numpy()
    cosines = np.einsum("bkd,nkd->bnk", users, items)
    np.testing.assert_allclose(np.linalg.norm(users, axis=-1), 1.0, rtol=1e-5)
    # retrieval: one dot product over the unified space = the top level's cumulative similarity
    np.testing.assert_allclose(model.score_matrix(examples, examples).numpy(), cosines.sum(-1) / 0.05,
                               rtol=1e-4, atol=1e-4)
    thresholds = model.thresholds.value().numpy()
    assert np.all(np.diff(thresholds) > 2.5)                # gaps > S keep P(>= t) >= P(>= t + 1)
    probabilities = model.level_probabilities(examples, examples).numpy()
    expected = sigmoid(2.5 * np.cumsum(np.einsum("bkd,bkd->bk", users, items), axis=-1) - thresholds)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4)
    assert np.all(np.diff(probabilities, axis=1) <= 0)
    assert_decomposable(model, split.data.feature_spec, examples)


def test_trains_on_nested_levels_and_refuses_bad_ones(split):
    labels = split.labels("train")
    model = _model(split)
    trainer = Trainer(model, epochs=3, batch_size=32)
    history = trainer.fit(split.examples("train"), objective_labels=labels, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    broken = dict(labels, love=labels["love"].copy())
    row = int(np.flatnonzero(labels["like"] == 0)[0])
    broken["love"][row] = 1.0
    with pytest.raises(ValueError, match=f"row {row} is at level 'love' but not at the lower level 'like'"):
        Trainer(_model(split), epochs=1, batch_size=32).fit(split.examples("train"), objective_labels=broken,
                                                             verbose=False)
    with pytest.raises(ValueError, match="base_rates must decrease"):
        _model(split, base_rates=(0.5, 0.6, 0.1))


def test_level_report_against_the_standard_evaluator_and_by_hand():
    from tower_zoo.evaluation import ExactIndex, RetrievalEvaluator
    from tower_zoo.evaluation.levels import level_report

    split = leave_last_out(synthetic_interactions(num_users=50, num_items=40, interactions_per_user=9), num_test=3)
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(8,))
    levels = 1 + (split.test["rating"].to_numpy() >= 4) + (split.test["rating"].to_numpy() >= 5)
    # the synthetic users may rate an item twice: one level per (user, item), the highest
    levels = split.test.assign(level=levels).groupby(["user_id", "item_id"])["level"].transform("max").to_numpy()
    oracle = {}  # a level score that is the truth: AUC 1 at every level

    def truth(users, items):
        return np.stack([oracle[(u, i)] >= t for u, i in zip(users["user_id"], items["item_id"])
                         for t in (1, 2, 3)]).reshape(-1, 3).astype(float)

    codes = split.examples("test")
    for u, i, level in zip(codes["user_id"], codes["item_id"], levels):
        oracle[(u, i)] = level
    oracle = collections.defaultdict(int, oracle)
    report = level_report(model, split, levels, ("rated", "like", "love"), truth, ks=(10,), negatives=5)
    queries, targets, exclude = split.queries("test")
    items, ids = split.candidates()
    standard = RetrievalEvaluator(ks=(10,), use_scann=False).evaluate(model, queries, items, ids, targets, exclude)
    assert report["rated/recall@10"] == pytest.approx(standard.metrics["exact"]["recall@10"])
    assert report["rated/auc"] == report["like/auc"] == report["love/auc"] == 1.0
    # level 3 by hand: only users with a loved held-out item, only those items as targets
    loved = split.test[levels >= 3]
    users = list(dict.fromkeys(split.test["user_id"]))
    q = [users.index(u) for u in dict.fromkeys(loved["user_id"])]
    loved_targets = [loved["item_id"][loved["user_id"] == users[x]].to_numpy() for x in q]
    top, _ = ExactIndex(np.asarray(model.item_embedding(items)), ids).search(
        np.asarray(model.user_embedding(queries)), 10, exclude)
    by_hand = np.mean([len(set(top[x][:10]) & set(t)) / len(set(t)) for x, t in zip(q, loved_targets)])
    assert report["love/recall@10"] == pytest.approx(by_hand)
    assert report["love/users"] == len(q)
