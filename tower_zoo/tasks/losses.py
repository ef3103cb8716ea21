"""Training losses over a [B, C] candidate matrix of B queries against C candidates.

Sampled softmax with logQ correction (Yi et al., RecSys 2019, "Sampling-bias-corrected neural
modeling"): candidates are not drawn uniformly (in-batch negatives are other users' positives, so an
item appears as a negative in proportion to its frequency), and a softmax over such a sample
estimates the full softmax only after subtracting the log of each candidate's sampling rate:

    corrected_logit[i, j] = s(u_i, v_j) / T - log q_j

where q_j is the *expected number of times* column j's item is drawn by the source that put it there
(``tower_zoo.tasks.candidates``): B · count_j / N for in-batch candidates, M · p_j for M global draws.
Within one source a common factor such as B shifts a row's logits equally and cancels in the softmax;
across sources it sets their relative weight, so it is kept. The correction applies to every column,
the positive's included, as in the paper.

Accidental hits: a candidate that is the query's own positive item (the same item twice in a batch,
or drawn by a sampler) is not a negative; its logit is masked out of the softmax.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

_MASK_VALUE = -1e9


def _per_row(values: tf.Tensor) -> tf.Tensor:
    """[N] -> [1, N] (shared by every row); [B, N] unchanged."""
    values = tf.convert_to_tensor(values)
    return values[tf.newaxis, :] if values.shape.rank == 1 else values


def apply_logq_correction(logits: tf.Tensor, candidate_log_q: tf.Tensor) -> tf.Tensor:
    """[B, N] logits minus log sampling probabilities, [N] (shared) or [B, N] (per row)."""
    return logits - tf.cast(_per_row(candidate_log_q), logits.dtype)


def valid_negative_mask(positive_ids: tf.Tensor, candidate_ids: tf.Tensor, positive_columns: tf.Tensor,
                        num_columns: tf.Tensor | int, remove_accidental_hits: bool = True) -> tf.Tensor:
    """[B, C] bool: True where a column is a usable negative for the row.

    The positive's own column is never a negative; with ``remove_accidental_hits``, neither is any
    other column holding the positive's item (which covers the own column: it holds that item).
    ``candidate_ids`` is [C], [1, C] (shared) or [B, C].
    """
    if remove_accidental_hits:
        return tf.not_equal(positive_ids[:, tf.newaxis], _per_row(candidate_ids))
    return tf.logical_not(tf.one_hot(positive_columns, num_columns, on_value=True, off_value=False))


def _weighted_mean(per_query: tf.Tensor, sample_weight: tf.Tensor | None) -> tf.Tensor:
    if sample_weight is None:
        return tf.reduce_mean(per_query)
    weights = tf.cast(sample_weight, per_query.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(per_query * weights), tf.reduce_sum(weights))


def _positive(values: tf.Tensor, positive_columns: tf.Tensor) -> tf.Tensor:
    """[B, C], [B] -> [B, 1] the positive column of each row."""
    return tf.gather(values, positive_columns, axis=1, batch_dims=1)[:, tf.newaxis]


def _mean_over_negatives(values: tf.Tensor, negative_mask: tf.Tensor) -> tf.Tensor:
    """[B, C] per-pair losses -> [B] mean over each row's valid negatives (0 if it has none)."""
    mask = tf.cast(negative_mask, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * mask, axis=1), tf.reduce_sum(mask, axis=1))


class CandidateLoss(tf.keras.layers.Layer):
    """Base of the losses over a [B, C] candidate matrix whose ``positive_columns`` [B] hold each
    query's positive and whose ``negative_mask`` [B, C] marks the usable negatives.

    ``call(similarities [B, C], positive_columns [B], negative_mask [B, C], temperature (scalar),
    log_q ([C] or [B, C] or None), sample_weight ([B] or None)) -> scalar``. ``similarities`` are
    the raw tower similarities (cosines for L2-normalized towers); ``temperature`` is the model's.
    """

    uses_log_q = False

    def per_query(self, similarities, positive_columns, negative_mask, temperature, log_q):
        raise NotImplementedError

    def call(self, similarities, positive_columns, negative_mask, temperature, log_q=None, sample_weight=None):
        values = self.per_query(similarities, positive_columns, negative_mask, temperature, log_q)
        return _weighted_mean(values, sample_weight)


