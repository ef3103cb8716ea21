"""Training losses over a [B, N] logits matrix of B queries against N candidates.

Sampled softmax with logQ correction (Yi et al., RecSys 2019, "Sampling-bias-corrected neural
modeling"): candidates are not drawn uniformly, e.g. in-batch negatives are other users' positives,
so an item appears as a negative in proportion to its frequency. The softmax over such a sample
estimates the full softmax only after subtracting the log of each candidate's sampling probability:

    corrected_logit[i, j] = s(u_i, v_j) / T - log q_j

For in-batch candidates, q_j ≈ B · count_j / N_train (the probability that item j is in a batch
of B examples). The factor B shifts every logit of a row by the same log B, which a softmax
ignores, so we use q_j = count_j / N_train. The correction is applied to every column, the
positive's included, as in the paper. Without it, popular items are over-penalized as negatives.

Accidental hits: an in-batch candidate that is the query's own positive item (the same item
appearing twice in a batch) is not a negative; its logit is set to a large negative value so it
drops out of the softmax.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

_MASK_VALUE = -1e9


def apply_logq_correction(logits: tf.Tensor, candidate_log_q: tf.Tensor) -> tf.Tensor:
    """[B, N] logits minus [N] log sampling probabilities, broadcast over rows."""
    return logits - tf.cast(candidate_log_q, logits.dtype)[tf.newaxis, :]


def mask_accidental_hits(logits: tf.Tensor, positive_ids: tf.Tensor, candidate_ids: tf.Tensor,
                         positive_columns: tf.Tensor) -> tf.Tensor:
    """Masks candidates equal to the query's positive except at the positive's own column.

    Args:
      logits: [B, N].
      positive_ids: [B] id of each query's positive item.
      candidate_ids: [N] id of each candidate.
      positive_columns: [B] column of each query's positive in ``logits``.
    Returns:
      [B, N] logits with accidental hits set to a large negative value.
    """
    same_item = tf.equal(positive_ids[:, tf.newaxis], candidate_ids[tf.newaxis, :])
    own_column = tf.one_hot(positive_columns, tf.shape(logits)[1], on_value=True, off_value=False)
    accidental = tf.logical_and(same_item, tf.logical_not(own_column))
    return tf.where(accidental, tf.cast(_MASK_VALUE, logits.dtype), logits)


class SampledSoftmaxLoss(tf.keras.layers.Layer):
    """Listwise sampled softmax cross-entropy with optional logQ correction and hit removal.

    ``call(logits [B, N], positive_ids [B], candidate_ids [N], candidate_log_q [N] | None,
    positive_columns [B] | None, sample_weight [B] | None) -> scalar``: the (weighted) mean over
    queries of ``-log softmax(corrected logits)[i, positive_columns[i]]``. ``positive_columns``
    defaults to the diagonal (in-batch: query i's positive is candidate i).
    """

    def __init__(self, logq_correction: bool = True, remove_accidental_hits: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits

    def call(self, logits: tf.Tensor, positive_ids: tf.Tensor, candidate_ids: tf.Tensor,
             candidate_log_q: tf.Tensor | None = None, positive_columns: tf.Tensor | None = None,
             sample_weight: tf.Tensor | None = None) -> tf.Tensor:
        if positive_columns is None:
            positive_columns = tf.range(tf.shape(logits)[0])
        if self.logq_correction:
            if candidate_log_q is None:
                raise ValueError("SampledSoftmaxLoss(logq_correction=True) needs candidate_log_q")
            logits = apply_logq_correction(logits, candidate_log_q)
        if self.remove_accidental_hits:
            logits = mask_accidental_hits(logits, positive_ids, candidate_ids, positive_columns)
        per_query = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positive_columns, logits=logits)
        if sample_weight is None:
            return tf.reduce_mean(per_query)
        weights = tf.cast(sample_weight, per_query.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(per_query * weights), tf.reduce_sum(weights))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "logq_correction": self.logq_correction,
                "remove_accidental_hits": self.remove_accidental_hits}
