import math

import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.layers import ResidualQuantizer
from tower_zoo.models.rq_target_attention import gather_attended
from tower_zoo.training.tarq import fit_tarq  # noqa: I001  (before tasks: training imports them in order)
from tower_zoo.tasks import distillation_loss


@pytest.fixture(scope="module")
def split():
    return time_split(synthetic_interactions(num_users=80, num_items=60, interactions_per_user=10))


def _student(split, **overrides):
    settings = dict(embedding_dim=8, hidden_units=(16, 8), num_heads=2, num_levels=2, codebook_size=4,
                    score_units=(8,))
    model = tower_zoo.create_model("rq_target_attention", split.data.feature_spec, **{**settings, **overrides})
    return model.build_weights()


def _batch(split, rows, labels=None):
    """The first ``rows`` training rows whose history holds at least two items."""
    examples = split.examples("train")
    chosen = np.flatnonzero((examples["history"] > 0).sum(1) >= 2)[:rows]
    batch = {k: tf.constant(v[chosen]) for k, v in examples.items()}
    if labels is not None:
        batch["__label__"] = tf.constant(labels, tf.float32)
    return batch


def _attention_by_hand(layer, query, history, mask):
    """numpy multi-head attention of one query [D] over one row's history [T, D] (valid positions only)."""
    wq, wk, wv, wo = (w.numpy() for w in (layer.query.kernel, layer.key.kernel, layer.value.kernel,
                                          layer.output_projection.kernel))
    heads, width = layer.num_heads, layer.head_dim
    keys, values = (history[mask] @ wk).reshape(-1, heads, width), (history[mask] @ wv).reshape(-1, heads, width)
    q = (query @ wq).reshape(heads, width)
    pooled = []
    for h in range(heads):
        logits = keys[:, h] @ q[h] / math.sqrt(width)
        weights = np.exp(logits - logits.max())
        pooled.append((weights / weights.sum()) @ values[:, h])
    return np.concatenate(pooled) @ wo


def _moved(loss_fn, model):
    with tf.GradientTape() as tape:
        loss = loss_fn()
    grads = tape.gradient(loss, model.trainable_variables)
    return {v.ref() for v, g in zip(model.trainable_variables, grads)
            if g is not None and float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(g)))) > 0}


def test_residual_quantizer_by_hand():
    quantizer = ResidualQuantizer(num_levels=2, codebook_size=2, beta=0.25)
    quantizer.build(tf.TensorShape([None, 2]))
    quantizer.codebooks.assign([[[1.0, 0.0], [0.0, 1.0]], [[0.1, 0.0], [0.0, -0.2]]])
    x = tf.constant([[1.1, 0.05], [0.2, 0.7]])
    quantized, codes, level_losses = quantizer.quantize(x)
    # x0: level 0 -> [1, 0] (residual [0.1, 0.05]) -> level 1 -> [0.1, 0]; x1: [0, 1] (residual [0.2, -0.3]) -> [0, -0.2]
    assert codes.numpy().tolist() == [[0, 0], [1, 1]]
    np.testing.assert_allclose(quantized.numpy(), [[1.1, 0.0], [0.0, 0.8]], rtol=1e-6)  # value: the codeword sum
    # per level: (1 + beta) * mean ||r_l - c_l||²: level 0 (0.0125 + 0.13) / 2, level 1 (0.0025 + 0.05) / 2
    np.testing.assert_allclose(level_losses.numpy(), [1.25 * 0.07125, 1.25 * 0.02625], rtol=1e-5)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(quantizer(x)[0])
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), 1.0)  # gradient passes straight through


def test_attended_codebook_is_attention_with_each_codeword_as_query(split):
    model = _student(split)
    batch = _batch(split, 3)
    table = model.user_embedding(batch)["attended_codebook"].numpy()
    assert table.shape == (3, 2, 4, 8)
    history, mask = (t.numpy() for t in model.history_embedding(batch["history"]))
    codebooks = model.quantizer.codebooks.numpy()
    for b in range(3):
        for level in range(2):
            for k in range(4):
                expected = _attention_by_hand(model.attention, codebooks[level, k], history[b], mask[b])
                np.testing.assert_allclose(table[b, level, k], expected, rtol=1e-4, atol=1e-5)


def test_candidate_vector_is_the_gathered_sum_and_training_path_agrees(split):
    model = _student(split)
    batch = _batch(split, 6)
    serving_user, items = model.user_embedding(batch), model.item_embedding(batch)
    table, codes = serving_user["attended_codebook"].numpy(), items["codes"].numpy()
    brute = np.stack([sum(table[b, level, codes[b, level]] for level in range(2)) for b in range(6)])
    np.testing.assert_allclose(gather_attended(tf.constant(table), tf.constant(codes)).numpy(), brute, rtol=1e-6)
    training_user = model(batch)["user"]                           # attends with each row's own codewords only
    np.testing.assert_allclose(model.interest(training_user, items["codes"]).numpy(), brute, rtol=1e-4, atol=1e-5)
    scores = model.score(batch, batch).numpy()
    np.testing.assert_allclose(model.pair_logits(training_user, items).numpy(), scores, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.diag(model.score_matrix(batch, batch).numpy()), scores, rtol=1e-4, atol=1e-5)
    expected = ((serving_user["static"].numpy() + brute) * items["vector"].numpy()).sum(1)
    np.testing.assert_allclose(scores, expected + float(model.score_bias), rtol=1e-4, atol=1e-5)


