import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.evaluation import RetrievalEvaluator
from tower_zoo.models.poly_encoder import CodeAttention
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=80, num_items=300, interactions_per_user=8))


def _model(split, **overrides):
    return tower_zoo.create_model("poly_encoder", split.data.feature_spec, embedding_dim=8, hidden_units=(16, 8),
                                  num_codes=3, **overrides)


def test_shapes_and_score_formula(split):
    model = _model(split)
    examples = {k: v[:4] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(examples).numpy(), model.item_embedding(examples).numpy()
    assert users.shape == (4, 4, 8) and items.shape == (4, 8)       # m = 3 codes + 1 static vector
    # score = (Σ_j softmax_j(y_j·v) y_j) · v / T, by hand for user 1 and item 2
    dots = users[1] @ items[2]
    weights = np.exp(dots - dots.max()) / np.exp(dots - dots.max()).sum()
    expected = (weights @ users[1]) @ items[2] / 0.05
    assert model.score_matrix(examples, examples).numpy()[1, 2] == pytest.approx(expected, rel=1e-4)
    np.testing.assert_allclose(model.score(examples, examples).numpy(),
                               np.diag(model.score_matrix(examples, examples).numpy()), rtol=1e-4)


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
