"""Negative sampling: where the non-positive candidates of a training batch come from.

Every source reports, for each candidate it adds, the log of the *expected number of times* that
item appears among that source's candidates, ``log q``. The sampled softmax subtracts it per column
(see ``tower_zoo.tasks.losses``), so each source is corrected with its own probability:

* in-batch: the batch's positives. An item with training count c_j out of N examples is expected
  ``B · c_j / N`` times among B in-batch candidates: log q = log(B · c_j / N).
* global: M items drawn with replacement from p_j ∝ c_j^α (α = 0.75 as in word2vec / EBR), shared
  by the whole batch: log q = log(M · p_j).
* global draws include never-seen (cold) items: p_j ∝ max(c_j, floor)^α, so at α = 0 the sampler is
  uniform over the whole corpus (the uniform half of Yang et al.'s mixed negative sampling).
* hard: per query, K items drawn uniformly from a band of W ranks (e.g. 101–500) of a previous
  model (Facebook EBR): each item of the band is expected K / W times, log q = log(K / W).

Keeping the counts (B, M) inside q matters only when sources are mixed: within one source they shift
every column by the same constant, which a softmax ignores; across sources they set the relative
weight of a column drawn from each.

Positive down-sampling (word2vec's sub-sampling of frequent words): a training example whose item
has frequency z = c_j / N is kept with probability P = (sqrt(z / t) + 1) · t / z (capped at 1). The
in-batch rate then comes from the counts actually used: B · c_j · P_j / N.

Draws are stateless: the sampler's numbers are a function of (seed, training step), so a resumed run
draws exactly the negatives an uninterrupted one would.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def unigram_probabilities(counts: np.ndarray, alpha: float = 0.75, floor: float = 0.0) -> np.ndarray:
    """p_j ∝ max(counts_j, floor)^alpha; with floor 0, items with count 0 get p = 0. float64 [N].

    ``floor`` > 0 lets cold (never-seen) items be drawn, as if seen ``floor`` times; with alpha = 0 every
    item then has the same probability."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D array, got shape {counts.shape}")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be finite and non-negative")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if not (np.isfinite(floor) and floor >= 0):
        raise ValueError(f"floor must be finite and >= 0, got {floor}")
    counts = np.maximum(counts, floor)
    weights = np.where(counts > 0, counts ** alpha, 0.0)
    total = weights.sum()
    if total <= 0:
        raise ValueError("counts are all zero: nothing to sample from")
    return weights / total


def popularity_ipw_weights(counts: np.ndarray, power: float, max_weight: float = 10.0) -> np.ndarray:
    """Inverse-propensity weights of positives by popularity: float64 [N] per item code.

    The propensity of item j to be a logged positive is taken ∝ c_j (its training count); each positive row
    of item j gets weight w_j = min((c_j / c̄)^(−power), max_weight), then every weight is divided by the mean
    row weight Σ_j c_j w_j / Σ_j c_j, so the average training row keeps weight 1 (the loss scale is unchanged).
    c̄ is the mean count of the items that have rows; items without rows get weight 0 (they have no rows).
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ValueError("counts must be a 1-D array of finite non-negative numbers")
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"power must be finite and >= 0, got {power}")
    if not (np.isfinite(max_weight) and max_weight >= 1):
        raise ValueError(f"max_weight must be finite and >= 1, got {max_weight}")
    seen = counts > 0
    if not seen.any():
        raise ValueError("counts are all zero: no positives to weight")
    weights = np.zeros_like(counts)
    weights[seen] = np.minimum((counts[seen] / counts[seen].mean()) ** -power, max_weight)
    return weights * counts.sum() / float(np.dot(counts, weights))


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
    """Draws item indices with probabilities ``p`` (from ``unigram_probabilities``) inside a tf.function.

    ``sample(m, seed) -> (indices int32 [m], log_q float32 [m])`` with log q = log(m · p_index). ``seed``
    is an int [2] tensor (e.g. (sampler seed, training step)): draws are stateless, so the same seed gives
    the same indices in any process. Holds only constants (no variables).
    """

    def __init__(self, probabilities: np.ndarray, name: str | None = None):
        super().__init__(name=name)
        accept, alias = build_alias_table(probabilities)
        self.num_items = int(len(probabilities))
        self.accept = tf.constant(accept, tf.float32)
        self.alias = tf.constant(alias, tf.int32)
        self.log_p = tf.constant(np.log(np.maximum(probabilities, 1e-30)), tf.float32)

    def sample(self, num: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
        columns = tf.random.stateless_uniform([num], seeds[0], 0, self.num_items, dtype=tf.int32)
        coins = tf.random.stateless_uniform([num], seeds[1])
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