def test_per_candidate_cost_does_not_depend_on_history_length(split):
    """The serving state of a user has no history axis: a history of 10 or 40 positions gives the same
    [B, L, K, D] table, and the per-candidate function is traced once for both."""
    model = _student(split)
    batch = _batch(split, 4)
    longer = dict(batch, history=tf.concat([batch["history"], tf.zeros([4, 30], tf.int32)], axis=1))
    short_user, long_user = model.user_embedding(batch), model.user_embedding(longer)
    assert set(short_user) == {"attended_codebook", "static"}
    np.testing.assert_allclose(long_user["attended_codebook"].numpy(), short_user["attended_codebook"].numpy(),
                               rtol=1e-5, atol=1e-6)  # zero padding changes nothing
    items = model.item_embedding(batch)
    score = tf.function(model.candidate_logits)
    for user in (short_user, long_user):
        score(user["attended_codebook"], user["static"], items["codes"], items["vector"])
    assert score.experimental_get_tracing_count() == 1


def test_distillation_by_hand_and_stop_gradients(split):
    model = _student(split)
    batch = _batch(split, 8, [1.0, 0.0] * 4)
    users, items = model(batch)["user"], model.item_embedding(batch)
    teacher_towers = model.teacher(batch)
    target = model.teacher.interest(teacher_towers["user"], teacher_towers["item"]).numpy()
    student = model.interest(users, items["codes"]).numpy()
    assert float(model.distillation_loss(batch, users, items)) == pytest.approx(
        float(np.mean(((student - target) ** 2).sum(1))), rel=1e-5)

    def distill():
        return model.distillation_loss(batch, model(batch)["user"], model.item_embedding(batch))

    teacher = {v.ref() for v in model.teacher.trainable_variables}
    student = {v.ref() for v in model.trainable_variables} - teacher
    named = {v.ref(): v.name for v in model.trainable_variables}
    moved = _moved(distill, model)
    assert moved and moved <= student, [named[r] for r in moved - student]   # the teacher is a fixed target
    assert {model.quantizer.codebooks.ref(), model.attention.query.kernel.ref()} <= moved
    moved = _moved(lambda: model.teacher_loss(batch), model)
    assert moved and moved <= teacher, [named[r] for r in moved - teacher]   # teacher's BCE: teacher only
    moved = _moved(lambda: tf.reduce_sum(model.pair_logits(*model(batch).values())), model)
    assert moved and moved <= student                                        # student's BCE: student only
    moved = _moved(lambda: tf.reduce_sum(model.alignment_losses(model.item_embedding(batch))), model)
    item_side = {v.ref() for v in model.item_tower.trainable_variables} | {model.quantizer.codebooks.ref()}
    assert moved and moved <= item_side, [named[r] for r in moved - item_side]


