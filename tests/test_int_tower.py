import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.layers import LightSE
from tower_zoo.layers import max_similarity
from tower_zoo.models.int_tower import contrastive_interaction_loss
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return time_split(synthetic_interactions(num_users=80, num_items=40, interactions_per_user=10))


def _model(split, **overrides):
    return tower_zoo.create_model("int_tower", split.data.feature_spec, hidden_units=(16, 8), num_heads=3,
                                  head_dim=4, **overrides)


def test_light_se_by_hand():
    layer = LightSE()
    fields = tf.constant([[[1.0, 3.0], [2.0, 2.0]]])            # [B=1, F=2, D=2]; squeezed z = [2, 2]
    layer(fields)
    layer.excitation.set_weights([np.eye(2, dtype=np.float32), np.array([0.0, np.log(3.0)], np.float32)])
    # a = softmax([2, 2 + log 3]) = [1/4, 3/4]; output = E * (1 + a)
    np.testing.assert_allclose(layer(fields).numpy(), [[[1.25, 3.75], [3.5, 3.5]]], rtol=1e-5)


def test_max_sim_score_by_hand():
    users = tf.constant([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])   # three user heads (layers x heads)
    items = tf.constant([[[2.0, 0.0], [0.0, 1.0]],                 # item 0: two heads
                         [[0.0, -1.0], [-1.0, 0.0]]])              # item 1
    # item 0: dots per user head [2, 0], [0, 1], [2, 1] -> max over item heads 2 + 1 + 2 = 5.
    #   (a max over the user heads instead would give max(2, 0, 2) + max(0, 1, 1) = 3.)
    # item 1: [0, -1], [-1, 0], [-1, -1] -> 0 + 0 + (-1) = -1   (over user heads: 0 + 0 = 0)
    np.testing.assert_allclose(max_similarity(users, items).numpy(), [[5.0, -1.0]], rtol=1e-6)
    np.testing.assert_allclose(max_similarity(users, items[tf.newaxis]).numpy(), [[5.0, -1.0]], rtol=1e-6)


def test_fe_block_score_is_the_raw_max_sim_sum_and_normalization_is_an_option(split):
    examples = {k: v[:5] for k, v in split.examples("train").items()}
    model = _model(split)
    users, items = model.user_embedding(examples).numpy(), model.item_embedding(examples).numpy()
    assert not np.allclose(np.linalg.norm(users, axis=-1), 1.0, atol=1e-3)   # raw projections, as the code
    expected = np.einsum("bud,nhd->bnuh", users, items).max(-1).sum(-1)      # T = 1, bias 0 at start
    np.testing.assert_allclose(model.score_matrix(examples, examples).numpy(), expected, rtol=1e-4, atol=1e-5)
    cosine = _model(split, normalize_heads=True, temperature=0.5)
    users, items = cosine.user_embedding(examples).numpy(), cosine.item_embedding(examples).numpy()
    np.testing.assert_allclose(np.linalg.norm(users, axis=-1), 1.0, rtol=1e-5)
    expected = np.einsum("bud,nhd->bnuh", users, items).max(-1).sum(-1) / 0.5
    np.testing.assert_allclose(cosine.score_matrix(examples, examples).numpy(), expected, rtol=1e-4, atol=1e-5)


def _info_nce_by_hand(users, items, item_ids, anchors, temperature):
    users = users / np.linalg.norm(users, axis=1, keepdims=True)
    items = items / np.linalg.norm(items, axis=1, keepdims=True)
    losses = []
    for b in np.flatnonzero(anchors):
        columns = [c for c in range(len(items)) if c == b or item_ids[c] != item_ids[b]]
        logits = np.array([users[b] @ items[c] for c in columns]) / temperature
        losses.append(np.log(np.exp(logits).sum()) - users[b] @ items[b] / temperature)
    return float(np.mean(losses))


