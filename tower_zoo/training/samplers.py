"""Negative sampling: where the non-positive candidates of a training batch come from.

Every source reports, for each candidate it adds, the log of the *expected number of times* that
item appears among that source's candidates, ``log q``. The sampled softmax subtracts it per column
(see ``tower_zoo.training.losses``), so each source is corrected with its own probability:

* in-batch: the batch's positives. An item with training count c_j out of N examples is expected
  ``B · c_j / N`` times among B in-batch candidates: log q = log(B · c_j / N).
* global: M items drawn with replacement from p_j ∝ c_j^α (α = 0.75 as in word2vec / EBR), shared
  by the whole batch: log q = log(M · p_j).
* hard: per query, items ranked in a middle band (e.g. 101–500) by a previous model (Facebook EBR).
  They are chosen by rank, not by frequency, so they get no correction (log q = 0).

Keeping the counts (B, M) inside q matters only when sources are mixed: within one source they shift
every column by the same constant, which a softmax ignores; across sources they set the relative
weight of a column drawn from each.

Positive down-sampling (word2vec's sub-sampling of frequent words): a training example whose item
has frequency z = c_j / N is kept with probability P = (sqrt(z / t) + 1) · t / z (capped at 1).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def unigram_probabilities(counts: np.ndarray, alpha: float = 0.75) -> np.ndarray:
    """p_j ∝ counts_j^alpha over items with count > 0 (unseen items get 0). float64 [N]."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array, got shape {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be finite and non-negative")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    weights = np.where(counts > 0, counts ** alpha, 0.0)
    total = weights.sum()
    if total <= 0:
        raise ValueError("counts are all zero: nothing to sample from")
    return weights / total


def build_alias_table(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: O(N) build, O(1) per draw.

    Returns (accept [N] float, alias [N] int): draw a column i uniformly, keep i with probability
    accept[i], otherwise take alias[i].
    """
    p = np.asarray(probabilities, np.float64)
    n = p.size
    scaled = p * n / p.sum()
    accept = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        accept[s] = scaled[s]
        alias[s] = g
        scaled[g] = scaled[g] + scaled[s] - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    for i in small + large:  # numerical leftovers are (close to) exactly 1
        accept[i] = 1.0
    return accept, alias


class AliasSampler(tf.Module):
    """Draws item indices with probabilities ``p`` (from ``unigram_probabilities``) in a tf.function.

    ``sample(m) -> (indices int32 [m], log_q float32 [m])`` with log q = log(m · p_index).
    """

    def __init__(self, probabilities: np.ndarray, seed: int = 0, name: str | None = None):
        super().__init__(name=name)
        accept, alias = build_alias_table(probabilities)
        self.num_items = int(len(probabilities))
        self.accept = tf.constant(accept, tf.float32)
        self.alias = tf.constant(alias, tf.int32)
        self.log_p = tf.constant(np.log(np.maximum(probabilities, 1e-30)), tf.float32)
        self.generator = tf.random.Generator.from_seed(seed)

    def sample(self, num: int) -> tuple[tf.Tensor, tf.Tensor]:
        columns = self.generator.uniform([num], 0, self.num_items, dtype=tf.int32)
        coins = self.generator.uniform([num])
        indices = tf.where(coins < tf.gather(self.accept, columns), columns, tf.gather(self.alias, columns))
        return indices, tf.gather(self.log_p, indices) + tf.math.log(tf.cast(num, tf.float32))


def keep_probability(counts: np.ndarray, threshold: float) -> np.ndarray:
    """word2vec keep probability per item: P = (sqrt(z/t) + 1) · t / z with z = count / total, capped at 1.

    Items with count 0 get 1 (never dropped). float64 [N].
    """
    counts = np.asarray(counts, np.float64)
    if not threshold > 0:
        raise ValueError(f"down-sampling threshold t must be > 0, got {threshold}")
    z = counts / counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(z / threshold) + 1.0) * threshold / z
    return np.where(counts > 0, np.minimum(keep, 1.0), 1.0)


def downsample_positives(item_codes: np.ndarray, vocab_size: int, threshold: float,
                         rng: np.random.Generator) -> np.ndarray:
    """Row indices of the examples kept by positive down-sampling (see ``keep_probability``)."""
    counts = np.bincount(item_codes, minlength=vocab_size)
    keep = keep_probability(counts, threshold)[item_codes]
    return np.flatnonzero(rng.random(len(item_codes)) < keep)

