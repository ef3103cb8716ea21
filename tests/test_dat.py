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