def test_each_side_is_independent_of_the_other_sides_features(split):
    model = _student(split)
    batch = _batch(split, 5)
    rng = np.random.default_rng(0)
    spec = split.data.feature_spec

    def changed(features):
        return dict(batch, **{f.name: tf.constant(rng.integers(1, f.vocab_size, batch[f.name].shape), tf.int32)
                              for f in features})

    other_users, other_items = changed(spec.user_features), changed(spec.item_features)
    for tower_model in (model, model.teacher):
        users, items = tower_model.user_embedding(batch), tower_model.item_embedding(batch)
        for a, b in zip(tf.nest.flatten(tower_model.item_embedding(other_users)), tf.nest.flatten(items)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        for a, b in zip(tf.nest.flatten(tower_model.user_embedding(other_items)), tf.nest.flatten(users)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.allclose(tower_model.user_embedding(other_users)["static"].numpy(), users["static"].numpy())


def test_teacher_scores_and_padding(split):
    teacher = tower_zoo.create_model("target_attention", split.data.feature_spec, embedding_dim=8,
                                     hidden_units=(16, 8), num_heads=2).build_weights()
    small = _batch(split, 5)
    pair = teacher.score(small, small).numpy()
    np.testing.assert_allclose(pair, np.diag(teacher.score_matrix(small, small).numpy()), rtol=1e-4, atol=1e-5)
    history = np.zeros_like(small["history"].numpy())
    history[:, :2] = [[5, 9], [7, 3], [4, 4], [1, 2], [8, 8]]
    moved = np.zeros_like(history)
    moved[:, 4:6] = history[:, :2]
    for model in (teacher, _student(split)):
        np.testing.assert_allclose(model.score(dict(small, history=history), small).numpy(),
                                   model.score(dict(small, history=moved), small).numpy(), rtol=1e-5)


def test_fit_tarq_co_trains_teacher_and_student(split):
    model = _student(split)
    items, _ = split.candidates()
    model.initialize_codebooks(items)
    before = model.codebook_usage(items)
    teacher_before = model.teacher.get_weights()
    result = fit_tarq(model, split.examples("train"), split.labels("train")["like"], items, epochs=3,
                      batch_size=64, learning_rate=3e-3)
    history = result["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert any(not np.allclose(a, b) for a, b in zip(model.teacher.get_weights(), teacher_before))
    after = model.codebook_usage(items)
    assert after["relative_reconstruction_error"] < before["relative_reconstruction_error"]
    assert len(after["used"]) == 2 and all(1 <= u <= 4 for u in after["used"])
    assert all(1.0 <= p <= 4.0 + 1e-9 for p in after["perplexity"])
    with pytest.raises(ValueError, match="fit_tarq trains an rq_target_attention model"):
        fit_tarq(model.teacher, {}, np.zeros(1), items)


def test_config_checks_and_round_trip(split):
    with pytest.raises(ValueError, match="embedding_dim=8 must divide by num_heads=3"):
        _student(split, num_heads=3)
    assert _student(split, use_teacher=False).teacher is None
    model = _student(split)
    clone = type(model).from_config(model.get_config()).build_weights()
    clone.set_weights(model.get_weights())
    batch = _batch(split, 3)
    np.testing.assert_allclose(clone.score(batch, batch).numpy(), model.score(batch, batch).numpy(), rtol=1e-6)


def test_distillation_loss_by_hand():
    student, teacher = tf.constant([1.0, 0.0, 2.0]), tf.constant([2.0, 1.0, 1.0])
    mse = ((1 - 2) ** 2 + (0 - 1) ** 2 + (2 - 1) ** 2) / 3
    # teacher orders (0 > 1), (0 > 2): softplus(-(1 - 0)), softplus(-(1 - 2)); (1 = 2) is not ordered
    rank = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2
    assert float(distillation_loss(student, teacher)) == pytest.approx(mse + rank, rel=1e-6)


def test_masked_attention_pool_ignores_padding():
    from tower_zoo.layers import masked_attention_pool

    values = tf.constant([[[1.0, 0.0], [0.0, 1.0], [50.0, 50.0]]])
    logits = tf.constant([[0.0, tf.math.log(3.0).numpy(), 100.0]])     # the padded slot has the largest logit
    mask = tf.constant([[True, True, False]])
    # softmax over the two valid slots: [1/4, 3/4]
    np.testing.assert_allclose(masked_attention_pool(logits, values, mask).numpy(), [[0.25, 0.75]], rtol=1e-5)
    empty = masked_attention_pool(logits, values, tf.constant([[False, False, False]]))
    np.testing.assert_array_equal(empty.numpy(), [[0.0, 0.0]])


def test_recency_embedding_counts_valid_items_after_each_position(split):
    model = _student(split, use_recency=True)
    ids = np.zeros([1, 10], np.int32)
    ids[0, [1, 4, 5]] = [7, 3, 9]                                   # padding between items
    state = model.history_state({"history": tf.constant(ids)})
    items = model.history_embedding.embedding.embeddings.numpy()
    recency = model.recency_embedding.embeddings.numpy()
    expected = np.zeros([10, 8], np.float32)
    for position, after in ((1, 2), (4, 1), (5, 0)):               # 2, 1 and 0 valid items follow
        expected[position] = items[ids[0, position]] + recency[after]
    np.testing.assert_allclose(state["history"].numpy()[0], expected, rtol=1e-6)
    batch = _batch(split, 3)
    packed = np.zeros([3, 10], np.int32)
    packed[:, :2] = [[5, 9], [7, 3], [4, 4]]
    spread = np.zeros([3, 10], np.int32)
    spread[:, [3, 8]] = packed[:, :2]
    np.testing.assert_allclose(model.score(dict(batch, history=packed), batch).numpy(),
                               model.score(dict(batch, history=spread), batch).numpy(), rtol=1e-5)


def test_candidate_lists_read_the_attended_codebook_without_tiling_and_match_pair_scores():
    import tower_zoo
    from tower_zoo.data import leave_last_out, synthetic_interactions
    from tower_zoo.models.base import TwoTowerModel

    split = leave_last_out(synthetic_interactions(num_users=20, num_items=40, interactions_per_user=6))
    model = tower_zoo.create_model("rq_target_attention", split.data.feature_spec)
    model.build_weights()
    examples = split.examples("train")
    users = model.user_embedding({k: v[:3] for k, v in examples.items()})
    items = model.item_embedding(split.candidates()[0])
    rows = np.array([[0, 5, 9, 2], [7, 7, 1, 3], [4, 0, 8, 6]])
    lists = tf.nest.map_structure(lambda t: tf.gather(t, rows), items)               # [3, 4, ...]
    got = model.candidate_list_logits(users, lists).numpy()
    generic = TwoTowerModel.candidate_list_logits(model, users, lists).numpy()         # tile + pair_logits
    np.testing.assert_allclose(got, generic, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, np.take_along_axis(model.logits(users, items).numpy(), rows, axis=1),
                               rtol=1e-5, atol=1e-6)
