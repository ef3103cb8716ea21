import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.layers import max_similarity
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return time_split(synthetic_interactions(num_users=80, num_items=40, interactions_per_user=10))


def _model(split, **overrides):
    settings = dict(hidden_units=(16,), generator_units=(8,), user_heads=3, item_heads=2, head_dim=4)
    return tower_zoo.create_model("hit", split.data.feature_spec, **{**settings, **overrides})


def _batch(split, rows, labels=None):
    batch = {k: tf.constant(v[:rows]) for k, v in split.examples("train").items()}
    if labels is not None:
        batch["__label__"] = tf.constant(labels, tf.float32)
    return batch


def _moved(loss_fn, model):
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, model.trainable_variables)
    return {v.name for v, g in zip(model.trainable_variables, grads)
            if g is not None and float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0}


def test_max_similarity_by_hand_sums_over_user_heads_the_best_item_head():
    users = tf.constant([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])      # H_u = 3
    items = tf.constant([[[2.0, 0.0], [0.0, -1.0]]])                 # H_v = 2
    # user head 0: max(2, 0) = 2; head 1: max(0, -1) = 0; head 2: max(2, -1) = 2  -> 4
    # (a max over the user axis would give max(2, 0, 2) + max(0, -1, -1) = 2)
    assert float(max_similarity(users, items)[0, 0]) == pytest.approx(4.0)
    assert float(max_similarity(users, items[tf.newaxis])[0, 0]) == pytest.approx(4.0)  # [B, M, H, d] form
    swapped = tf.constant([[[0.0, 1.0], [1.0, 0.0]]])
    aligned_users = tf.constant([[[1.0, 0.0], [0.0, 1.0]]])
    # head-aligned 1:1 would give <(1,0),(0,1)> + <(0,1),(1,0)> = 0; MaxSim pairs each with its match: 2
    assert float(max_similarity(aligned_users, swapped)[0, 0]) == pytest.approx(2.0)


def test_model_scores_are_maxsim_and_score_matrix_diagonal_is_score(split):
    model = _model(split, temperature=0.5)
    batch = _batch(split, 5)
    users, items = model.user_embedding(batch).numpy(), model.item_embedding(batch).numpy()
    assert users.shape == (5, 3, 4) and items.shape == (5, 2, 4)
    brute = np.array([[sum(max(users[b, i] @ items[n, j] for j in range(2)) for i in range(3)) for n in range(5)]
                      for b in range(5)])
    matrix = model.score_matrix(batch, batch).numpy()
    np.testing.assert_allclose(matrix, brute / 0.5, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.score(batch, batch).numpy(), np.diag(matrix), rtol=1e-5, atol=1e-6)
    paired = model.paired_similarity(tf.constant(users), tf.constant(np.repeat(items[np.newaxis], 5, 0)))
    np.testing.assert_allclose(paired.numpy(), brute, rtol=1e-4, atol=1e-5)


def test_generation_loss_moves_only_the_generators_and_ranking_loss_never_does(split):
    model = _model(split)
    batch = _batch(split, 16, [1.0, 0.0] * 8)
    model.build_weights()

    def generation_loss():
        return model.generator_loss(batch, model.user_embedding(batch), model.item_embedding(batch))

    moved = _moved(generation_loss, model)
    for side in ("user_tower", "item_tower"):
        for kind in ("/target_generator", "non_target_generator"):
            assert any(side in n and kind in n for n in moved), (side, kind, moved)
    assert all("generator" in name for name in moved), moved
    moved = _moved(lambda: tf.reduce_sum(model.score(batch, batch)), model)
    assert moved and not any("generator" in name for name in moved), moved


def test_target_generator_learns_from_clicks_and_non_target_from_non_clicks(split):
    model = _model(split)
    labels = np.array([1, 0, 0, 1, 1, 0], np.float32)
    batch = _batch(split, 6, labels)
    users, items = model.user_embedding(batch), model.item_embedding(batch)
    losses = {k: float(v) for k, v in model.generation_losses(batch, users, items).items()}
    targets = {"user": items.numpy().reshape(6, -1), "item": users.numpy().reshape(6, -1)}  # what each side mimics
    for side, tower in (("user", model.user_tower), ("item", model.item_tower)):
        generated = {k: v.numpy() for k, v in tower.generate(batch).items()}
        for kind, rows in (("target", labels == 1), ("non_target", labels == 0)):
            g, t = generated[kind][rows], targets[side][rows]
            cosine = (g * t).sum(1) / np.linalg.norm(g, axis=1) / np.linalg.norm(t, axis=1)
            assert losses[f"{side}_{kind}"] == pytest.approx(float(np.mean(1 - cosine)), rel=1e-4), (side, kind)


