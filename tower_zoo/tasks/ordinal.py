"""GNOLR's nested ordinal loss over a retrieval candidate matrix (``tower_zoo.models.gnolr``).

A row's positive column holds an item at level y in 1..K (1 = any positive, K = the highest feedback); every
other usable column is level 0 for that row. With z_t = S · s_t − a_t the logit of P(level >= t) (s_t the
cumulative similarity of the first t blocks), the ordinal likelihood of category c under K' levels is

    P(0) = 1 − σ(z_1),   P(c) = σ(z_c) − σ(z_{c+1}) for 0 < c < K',   P(K') = σ(z_K').

The nested optimization sums, for every truncation t = 1..K, the log-likelihood with the levels above t
merged into t (category min(y, t)): the t = 1 term is the plain "any positive" BCE on the first block, the
t = K term the full ordinal regression. A negative column contributes log(1 − σ(z_1)) once per truncation.
Per row: −(positive's nested log-likelihood) − mean over negatives of K · log(1 − σ(z_1)).

``log(σ(x) − σ(y))`` for x > y is computed as log σ(x) + log σ(−y) + log(1 − e^{y − x}), stable where the
two probabilities are close.

The listwise term (weight ``listwise_weight``): for each level t, a sampled softmax of s_t / T (log q
corrected) over the row's positive and negatives, on the rows at level >= t.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tower_zoo.tasks.losses import SoftmaxCandidateLoss

_LOG_GAP_CAP = -1e-6  # z_{c+1} − z_c < 0 by construction; the cap keeps log(1 − e^0) finite


def log_interval_probability(upper: tf.Tensor, lower: tf.Tensor) -> tf.Tensor:
    """log(σ(upper) − σ(lower)) for upper > lower, elementwise."""
    gap = tf.minimum(lower - upper, _LOG_GAP_CAP)
    return tf.math.log_sigmoid(upper) + tf.math.log_sigmoid(-lower) + tf.math.log(-tf.math.expm1(gap))


def nested_ordinal_log_likelihood(logits: tf.Tensor, levels: tf.Tensor) -> tf.Tensor:
    """Σ_{t=1..K} log P_t(min(y, t)) of positives: logits [B, K] (z_t), levels int [B] in 1..K -> [B]."""
    num_levels = logits.shape[-1]
    levels = tf.cast(levels, tf.int32)
    at_least = tf.math.log_sigmoid(logits)  # log P(>= t), [B, K]
    total = tf.zeros_like(logits[:, 0])
    for t in range(1, num_levels + 1):
        category = tf.minimum(levels, t)
        terms = [at_least[:, t - 1]]  # category t (the top of this truncation)
        for c in range(1, t):
            terms.append(log_interval_probability(logits[:, c - 1], logits[:, c]))
        # terms[0] is category t, terms[c] category c (c < t): pick by category
        stacked = tf.stack(terms[1:] + terms[:1], axis=1)  # [B, t]: categories 1..t
        total += tf.gather(stacked, category - 1, axis=1, batch_dims=1)
    return total


class NestedOrdinalLoss(tf.keras.layers.Layer):
    """``call(cumulative [B, C, K], ordinal_logits [B, C, K], levels [B], positive_columns [B],
    negative_mask [B, C], temperature, log_q ([1, C] / [B, C] / None), sample_weight [B] / None) -> scalar``;
    see the module docstring."""

    def __init__(self, listwise_weight: float = 1.0, **kwargs: Any):
        super().__init__(**kwargs)
        if listwise_weight < 0:
            raise ValueError(f"listwise_weight must be >= 0, got {listwise_weight}")
        self.listwise_weight = float(listwise_weight)
        self.softmax = SoftmaxCandidateLoss(name="level_softmax")

    def pointwise(self, ordinal_logits, levels, positive_columns, negative_mask) -> tf.Tensor:
        """[B] nested ordinal negative log-likelihood of each row's positive and negatives."""
        num_levels = ordinal_logits.shape[-1]
        positive = tf.gather(ordinal_logits, positive_columns, axis=1, batch_dims=1)  # [B, K]
        positive_loss = -nested_ordinal_log_likelihood(positive, levels)
        mask = tf.cast(negative_mask, ordinal_logits.dtype)
        negative = num_levels * tf.nn.softplus(ordinal_logits[:, :, 0])  # −K · log(1 − σ(z_1))
        negative_loss = tf.math.divide_no_nan(tf.reduce_sum(negative * mask, axis=1), tf.reduce_sum(mask, axis=1))
        return positive_loss + negative_loss

    def call(self, cumulative, ordinal_logits, levels, positive_columns, negative_mask, temperature, log_q=None,
             sample_weight=None) -> tf.Tensor:
        weights = tf.ones_like(levels, tf.float32) if sample_weight is None else tf.cast(sample_weight, tf.float32)
        pointwise = self.pointwise(ordinal_logits, levels, positive_columns, negative_mask)
        loss = tf.math.divide_no_nan(tf.reduce_sum(pointwise * weights), tf.reduce_sum(weights))
        if self.listwise_weight:
            for t in range(cumulative.shape[-1]):
                at_level = weights * tf.cast(levels > t, tf.float32)
                per_row = self.softmax.per_query(cumulative[:, :, t], positive_columns, negative_mask, temperature,
                                                 log_q)
                loss += self.listwise_weight * tf.math.divide_no_nan(tf.reduce_sum(per_row * at_level),
                                                                     tf.reduce_sum(at_level))
        return loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "listwise_weight": self.listwise_weight}
