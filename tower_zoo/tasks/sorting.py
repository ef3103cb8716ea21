"""Differentiable sorting and the list-wise cascade losses built on it.

NeuralSort (Grover et al., ICLR 2019) relaxes the permutation matrix that sorts scores s [n] in descending
order: row r of the relaxed matrix is a softmax over items,

    P̂[r, :] = softmax(((n + 1 - 2r) · s - A_s · 1) / τ),   A_s[i, j] = |s_i - s_j|,  r = 1..n,

each row a distribution over which item sits at rank r; as τ → 0 it tends to the true permutation matrix
(P[r, i] = 1 when item i has rank r).

On top of it (ARF, "Adaptive Neural Ranking Framework", Wang et al. 2023):

* ``soft_top_m_membership``: p̂_m(i) = Σ_{r ≤ m} P̂[r, i], how much item i is in the model's top m.
* ``recall_m_k_surrogate_loss``: Recall@m@k = |top-m(model) ∩ top-k(reference)| / k, relaxed to the
  cross-entropy -1/k Σ_{i ∈ top-k(reference)} log p̂_m(i): zero exactly when every reference top-k item is
  fully inside the model's top m.
* ``permutation_cross_entropy_loss``: the full order, -1/n Σ_r Σ_i P[r, i] log P̂[r, i] between the reference
  permutation P and the relaxed one: minimized when every rank holds the right item, i.e. when every pair is
  ordered as the reference orders it (ordered pair accuracy, OPA = 1).
* ``ordered_pair_accuracy``: the OPA metric itself (the share of reference-ordered pairs the model orders the
  same way), for reporting.

Shapes: scores [G, n] (G lists of n candidates). All functions are TensorFlow and differentiable in the scores.
"""

from __future__ import annotations

import tensorflow as tf

EPSILON = 1e-9


def neural_sort(scores: tf.Tensor, temperature: float | tf.Tensor) -> tf.Tensor:
    """The relaxed descending permutation matrix of ``scores`` [G, n]: [G, n (rank), n (item)], rows sum to 1."""
    scores = tf.convert_to_tensor(scores)
    n = tf.shape(scores)[-1]
    pairwise = tf.abs(scores[:, :, tf.newaxis] - scores[:, tf.newaxis, :])       # A_s [G, n, n]
    spread = tf.reduce_sum(pairwise, axis=-1)                                    # A_s · 1 [G, n]
    ranks = tf.cast(tf.range(1, n + 1), scores.dtype)                            # r = 1..n
    scaling = tf.cast(n + 1, scores.dtype) - 2.0 * ranks                         # (n + 1 - 2r) [n]
    logits = scaling[tf.newaxis, :, tf.newaxis] * scores[:, tf.newaxis, :] - spread[:, tf.newaxis, :]
    return tf.nn.softmax(logits / temperature, axis=-1)


def hard_permutation(scores: tf.Tensor) -> tf.Tensor:
    """The exact descending permutation matrix of ``scores`` [G, n] (ties by position): [G, n, n] of 0/1."""
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    return tf.one_hot(order, tf.shape(scores)[-1], dtype=scores.dtype)


def soft_top_m_membership(permutation: tf.Tensor, m: int) -> tf.Tensor:
    """p̂_m [G, n]: the mass of each item in the first ``m`` ranks of a (relaxed) permutation [G, n, n]."""
    return tf.reduce_sum(permutation[:, :m, :], axis=1)


def recall_m_k_surrogate_loss(scores: tf.Tensor, reference_scores: tf.Tensor, m: int, k: int,
                              temperature: float | tf.Tensor = 1.0) -> tf.Tensor:
    """ARF's relaxed Recall@m@k loss (see the module docstring): scalar, the mean over the G lists."""
    if not 1 <= k <= m:
        raise ValueError(f"need 1 <= k <= m, got k={k}, m={m}")
    relevant = soft_top_m_membership(hard_permutation(reference_scores), k)          # 0/1 [G, n]
    membership = soft_top_m_membership(neural_sort(scores, temperature), m)         # [G, n]
    membership = tf.minimum(membership, 1.0)  # rows sum to 1; guard the log against round-off above 1
    per_list = -tf.reduce_sum(relevant * tf.math.log(membership + EPSILON), axis=-1) / float(k)
    return tf.reduce_mean(per_list)


def permutation_cross_entropy_loss(scores: tf.Tensor, reference_scores: tf.Tensor,
                                   temperature: float | tf.Tensor = 1.0) -> tf.Tensor:
    """ARF's global (full-order, OPA) loss: -1/n Σ_r Σ_i P[r, i] log P̂[r, i], mean over lists: scalar."""
    target = hard_permutation(reference_scores)
    relaxed = neural_sort(scores, temperature)
    per_rank = -tf.reduce_sum(target * tf.math.log(relaxed + EPSILON), axis=-1)      # [G, n]
    return tf.reduce_mean(per_rank)


def ordered_pair_accuracy(scores: tf.Tensor, reference_scores: tf.Tensor) -> tf.Tensor:
    """Share of the pairs the reference orders strictly (r_i > r_j) that ``scores`` also orders s_i > s_j."""
    ordered = reference_scores[:, :, tf.newaxis] > reference_scores[:, tf.newaxis, :]
    agree = tf.logical_and(ordered, scores[:, :, tf.newaxis] > scores[:, tf.newaxis, :])
    return tf.reduce_sum(tf.cast(agree, tf.float32)) / tf.maximum(tf.reduce_sum(tf.cast(ordered, tf.float32)), 1.0)
