import math

import numpy as np
import pytest
import tensorflow as tf

from tower_zoo.data import CategoricalFeature, FeatureSpec
from tower_zoo.data.read.source import ArrayExampleSource
from tower_zoo.data.schema.keys import KEEP
from tower_zoo.tasks.samplers import AliasSampler, build_alias_table, keep_probability, unigram_probabilities


def test_unigram_probabilities_power_075():
    p = unigram_probabilities(np.array([16.0, 1.0, 0.0]), alpha=0.75)
    # 16^0.75 = 8, 1^0.75 = 1 -> 8/9, 1/9, 0
    np.testing.assert_allclose(p, [8 / 9, 1 / 9, 0.0])
    with pytest.raises(ValueError, match="alpha"):
        unigram_probabilities(np.array([1.0]), alpha=2)
    with pytest.raises(ValueError, match="all zero"):
        unigram_probabilities(np.zeros(3))


def test_floor_lets_cold_items_be_drawn_and_alpha_zero_is_uniform():
    # floor 1: the cold item counts as seen once -> 16^0.75 = 8, 1, 1 over 10.
    np.testing.assert_allclose(unigram_probabilities(np.array([16.0, 1.0, 0.0]), 0.75, floor=1.0), [0.8, 0.1, 0.1])
    np.testing.assert_allclose(unigram_probabilities(np.array([16.0, 1.0, 0.0]), 0.0, floor=1.0), [1 / 3] * 3)


def test_alias_table_reproduces_probabilities_exactly():
    p = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    accept, alias = build_alias_table(p)
    n = len(p)
    # Exact probability of each outcome under "pick a column uniformly, accept or take its alias".
    recovered = np.zeros(n)
    for column in range(n):
        recovered[column] += accept[column] / n
        recovered[alias[column]] += (1 - accept[column]) / n
    np.testing.assert_allclose(recovered, p, atol=1e-12)


def test_alias_sampler_empirical_frequencies_and_log_q():
    p = unigram_probabilities(np.array([100.0, 30.0, 10.0, 1.0, 0.0]))
    sampler = AliasSampler(p)
    indices, log_q = sampler.sample(200_000, tf.constant([1, 7], tf.int64))
    counts = np.bincount(indices.numpy(), minlength=5) / 200_000
    np.testing.assert_allclose(counts, p, atol=0.005)
    assert counts[4] == 0
    first = int(indices[0])
    assert float(log_q[0]) == pytest.approx(math.log(200_000 * p[first]), rel=1e-5)
    # Stateless: the same seed draws the same items in any process; another step draws others.
    again, _ = sampler.sample(200_000, tf.constant([1, 7], tf.int64))
    other, _ = sampler.sample(200_000, tf.constant([1, 8], tf.int64))
    np.testing.assert_array_equal(indices.numpy(), again.numpy())
    assert np.mean(indices.numpy() != other.numpy()) > 0.3


def test_keep_probability_word2vec_formula():
    counts = np.array([900.0, 90.0, 10.0, 0.0])  # z = 0.9, 0.09, 0.01
    t = 0.01
    expected = [(math.sqrt(0.9 / t) + 1) * t / 0.9, (math.sqrt(0.09 / t) + 1) * t / 0.09, 1.0, 1.0]
    np.testing.assert_allclose(keep_probability(counts, t), expected)
    assert expected[0] == pytest.approx(0.11651, abs=1e-4)


def test_source_marks_down_sampled_rows_by_item_keep_probability():
    spec = FeatureSpec((CategoricalFeature("user_id", "user", tuple(range(10))),
                        CategoricalFeature("item_id", "item", (0, 1, 2))))
    codes = np.array([2] * 900 + [3] * 90 + [4] * 10, np.int32)
    source = ArrayExampleSource({"user_id": np.full(1000, 2, np.int32), "item_id": codes}, spec)
    keep = keep_probability(source.item_counts(), 0.01).astype(np.float32)
    batches = list(source.dataset(250, seed=0, epoch=0, keep_probability=keep))
    kept = np.concatenate([b[KEEP].numpy() for b in batches])
    items = np.concatenate([b["item_id"].numpy() for b in batches])
    assert len(items) == 1000 and len(batches) == 4            # dropped rows stay, masked: same batches per epoch
    assert kept[items == 4].sum() == 10                          # rare: always kept
    assert abs(kept[items == 2].sum() - 900 * 0.1165) < 30       # hot: ~11.7% kept
    again = np.concatenate([b[KEEP].numpy() for b in source.dataset(250, 0, 0, keep)])
    next_epoch = np.concatenate([b[KEEP].numpy() for b in source.dataset(250, 0, 1, keep)])
    np.testing.assert_array_equal(kept, again)                   # (seed, epoch) fixes the draws
    assert not np.array_equal(kept, next_epoch)