class SoftmaxCandidateLoss(CandidateLoss):
    """Listwise sampled softmax: -log softmax(s/T - log q) at the positive, over the positive and
    its valid negatives (logQ as in ``SampledSoftmaxLoss``)."""

    uses_log_q = True

    def per_query(self, similarities, positive_columns, negative_mask, temperature, log_q):
        logits = similarities / temperature
        if log_q is not None:
            logits = apply_logq_correction(logits, log_q)
        own = tf.one_hot(positive_columns, tf.shape(logits)[1], on_value=True, off_value=False)
        logits = tf.where(tf.logical_or(own, negative_mask), logits, tf.cast(_MASK_VALUE, logits.dtype))
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positive_columns, logits=logits)


class BinaryCrossEntropyCandidateLoss(CandidateLoss):
    """Pointwise: sigmoid(s/T) is the probability of a positive; per query,
    -log σ(s⁺/T) - mean over negatives of log(1 - σ(s⁻/T))."""

    def per_query(self, similarities, positive_columns, negative_mask, temperature, log_q):
        logits = similarities / temperature
        positive_loss = tf.nn.softplus(-_positive(logits, positive_columns))[:, 0]
        return positive_loss + _mean_over_negatives(tf.nn.softplus(logits), negative_mask)


class HingeCandidateLoss(CandidateLoss):
    """Pairwise triplet hinge on similarities: mean over negatives of max(0, margin - s⁺ + s⁻)."""

    def __init__(self, margin: float = 0.1, **kwargs: Any):
        super().__init__(**kwargs)
        self.margin = margin

    def per_query(self, similarities, positive_columns, negative_mask, temperature, log_q):
        gaps = self.margin - _positive(similarities, positive_columns) + similarities
        return _mean_over_negatives(tf.nn.relu(gaps), negative_mask)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin}


class LogisticPairwiseCandidateLoss(CandidateLoss):
    """Pairwise logistic: mean over negatives of log(1 + exp((s⁻ - s⁺) / T)) = -log σ((s⁺ - s⁻) / T).

    This one form is both BPR (Rendle et al. 2009, on the model's logits) and the smoothed triplet
    loss of EBR-style retrieval (the hinge's max(0, ·) replaced by softplus, with scale 1/T on cosines).
    """

    def per_query(self, similarities, positive_columns, negative_mask, temperature, log_q):
        gaps = (similarities - _positive(similarities, positive_columns)) / temperature
        return _mean_over_negatives(tf.nn.softplus(gaps), negative_mask)


class SampledSoftmaxLoss(tf.keras.layers.Layer):
    """Listwise sampled softmax cross-entropy with optional logQ correction and hit removal.

    ``call(logits [B, N], positive_ids [B], candidate_ids [N], candidate_log_q [N] | None,
    positive_columns [B] | None, sample_weight [B] | None) -> scalar``: the (weighted) mean over
    queries of ``-log softmax(corrected logits)[i, positive_columns[i]]``. ``positive_columns``
    defaults to the diagonal (in-batch: query i's positive is candidate i). Logits are already
    divided by the temperature; this is ``SoftmaxCandidateLoss`` with T = 1.
    """

    def __init__(self, logq_correction: bool = True, remove_accidental_hits: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits
        self.softmax = SoftmaxCandidateLoss(name="softmax")

    def call(self, logits: tf.Tensor, positive_ids: tf.Tensor, candidate_ids: tf.Tensor,
             candidate_log_q: tf.Tensor | None = None, positive_columns: tf.Tensor | None = None,
             sample_weight: tf.Tensor | None = None) -> tf.Tensor:
        if positive_columns is None:
            positive_columns = tf.range(tf.shape(logits)[0])
        if self.logq_correction and candidate_log_q is None:
            raise ValueError("SampledSoftmaxLoss(logq_correction=True) needs candidate_log_q")
        negatives = valid_negative_mask(positive_ids, candidate_ids, positive_columns, tf.shape(logits)[1],
                                        self.remove_accidental_hits)
        return self.softmax(logits, positive_columns, negatives, 1.0,
                            candidate_log_q if self.logq_correction else None, sample_weight)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "logq_correction": self.logq_correction,
                "remove_accidental_hits": self.remove_accidental_hits}


LOSSES = {
    "softmax": SoftmaxCandidateLoss,
    "bce": BinaryCrossEntropyCandidateLoss,
    "hinge": HingeCandidateLoss,
    "bpr": LogisticPairwiseCandidateLoss,
    "triplet_logistic": LogisticPairwiseCandidateLoss,
}


def make_loss(name: str, margin: float = 0.1) -> CandidateLoss:
    """The loss layer registered as ``name`` (see ``LOSSES``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")
    return HingeCandidateLoss(margin, name=name) if name == "hinge" else LOSSES[name](name=name)
