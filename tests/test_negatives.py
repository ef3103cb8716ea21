import math

import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.tasks import Scorer
from tower_zoo.tasks.losses import (BinaryCrossEntropyCandidateLoss, HingeCandidateLoss,
                                       LogisticPairwiseCandidateLoss, SoftmaxCandidateLoss)
from tower_zoo.training import Trainer
from tower_zoo.training.hard_negatives import mine_hard_negatives


def _softplus(x):
    return math.log1p(math.exp(x))


# One query, columns [own positive (in-batch), other in-batch item, global sample g1, global sample g2].
S = [[0.6, 0.2, 0.4, -0.1]]
POS = [0]
MASK = [[False, True, True, True]]
T = 0.5


def _call(layer, log_q=None):
    return float(layer(tf.constant(S), tf.constant(POS), tf.constant(MASK), T,
                       None if log_q is None else tf.constant(log_q)))


def test_mixed_softmax_with_per_source_logq_by_hand():
    # Training counts: positive item 30, other in-batch item 10, of N = 100 examples; batch B = 2.
    # Global sampler: M = 2 draws from p ∝ count^0.75 over counts g1 = 30, g2 = 5 (plus the two above).
    counts = {"pos": 30, "other": 10, "g1": 30, "g2": 5}
    z = sum(c ** 0.75 for c in counts.values())
    log_q = [[math.log(2 * 30 / 100), math.log(2 * 10 / 100),
              math.log(2 * 30 ** 0.75 / z), math.log(2 * 5 ** 0.75 / z)]]
    logits = [s / T - q for s, q in zip(S[0], log_q[0])]
    expected = -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert _call(SoftmaxCandidateLoss(), log_q) == pytest.approx(expected, rel=1e-5)
    # Correcting every column with one shared source (the usual mixed-negative practice) differs:
    shared = [[math.log(2 * 30 / 100), math.log(2 * 10 / 100), math.log(2 * 30 / 100), math.log(2 * 5 / 100)]]
    assert abs(_call(SoftmaxCandidateLoss(), shared) - expected) > 0.05


def test_pointwise_and_pairwise_losses_by_hand():
    negatives = [0.2, 0.4, -0.1]
    bce = _softplus(-0.6 / T) + sum(_softplus(s / T) for s in negatives) / 3
    assert _call(BinaryCrossEntropyCandidateLoss()) == pytest.approx(bce, rel=1e-5)
    hinge = sum(max(0.0, 0.3 - 0.6 + s) for s in negatives) / 3  # margin 0.3: only 0.4 violates
    assert _call(HingeCandidateLoss(margin=0.3)) == pytest.approx(hinge, rel=1e-5)
    assert hinge == pytest.approx(0.1 / 3)
    logistic = sum(_softplus((s - 0.6) / T) for s in negatives) / 3
    assert _call(LogisticPairwiseCandidateLoss()) == pytest.approx(logistic, rel=1e-5)


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=80, num_items=40, interactions_per_user=8))


def _trainer(split, **overrides):
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
    return Trainer(model, batch_size=32, seed=1, **overrides), model


def _candidate_columns(trainer, model, examples, table, rows=4):
    """The task's candidate matrix for the first ``rows`` examples."""
    task = trainer.make_task(trainer.example_source(examples).item_counts(), None, table)
    batch = {k: tf.constant(v[:rows]) for k, v in examples.items()}
    towers = model(batch)
    scorer = Scorer(model.item_embedding, model.similarity, model.paired_similarity)
    return task.candidate_columns(scorer, towers["user"], towers["item"], batch, tf.constant(0, tf.int64))


def test_trainer_candidate_matrix_uses_each_sources_probability(split):
    trainer, model = _trainer(split, negatives="mixed", num_global_negatives=5)
    examples = split.examples("train")
    table, _ = split.candidates()
    columns = _candidate_columns(trainer, model, examples, table)
    sims, log_q, ids = columns.similarities, columns.log_q, columns.codes
    assert sims.shape == (4, 9) and columns.positive_columns.numpy().tolist() == [0, 1, 2, 3]
    counts = np.bincount(examples["item_id"], minlength=model.feature_spec.item_id.vocab_size)
    in_batch_expected = np.log(4 * counts[examples["item_id"][:4]] / counts.sum())
    np.testing.assert_allclose(log_q.numpy()[0, :4], in_batch_expected, rtol=1e-5)
    sampled_codes = ids.numpy()[0, 4:]
    floored = np.maximum(counts, 1.0)  # the sampler's floor: cold items are drawn as if seen once
    p = floored ** 0.75 / np.sum(floored[table["item_id"]] ** 0.75)
    np.testing.assert_allclose(log_q.numpy()[0, 4:], np.log(5 * p[sampled_codes]), rtol=1e-4)


@pytest.mark.parametrize("overrides", [
    {"negatives": "global", "num_global_negatives": 16},
    {"negatives": "mixed", "num_global_negatives": 16},
    {"loss": "bce"}, {"loss": "hinge"}, {"loss": "bpr"}, {"downsample_threshold": 1e-3},
])
def test_every_option_trains(split, overrides):
    trainer, _ = _trainer(split, epochs=3, **overrides)
    table, _ = split.candidates()
    history = trainer.fit(split.examples("train"), item_table=table, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]