def test_cir_by_hand_every_row_item_is_a_candidate_accidental_hits_masked():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    item_ids = np.array([7, 8, 7, 9, 8])                          # rows 0 and 2 share an item, 1 and 4 too
    anchors = np.array([True, False, True, True, False])          # clicked rows
    got = float(contrastive_interaction_loss(tf.constant(users, tf.float32), tf.constant(items, tf.float32),
                                             tf.constant(item_ids), tf.constant(anchors), 0.5))
    expected = _info_nce_by_hand(users, items, item_ids, anchors, 0.5)
    assert got == pytest.approx(expected, rel=1e-5)
    # What plausible wrong versions give: only clicked rows as candidates, no accidental-hit mask, all rows
    # as anchors.
    clicked = _info_nce_by_hand(users[anchors], items[anchors], item_ids[anchors], np.ones(3, bool), 0.5)
    unmasked = _info_nce_by_hand(users, items, np.arange(5), anchors, 0.5)
    every_row = _info_nce_by_hand(users, items, item_ids, np.ones(5, bool), 0.5)
    assert min(abs(w - expected) for w in (clicked, unmasked, every_row)) > 0.01
    none = contrastive_interaction_loss(tf.constant(users, tf.float32), tf.constant(items, tf.float32),
                                        tf.constant(item_ids), tf.constant([False] * 5), 0.5)
    assert float(none) == 0.0


def test_shapes_and_item_side_is_cacheable(split):
    model = _model(split)
    examples = {k: v[:5] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(examples), model.item_embedding(examples)
    assert users.shape == (5, 2 * 3, 4) and items.shape == (5, 3, 4)   # L=2 layers x H=3 heads
    pair = model.score(examples, examples).numpy()
    full = model.score_matrix(examples, examples).numpy()
    np.testing.assert_allclose(pair, np.diag(full), rtol=1e-5)
    plain = _model(split, use_fe_block=False)
    assert plain.user_embedding(examples).shape == (5, 1, 4) and plain.item_embedding(examples).shape == (5, 1, 4)


def test_cir_reads_the_last_layer_heads_of_clicked_rows(split):
    model = _model(split, cir_weight=0.5)
    examples = {k: v[:8] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(examples).numpy(), model.item_embedding(examples).numpy()
    labels = np.array([1, 0, 1, 1, 0, 1, 0, 0], np.float32)
    got = float(model.auxiliary_loss(tf.constant(users), tf.constant(items), dict(examples, __label__=labels)))
    last_layer = users[:, -3:].reshape(8, -1)                    # L=2 layers x H=3 heads: the last 3 heads
    expected = 0.5 * _info_nce_by_hand(last_layer, items.reshape(8, -1), examples["item_id"], labels > 0.5, 0.07)
    assert got == pytest.approx(expected, rel=1e-4)
    first_layer = 0.5 * _info_nce_by_hand(users[:, :3].reshape(8, -1), items.reshape(8, -1), examples["item_id"],
                                          labels > 0.5, 0.07)
    assert abs(first_layer - expected) > 1e-3
    assert float(model.auxiliary_loss(users, items, dict(examples, __label__=np.zeros(8, np.float32)))) == 0.0
    assert float(_model(split, use_cir=False).auxiliary_loss(users, items, dict(examples, __label__=labels))) == 0.0


@pytest.mark.parametrize("flags", [{}, {"use_light_se": False, "use_fe_block": False, "use_cir": False}])
def test_ranking_training_learns(split, flags):
    model = _model(split, **flags)
    history = Trainer(model, task="ranking", epochs=4, batch_size=64, learning_rate=3e-3).fit(
        split.examples("train"), labels=split.labels("train")["like"], verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]


def test_ranking_task_validation(split):
    model = _model(split)
    with pytest.raises(ValueError, match="needs labels="):
        Trainer(model, task="ranking", epochs=1).fit(split.examples("train"), verbose=False)
    with pytest.raises(ValueError, match="do not apply"):
        Trainer(model, task="ranking", negatives="mixed")
    with pytest.raises(ValueError, match="labels must be 0/1"):
        Trainer(model, task="ranking", epochs=1).fit(split.examples("train"),
                                                     labels=split.train["rating"].to_numpy(), verbose=False)
