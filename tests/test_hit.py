import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return time_split(synthetic_interactions(num_users=80, num_items=40, interactions_per_user=10))


def _model(split, **overrides):
    return tower_zoo.create_model("hit", split.data.feature_spec, hidden_units=(16,), generator_units=(8,),
                                  num_heads=2, head_dim=4, **overrides)


def _moved(loss_fn, model):
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, model.trainable_variables)
    return {v.name for v, g in zip(model.trainable_variables, grads)
            if g is not None and float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0}


def test_generator_loss_moves_only_the_generators_and_ranking_loss_never_does(split):
    model = _model(split)
    batch = {k: tf.constant(v[:16]) for k, v in split.examples("train").items()}
    batch["__label__"] = tf.ones([16])
    model.build_weights()

    def generator_loss():
        return model.generator_loss(batch, model.user_embedding(batch), model.item_embedding(batch))

    moved = _moved(generator_loss, model)
    assert moved and all("generator" in name for name in moved), moved
    moved = _moved(lambda: tf.reduce_sum(model.score(batch, batch)), model)
    assert moved and not any("generator" in name for name in moved), moved


def test_generated_vector_reaches_the_tower_and_heads_are_unit(split):
    model = _model(split)
    batch = {k: v[:4] for k, v in split.examples("train").items()}
    heads = model.user_embedding(batch).numpy()
    assert heads.shape == (4, 2, 4)
    np.testing.assert_allclose(np.linalg.norm(heads, axis=-1), 1.0, rtol=1e-5)
    generator = model.user_tower.generator.dense_layers[-1]
    generator.bias.assign(generator.bias + 1.0)
    assert not np.allclose(model.user_embedding(batch).numpy(), heads)
    items = model.item_embedding(batch).numpy()
    expected = np.einsum("bhd,nhd->bn", heads, items) / 2
    np.testing.assert_allclose(model.similarity(tf.constant(heads), tf.constant(items)).numpy(), expected, rtol=1e-5)


def test_generator_loss_counts_clicked_rows_only(split):
    model = _model(split)
    batch = {k: v[:8] for k, v in split.examples("train").items()}
    users, items = model.user_embedding(batch), model.item_embedding(batch)
    only_first = model.generator_loss(dict(batch, __label__=np.eye(8, dtype=np.float32)[0]), users, items)
    first_alone = model.generator_loss({k: v[:1] for k, v in batch.items()}, users[:1], items[:1])
    assert float(only_first) == pytest.approx(float(first_alone), rel=1e-5)


def test_learns_with_ranking_task(split):
    model = _model(split)
    history = Trainer(model, task="ranking", epochs=4, batch_size=64, learning_rate=3e-3).fit(
        split.examples("train"), labels=split.labels("train")["like"], verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
