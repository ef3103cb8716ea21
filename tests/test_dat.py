import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.models.dat import category_alignment_loss
from tower_zoo.training import Trainer


def _cov(rows):
    rows = np.asarray(rows, np.float64)
    centered = rows - rows.mean(axis=0)
    return centered.T @ centered / (len(rows) - 1)


def test_category_alignment_loss_on_a_hand_built_batch():
    vectors = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 2.0],   # category 0 (major: 4 items)
                        [0.0, 1.0],                            # categories 0 and 1
                        [5.0, 5.0], [7.0, 9.0],               # category 1 -> with row 3: 3 items
                        [4.0, 4.0]], np.float32)               # category 2: one item, skipped
    membership = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    major = _cov(vectors[[0, 1, 2, 3]])
    minor = _cov(vectors[[3, 4, 5]])
    expected = np.sum((major - minor) ** 2)
    # Worked by hand for category 1: mean (4, 5); deviations (-4,-4), (1,0), (3,4) -> cov [[13, 14], [14, 16]].
    np.testing.assert_allclose(minor, [[13, 14], [14, 16]])
    got = category_alignment_loss(tf.constant(vectors), tf.constant(membership))
    assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=60, num_items=40, interactions_per_user=8))


def test_amm_moves_only_the_augmented_vectors(split):
    model = tower_zoo.create_model("dat", split.data.feature_spec, hidden_units=(16, 8), use_cal=False)
    examples = {k: tf.constant(v[:16]) for k, v in split.examples("train").items()}
    model.build_weights()
    with tf.GradientTape() as tape:
        towers = model(examples, training=True)
        loss = model.mimic_loss(towers["user"], towers["item"], examples)
    variables = model.trainable_variables
    gradients = dict(zip([v.name for v in variables], tape.gradient(loss, variables)))
    moved = {name for name, g in gradients.items() if g is not None and float(tf.reduce_sum(tf.abs(
        tf.convert_to_tensor(g)))) > 0}
    assert moved and all("augmented" in name for name in moved), moved
    assert any("user_augmented" in n for n in moved) and any("item_augmented" in n for n in moved)


def test_mimic_loss_by_hand_pairs_each_augmented_vector_with_the_opposite_tower(split):
    model = tower_zoo.create_model("dat", split.data.feature_spec, hidden_units=(16, 8), use_cal=False)
    examples = {k: v[:6] for k, v in split.examples("train").items()}
    # Non-zero augmented vectors, so a pairing with the wrong tower cannot agree by accident.
    model.build_weights()
    for table in (model.user_augment, model.item_augment):
        table.embeddings.assign(np.random.default_rng(0).normal(size=table.embeddings.shape).astype(np.float32))
    towers = model(examples)
    p_u, p_v = towers["user"].numpy(), towers["item"].numpy()
    a_u = model.user_augment.embeddings.numpy()[examples["user_id"]]
    a_v = model.item_augment.embeddings.numpy()[examples["item_id"]]
    labels = np.array([1, 0, 1, 1, 0, 0], np.float32)
    # (1/B) Σ_b y_b (||a_u - p_v||² + ||a_v - p_u||²): squared norms summed over the 8 dimensions, mean over
    # all 6 rows (the three y = 0 rows count in the denominator, as the paper's 1/T).
    per_row = ((a_u - p_v) ** 2).sum(axis=1) + ((a_v - p_u) ** 2).sum(axis=1)
    expected = float((labels * per_row).sum() / 6)
    got = float(model.mimic_loss(towers["user"], towers["item"], dict(examples, __label__=labels)))
    assert got == pytest.approx(expected, rel=1e-5)
    # What plausible wrong implementations would give, all far from it on this batch:
    swapped = float((labels * (((a_u - p_u) ** 2).sum(1) + ((a_v - p_v) ** 2).sum(1))).sum() / 6)
    ungated = float(per_row.mean())
    mean_over_positives = float((labels * per_row).sum() / labels.sum())
    for wrong in (swapped, ungated, mean_over_positives, expected / 8):
        assert abs(wrong - expected) > 0.05 * expected
    # Retrieval batches carry no label: every row is a positive.
    assert float(model.mimic_loss(towers["user"], towers["item"], examples)) == pytest.approx(ungated, rel=1e-5)


def test_mimic_loss_leaves_disliked_rows_alone(split):
    model = tower_zoo.create_model("dat", split.data.feature_spec, hidden_units=(16, 8), use_cal=False)
    examples = {k: v[:8] for k, v in split.examples("train").items()}
    model.build_weights()
    labels = np.zeros(8, np.float32)
    with tf.GradientTape() as tape:
        towers = model(examples, training=True)
        loss = model.auxiliary_loss(towers["user"], towers["item"], dict(examples, __label__=labels))
    assert float(loss) == 0.0
    gradients = tape.gradient(loss, [model.user_augment.embeddings, model.item_augment.embeddings])
    assert all(g is None or float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) == 0.0 for g in gradients)
    # One liked row: only that row's user and item vectors move.
    labels[3] = 1.0
    with tf.GradientTape() as tape:
        towers = model(examples, training=True)
        loss = model.auxiliary_loss(towers["user"], towers["item"], dict(examples, __label__=labels))
    user_gradient = tf.convert_to_tensor(tape.gradient(loss, model.user_augment.embeddings)).numpy()
    moved = np.flatnonzero(np.abs(user_gradient).sum(axis=1))
    np.testing.assert_array_equal(moved, [examples["user_id"][3]])


def test_augmented_vector_feeds_the_tower(split):
    model = tower_zoo.create_model("dat", split.data.feature_spec, hidden_units=(16, 8))
    examples = {k: v[:4] for k, v in split.examples("train").items()}
    before = model.user_embedding(examples).numpy()
    model.user_augment.embeddings.assign(model.user_augment.embeddings + 1.0)
    assert not np.allclose(model.user_embedding(examples).numpy(), before)
    assert before.shape == (4, 8)


@pytest.mark.parametrize("flags", [{}, {"use_amm": False}, {"use_cal": False}, {"use_amm": False, "use_cal": False}])
def test_ablation_flags_train(split, flags):
    model = tower_zoo.create_model("dat", split.data.feature_spec, hidden_units=(16, 8), **flags)
    examples = split.examples("train")
    history = Trainer(model, epochs=3, batch_size=32).fit(examples, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    aux = model.auxiliary_loss(*model({k: v[:32] for k, v in examples.items()}).values(),
                               {k: v[:32] for k, v in examples.items()})
    assert (float(aux) == 0.0) == (not flags.get("use_amm", True) and not flags.get("use_cal", True))


def test_bad_category_feature(split):
    with pytest.raises(ValueError, match="must be a categorical or sequence item feature"):
        tower_zoo.create_model("dat", split.data.feature_spec, category_feature="segment")
