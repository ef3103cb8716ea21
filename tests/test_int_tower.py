import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.layers import LightSE
from tower_zoo.models.int_tower import max_sim_scores
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
    users = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])             # two user heads
    items = tf.constant([[[1.0, 0.0], [0.6, 0.8]], [[0.0, -1.0], [-1.0, 0.0]]])
    # item 0: head 1 -> max(1, 0.6) = 1, head 2 -> max(0, 0.8) = 0.8 => 1.8; item 1: max(0,-1)=0 + max(-1,0)=0
    np.testing.assert_allclose(max_sim_scores(users, items).numpy(), [[1.8, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(max_sim_scores(users, items[tf.newaxis]).numpy(), [[1.8, 0.0]], rtol=1e-6)


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


def test_cir_uses_only_clicked_rows(split):
    model = _model(split)
    examples = {k: v[:8] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(examples), model.item_embedding(examples)
    none_clicked = dict(examples, __label__=np.zeros(8, np.float32))
    assert float(model.auxiliary_loss(users, items, none_clicked)) == 0.0
    clicked = dict(examples, __label__=np.ones(8, np.float32))
    assert float(model.auxiliary_loss(users, items, clicked)) > 0.0
    assert float(_model(split, use_cir=False).auxiliary_loss(users, items, clicked)) == 0.0


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
