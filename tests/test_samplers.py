import math

import numpy as np
import pytest
import tensorflow as tf

from tower_zoo.training.samplers import (AliasSampler, build_alias_table, downsample_positives,
                                         keep_probability, unigram_probabilities)


def test_unigram_probabilities_power_075():
    p = unigram_probabilities(np.array([16.0, 1.0, 0.0]), alpha=0.75)
    # 16^0.75 = 8, 1^0.75 = 1 -> 8/9, 1/9, 0
    np.testing.assert_allclose(p, [8 / 9, 1 / 9, 0.0])
    with pytest.raises(ValueError, match="alpha"):
        unigram_probabilities(np.array([1.0]), alpha=2)
    with pytest.raises(ValueError, match="all zero"):
        unigram_probabilities(np.zeros(3))


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
    sampler = AliasSampler(p, seed=1)
    indices, log_q = sampler.sample(200_000)
    counts = np.bincount(indices.numpy(), minlength=5) / 200_000
    np.testing.assert_allclose(counts, p, atol=0.005)
    assert counts[4] == 0
    first = int(indices[0])
    assert float(log_q[0]) == pytest.approx(math.log(200_000 * p[first]), rel=1e-5)


def test_keep_probability_word2vec_formula():
    counts = np.array([900.0, 90.0, 10.0, 0.0])  # z = 0.9, 0.09, 0.01
    t = 0.01
    expected = [(math.sqrt(0.9 / t) + 1) * t / 0.9, (math.sqrt(0.09 / t) + 1) * t / 0.09, 1.0, 1.0]
    np.testing.assert_allclose(keep_probability(counts, t), expected)
    assert expected[0] == pytest.approx(0.11651, abs=1e-4)


def test_downsample_positives_drops_hot_items_only():
    codes = np.array([2] * 900 + [3] * 90 + [4] * 10)
    kept = downsample_positives(codes, 5, 0.01, np.random.default_rng(0))
    kept_codes = codes[kept]
    assert np.sum(kept_codes == 4) == 10                       # rare: always kept
    assert abs(np.sum(kept_codes == 2) - 900 * 0.1165) < 30    # hot: ~11.7% kept