def test_generators_learn_to_mimic_the_opposite_tower(split):
    """Minimizing the generation loss must raise the cosine between a generator's output and its target
    (1 - cos); the released code's sign (+cos) would push them apart."""
    model = _model(split)
    batch = _batch(split, 32, np.ones(32))
    users, items = model.user_embedding(batch), model.item_embedding(batch)
    target = items.numpy().reshape(32, -1)

    def mean_cosine():
        generated = model.user_tower.generate(batch)["target"].numpy()
        return float(np.mean((generated * target).sum(1) / np.linalg.norm(generated, axis=1)
                             / np.linalg.norm(target, axis=1)))

    generator_vars = [v for v in model.trainable_variables if "generator" in v.name]
    before = mean_cosine()
    optimizer = tf.keras.optimizers.SGD(0.5)
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = model.generator_loss(batch, users, items)
        optimizer.apply_gradients(zip(tape.gradient(loss, generator_vars), generator_vars))
    assert mean_cosine() > before + 0.2, (before, mean_cosine())


def test_generated_vectors_reach_the_tower(split):
    model = _model(split)
    batch = _batch(split, 4)
    heads = model.user_embedding(batch).numpy()
    for kind in ("target", "non_target"):
        last = model.user_tower.generators[kind].dense_layers[-1]
        last.bias.assign(last.bias + 1.0)
        moved = model.user_embedding(batch).numpy()
        assert not np.allclose(moved, heads), kind
        heads = moved


def test_each_side_is_independent_of_the_other_sides_features(split):
    model = _model(split)
    batch = _batch(split, 6)
    users, items = model.user_embedding(batch).numpy(), model.item_embedding(batch).numpy()
    rng = np.random.default_rng(0)
    spec = split.data.feature_spec
    other_users = dict(batch, **{f.name: tf.constant(rng.integers(1, f.vocab_size, batch[f.name].shape), tf.int32)
                                 for f in spec.user_features})
    other_items = dict(batch, **{f.name: tf.constant(rng.integers(1, f.vocab_size, batch[f.name].shape), tf.int32)
                                 for f in spec.item_features})
    assert not np.allclose(model.user_embedding(other_users).numpy(), users)   # the change is visible...
    np.testing.assert_array_equal(model.item_embedding(other_users).numpy(), items)  # ...but not to the items
    assert not np.allclose(model.item_embedding(other_items).numpy(), items)
    np.testing.assert_array_equal(model.user_embedding(other_items).numpy(), users)


def test_ablation_flags_and_config_checks(split):
    assert _model(split, use_generators=False).user_tower.generators == {}
    assert set(_model(split, use_target_generator=False).item_tower.generators) == {"non_target"}
    with pytest.raises(ValueError, match="use_generators=True needs"):
        _model(split, use_target_generator=False, use_non_target_generator=False)
    with pytest.raises(ValueError, match=r"generator_features has unknown feature\(s\) \['nope'\]"):
        _model(split, generator_features=("nope",))
    with pytest.raises(ValueError, match="gives the item generators no input"):
        _model(split, generator_features=("user_id",))
    model = _model(split, generator_features=("user_id", "item_id"))
    assert model.user_tower.generator_fields == [model.user_tower.fields.feature_names.index("user_id")]
    model.build_weights()
    clone = type(model).from_config(model.get_config())
    clone.build_weights()
    clone.set_weights(model.get_weights())
    batch = _batch(split, 3)
    np.testing.assert_allclose(clone.score(batch, batch).numpy(), model.score(batch, batch).numpy(), rtol=1e-6)


def test_learns_with_ranking_task(split):
    model = _model(split)
    history = Trainer(model, task="ranking", epochs=4, batch_size=64, learning_rate=3e-3).fit(
        split.examples("train"), labels=split.labels("train")["like"], verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