def test_hard_negatives_come_from_the_rank_band(split):
    trainer, model = _trainer(split, epochs=1)
    examples = split.examples("train")
    table, ids = split.candidates()
    trainer.fit(examples, verbose=False)
    rows = mine_hard_negatives(model, examples, table, num_negatives=3, rank_range=(5, 10))
    assert rows.shape == (len(examples["item_id"]), 3)
    # Recompute the band for one example by brute force.
    i = 7
    user = model.user_embedding({k: v[i:i + 1] for k, v in examples.items()}).numpy()[0]
    scores = model.item_embedding(table).numpy() @ user
    blocked = set(examples["history"][i].tolist()) | {examples["item_id"][i]}
    order = [r for r in np.argsort(-scores, kind="stable") if table["item_id"][r] not in blocked]
    assert set(rows[i].tolist()) <= set(order[4:10])
    hard_trainer, _ = _trainer(split, epochs=2, hard_negatives=3)
    history = hard_trainer.fit(examples, item_table=table, hard_negatives=rows, verbose=False)
    assert np.isfinite(history[-1]["loss"])


@pytest.mark.parametrize("overrides,message", [
    ({"loss": "hinge", "logq_correction": True}, "logQ correction is defined for the sampled softmax only"),
    ({"negatives": "random"}, "unknown trainer negatives 'random'"),
    ({"loss": "listnet"}, "unknown trainer loss 'listnet'"),
    ({"alpha": 1.5}, "alpha must be <= 1"),
])
def test_impossible_combinations_are_rejected(split, overrides, message):
    with pytest.raises(ValueError, match=message):
        _trainer(split, **overrides)


def test_missing_inputs_for_global_and_hard(split):
    trainer, _ = _trainer(split, negatives="global")
    with pytest.raises(ValueError, match="needs item_table"):
        trainer.fit(split.examples("train"), verbose=False)
    trainer, _ = _trainer(split, hard_negatives=2)
    table, _ = split.candidates()
    with pytest.raises(ValueError, match="needs hard_negatives= rows"):
        trainer.fit(split.examples("train"), item_table=table, verbose=False)


def test_learnable_temperature_moves_and_fixed_one_does_not(split):
    for learnable in (True, False):
        model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8), temperature=0.5,
                                       learnable_temperature=learnable)
        Trainer(model, epochs=2, batch_size=32, learning_rate=0.01).fit(split.examples("train"), verbose=False)
        moved = abs(float(model.temperature.value) - 0.5) > 1e-3
        assert moved == learnable


def test_shared_logq_mode_uses_unigram_frequency_for_every_column(split):
    trainer, model = _trainer(split, negatives="mixed", num_global_negatives=5, logq_mode="shared")
    examples = split.examples("train")
    columns = _candidate_columns(trainer, model, examples, split.candidates()[0])
    log_q, ids = columns.log_q, columns.codes
    counts = np.bincount(examples["item_id"], minlength=model.feature_spec.item_id.vocab_size)
    np.testing.assert_allclose(log_q.numpy(), np.log(counts[ids.numpy()] / counts.sum()), rtol=1e-5)
    with pytest.raises(ValueError, match="logq_mode"):
        _trainer(split, logq_mode="both")


def test_log_q_uses_down_sampled_counts_and_hard_negatives_log_k_over_w(split):
    from tower_zoo.tasks.samplers import keep_probability

    trainer, model = _trainer(split, hard_negatives=2, hard_rank_range=(1, 8), downsample_threshold=0.003)
    examples = split.examples("train")
    table, _ = split.candidates()
    counts = trainer.example_source(examples).item_counts()
    keep = keep_probability(counts, 0.003).astype(np.float32)
    task = trainer.make_task(counts, keep, table)
    hard = np.tile(np.array([[0, 1]], np.int32), (4, 1))
    batch = {**{k: tf.constant(v[:4]) for k, v in examples.items()}, "__hard_negatives__": tf.constant(hard)}
    towers = model(batch)
    columns = task.candidate_columns(Scorer(model.item_embedding, model.similarity, model.paired_similarity),
                                     towers["user"], towers["item"], batch, tf.constant(0, tf.int64))
    codes = examples["item_id"][:4]
    assert keep[codes].max() < 0.9                                         # the rate must depend on P here
    expected = np.log(4 * counts[codes] * keep[codes] / counts.sum())       # B · c · P / N
    np.testing.assert_allclose(columns.log_q.numpy()[0, :4], expected, rtol=1e-5)
    np.testing.assert_allclose(columns.log_q.numpy()[:, 4:], math.log(2 / 8), rtol=1e-6)   # K / W


@pytest.mark.parametrize("name", ["int_tower", "hit"])
def test_hard_negatives_work_with_multi_vector_item_towers(split, name):
    model = tower_zoo.create_model(name, split.data.feature_spec)
    examples = split.examples("train")
    table, _ = split.candidates()
    hard = np.random.default_rng(0).integers(0, len(table["item_id"]), size=(len(examples["item_id"]), 2))
    trainer = Trainer(model, task="retrieval", batch_size=32, epochs=2, hard_negatives=2, hard_rank_range=(1, 20))
    history = trainer.fit(examples, item_table=table, hard_negatives=hard, verbose=False)
    assert np.isfinite(history[-1]["loss"])
