import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.evaluation import RetrievalEvaluator
from tower_zoo.layers import ContextEncoder
from tower_zoo.models.poly_encoder import CodeAttention, candidate_attention_scores
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=80, num_items=300, interactions_per_user=8))


def _model(split, **overrides):
    return tower_zoo.create_model("poly_encoder", split.data.feature_spec, embedding_dim=8, hidden_units=(16, 8),
                                  num_codes=3, **overrides)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_shapes_and_score_formula(split):
    model = _model(split)
    examples = {k: v[:4] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(examples).numpy(), model.item_embedding(examples).numpy()
    assert users.shape == (4, 4, 8) and items.shape == (4, 8)       # m = 3 codes + 1 static vector
    # The paper's vectors are not normalized: nothing forces unit norms.
    assert not np.allclose(np.linalg.norm(users, axis=-1), 1.0, atol=1e-3)
    # score = (Σ_j softmax_j(y_j·v) y_j) · v / T with T = 1, by hand for every user and item
    dots = np.einsum("bmd,nd->bnm", users, items)
    expected = (_softmax(dots, axis=-1) * dots).sum(-1)
    scores = model.score_matrix(examples, examples).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)
    over_candidates = (_softmax(dots, axis=1) * dots).sum(-1)        # the softmax over the wrong axis
    assert not np.allclose(over_candidates, expected, rtol=1e-3)
    np.testing.assert_allclose(model.score(examples, examples).numpy(), np.diag(scores), rtol=1e-4, atol=1e-6)


def test_candidate_attention_is_unnormalized_dot_product_attention():
    contexts = tf.constant([[[3.0, 0.0], [0.0, 1.0]]])                # y_1, y_2 of one user
    items = tf.constant([[2.0, 0.0], [0.0, 4.0]])
    # item 0: y·v = [6, 0] -> weights [e^6, 1] / (e^6 + 1) -> score 6 e^6 / (e^6 + 1) = 6 σ(6)
    # item 1: y·v = [0, 4] -> score 4 σ(4). L2-normalizing first would give σ(1) and σ(1) (cosines 1 and 0).
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(candidate_attention_scores(contexts, items).numpy(),
                               [[6 * sigmoid(6.0), 4 * sigmoid(4.0)]], rtol=1e-6)


def test_code_attention_softmax_runs_over_history_positions():
    layer = CodeAttention(2)
    values = np.array([[[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]]], np.float32)   # L = 3 positions
    layer(tf.constant(values), tf.constant([[True] * 3]))
    codes = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    layer.codes.assign(codes)
    # code 1 scores the positions [1, 0, 2], code 2 [0, 2, 4]; each code's weights sum to 1 over positions.
    logits = codes @ values[0].T                                            # [m, L]
    expected = _softmax(logits, axis=1) @ values[0]
    got = layer(tf.constant(values), tf.constant([[True] * 3])).numpy()[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    over_codes = _softmax(logits, axis=0) @ values[0]                      # the softmax over codes instead
    assert np.abs(over_codes - expected).max() > 0.5
    # A masked position takes no weight: code 1 over positions 1 and 2 only.
    masked = layer(tf.constant(values), tf.constant([[True, True, False]])).numpy()[0]
    np.testing.assert_allclose(masked[0], _softmax(np.array([1.0, 0.0])) @ values[0, :2], rtol=1e-5)


def test_context_encoder_is_contextual_and_position_aware():
    rng = np.random.default_rng(0)
    values = tf.constant(rng.normal(size=(1, 4, 8)), tf.float32)
    mask = tf.constant([[True, True, True, False]])
    changed = tf.concat([values[:, :1] + 1.0, values[:, 1:]], axis=1)        # another item at position 0
    encoder = ContextEncoder(max_length=4, num_layers=1, num_heads=2, feed_forward_units=16)
    before, after = encoder(values, mask).numpy(), encoder(changed, mask).numpy()
    assert not np.allclose(before[0, 1], after[0, 1])                       # position 1 sees position 0
    positions_only = ContextEncoder(max_length=4, num_layers=0)
    np.testing.assert_allclose(positions_only(values, mask).numpy()[0, 1], positions_only(changed, mask).numpy()[0, 1])
    # Positions count recency among valid items: item t of a 3-item history gets position 2 - t.
    np.testing.assert_allclose(positions_only(values, mask).numpy()[0, :3] - values.numpy()[0, :3],
                               positions_only.positions.numpy()[[2, 1, 0]], atol=1e-6)


def test_padding_never_changes_a_score(split):
    layer = CodeAttention(2)
    values = tf.constant(np.random.default_rng(0).normal(size=(1, 4, 3)), tf.float32)
    short = layer(values, tf.constant([[True, True, False, False]]))
    noise = tf.concat([values[:, :2], 100.0 * tf.ones([1, 2, 3])], axis=1)  # garbage in padded slots
    np.testing.assert_allclose(layer(noise, tf.constant([[True, True, False, False]])).numpy(), short.numpy(),
                               rtol=1e-6)
    empty = layer(values, tf.constant([[False] * 4]))
    assert np.all(empty.numpy() == 0.0)
    model = _model(split)
    examples = {k: v[:3] for k, v in split.examples("train").items()}
    history = np.zeros_like(examples["history"])
    history[:, :2] = [[5, 9], [7, 3], [4, 4]]
    a = model.user_embedding(dict(examples, history=history)).numpy()
    moved = np.zeros_like(history)
    moved[:, 5:7] = history[:, :2]                                     # same items, padding elsewhere
    np.testing.assert_allclose(model.user_embedding(dict(examples, history=moved)).numpy(), a, rtol=1e-5)
    longer = history.copy()
    longer[:, 2] = 11                                                  # a real item does change it
    assert not np.allclose(model.user_embedding(dict(examples, history=longer)).numpy(), a)
    reordered = history.copy()
    reordered[:, :2] = history[:, 1::-1]                              # the same items in the other order
    assert not np.allclose(model.user_embedding(dict(examples, history=reordered)).numpy()[:2], a[:2])


def test_learns_and_evaluates_exhaustive_and_ann_rescore(split):
    model = _model(split)
    history = Trainer(model, epochs=4, batch_size=64).fit(split.examples("train"), verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    queries, targets, exclude = split.queries("test")
    items, ids = split.candidates()
    report = RetrievalEvaluator(ks=(10, 50)).evaluate(model, queries, items, ids, targets, exclude)
    exact, ann = report.metrics["exact"], report.metrics["scann"]
    assert exact["hit_rate@50"] >= exact["recall@50"] - 1e-12 and ann["hit_rate@50"] >= ann["recall@50"] - 1e-12
    assert exact["recall@50"] > 50 / 300 * 1.3                          # better than random ranking
    assert report.ann_recall["ann_recall@10"] > 0.6
    assert any("re-scored exactly" in note for note in report.notes)


def test_config_errors(split):
    with pytest.raises(ValueError, match="must end at embedding_dim"):
        tower_zoo.create_model("poly_encoder", split.data.feature_spec, embedding_dim=8, hidden_units=(16,))
    with pytest.raises(ValueError, match="must be a user-side sequence feature"):
        _model(split, history_feature="segment")
    with pytest.raises(ValueError, match="divisible by context_heads"):
        _model(split, context_heads=3)
