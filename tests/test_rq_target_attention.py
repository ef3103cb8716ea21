import math

import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.layers import ResidualQuantizer
from tower_zoo.training import Trainer
from tower_zoo.tasks import distillation_loss


@pytest.fixture(scope="module")
def split():
    return time_split(synthetic_interactions(num_users=80, num_items=60, interactions_per_user=10))


def _student(split, **overrides):
    return tower_zoo.create_model("rq_target_attention", split.data.feature_spec, embedding_dim=8,
                                  hidden_units=(16, 8), num_levels=2, codebook_size=8, **overrides)


def test_residual_quantizer_by_hand():
    quantizer = ResidualQuantizer(num_levels=2, codebook_size=2)
    quantizer.build(tf.TensorShape([None, 2]))
    quantizer.codebooks.assign([[[1.0, 0.0], [0.0, 1.0]], [[0.1, 0.0], [0.0, -0.2]]])
    quantized, codes, _ = quantizer(tf.constant([[1.1, 0.05], [0.2, 0.7]]))
    # x0: level 0 -> [1, 0] (residual [0.1, 0.05]) -> level 1 -> [0.1, 0]; x1: [0, 1] (residual [0.2, -0.3]) -> [0, -0.2]
    assert codes.numpy().tolist() == [[0, 0], [1, 1]]
    np.testing.assert_allclose(quantized.numpy(), [[1.1, 0.0], [0.0, 0.8]], rtol=1e-6)  # value: the codeword sum
    x = tf.constant([[1.1, 0.05], [0.2, 0.7]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(quantizer(x)[0])
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), 1.0)  # gradient passes straight through


def test_table_lookup_equals_direct_bilinear_attention(split):
    model = _student(split)
    batch = {k: v[:6] for k, v in split.examples("train").items()}
    model.build_weights()
    users, items = model.user_embedding(batch), model.item_embedding(batch)
    lookup = model.attention_logits(users["table"], items["codes"]).numpy()
    codebooks = model.quantizer.codebooks.numpy()
    e_q = sum(codebooks[l][items["codes"].numpy()[:, l]] for l in range(2))        # [B, D] quantized item
    keys = model.attention_projection(users["history"]).numpy()                    # [B, T, D]
    np.testing.assert_allclose(lookup, np.einsum("btd,bd->bt", keys, e_q), rtol=1e-4, atol=1e-5)


def test_quantizer_reconstruction_error_falls_and_usage_is_reported(split):
    model = _student(split)
    items, _ = split.candidates()
    model.build_weights()
    model.initialize_codebooks(items)
    before = model.codebook_usage(items)
    Trainer(model, task="ranking", epochs=4, batch_size=64, learning_rate=3e-3).fit(
        split.examples("train"), labels=split.labels("train")["like"], verbose=False)
    after = model.codebook_usage(items)
    assert after["relative_reconstruction_error"] < before["relative_reconstruction_error"]
    assert len(after["used"]) == 2 and all(1 <= u <= 8 for u in after["used"])
    assert all(1.0 <= p <= 8.0 + 1e-9 for p in after["perplexity"])


def test_teacher_scores_and_distillation(split):
    teacher = tower_zoo.create_model("target_attention", split.data.feature_spec, embedding_dim=8,
                                     hidden_units=(16, 8))
    examples, labels = split.examples("train"), split.labels("train")["like"]
    Trainer(teacher, task="ranking", epochs=2, batch_size=64).fit(examples, labels=labels, verbose=False)
    small = {k: v[:5] for k, v in examples.items()}
    pair = teacher.score(small, small).numpy()
    np.testing.assert_allclose(pair, np.diag(teacher.score_matrix(small, small).numpy()), rtol=1e-4, atol=1e-5)
    from tower_zoo.evaluation.preranking import PreRankingEvaluator

    teacher_logits = PreRankingEvaluator().predict(teacher, examples)
    student = _student(split)
    history = Trainer(student, task="ranking", epochs=3, batch_size=64).fit(
        examples, labels=labels, teacher_logits=teacher_logits, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]


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


def test_student_history_padding_never_changes_a_score(split):
    model = _student(split)
    batch = {k: v[:3] for k, v in split.examples("train").items()}
    history = np.zeros_like(batch["history"])
    history[:, :2] = [[5, 9], [7, 3], [4, 4]]
    moved = np.zeros_like(history)
    moved[:, 4:6] = history[:, :2]
    np.testing.assert_allclose(model.score(dict(batch, history=history), batch).numpy(),
                               model.score(dict(batch, history=moved), batch).numpy(), rtol=1e-5)
