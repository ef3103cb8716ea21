"""The retrieval task: a batch of positive (user, item) rows -> candidate matrix -> loss.

``RetrievalTask(loss, in_batch=..., sampled=..., hard=...)(model, batch)`` embeds the batch with the
model's towers, asks each candidate source (``tower_zoo.tasks.candidates``) for its columns, builds
the [B, C] candidate matrix with each column's log q, masks accidental hits (a column holding the row's
own positive item) and rows dropped by down-sampling, and applies the candidate loss
(``tower_zoo.tasks.losses``). It adds the model's own auxiliary terms (``model.auxiliary_loss``).

Column layout: in-batch columns first when that source is on (row i's positive is its own column);
otherwise column 0 holds each row's positive, corrected by the sampler's log(M · p) of that item, as
TensorFlow's sampled softmax corrects its true classes. With ``logq_mode="shared"`` every column is
corrected instead by its item's unigram rate log(c_j / N), whatever its source: the usual single
correction of mixed negatives, kept for comparison.

Models with several objective heads (``model.objective_names``) get one loss per head, each on the
rows positive for that objective (batch key ``objective_label(name)``), candidates embedded by that
head.

Two more model shapes (each found on the model, never by name):

* ordinal levels (``model.ordinal_levels``, GNOLR): a row's level is 1 + the sum of its nested level labels;
  the candidate similarities are cumulative per level [B, C, K] and ``ordinal_loss``
  (``tower_zoo.tasks.ordinal.NestedOrdinalLoss``) replaces the candidate loss;
* in-context training (``model.context_feature``, LongRetriever): each row's user vector is computed in the
  context (category) of its positive item, and only in-batch candidates of that same context are its
  negatives (the inclusion probability of a kept column is unchanged, so its log q is too).

``positive_code_weight`` [item vocab] multiplies each row's weight by a per-item factor of its positive
(inverse-propensity weighting by popularity, ``TrainerConfig.popularity_ipw``).

The task uses only the model's base interface; it holds constants, no variables.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.keys import KEEP, SAMPLE_WEIGHT, features_only, objective_label
from tower_zoo.tasks.candidates import (CandidateColumns, HardNegativeCandidates, InBatchCandidates,
                                        SampledCandidates, Scorer, all_gather_rows)
from tower_zoo.tasks.losses import CandidateLoss, valid_negative_mask
from tower_zoo.tasks.ordinal import NestedOrdinalLoss

LOGQ_MODES = ("per_source", "shared")


def _concat_columns(parts: list[tf.Tensor], rows: tf.Tensor | None) -> tf.Tensor:
    """Concatenates [1, C_i] (shared by every row) and [B, C_i] (per row) column blocks along columns: [1, C]
    when every block is shared, else [B, C] (shared blocks broadcast to ``rows``, or to the per-row blocks'
    row count when ``rows`` is None)."""
    if len(parts) == 1:
        return parts[0]
    if all(p.shape[0] == 1 for p in parts):
        return tf.concat(parts, axis=1)
    if rows is None:
        rows = next(tf.shape(p)[0] for p in parts if p.shape[0] != 1)
    return tf.concat([tf.broadcast_to(p, tf.stack([rows, tf.shape(p)[1]])) for p in parts], axis=1)


def row_weights(batch: Mapping[str, tf.Tensor]) -> tf.Tensor | None:
    """Per-row weight [B]: ``SAMPLE_WEIGHT`` times ``KEEP`` (down-sampling), or None when neither is given."""
    weights = [tf.cast(batch[k], tf.float32) for k in (SAMPLE_WEIGHT, KEEP) if k in batch]
    if not weights:
        return None
    return weights[0] if len(weights) == 1 else weights[0] * weights[1]


class RetrievalTask(tf.keras.layers.Layer):
    """See the module docstring.

    Args:
      loss: a ``CandidateLoss`` (softmax, bce, hinge, bpr).
      item_id_feature: the item-id feature (candidates are matched by its codes).
      in_batch: the in-batch source, or None.
      sampled: the global sampler source, or None.
      hard: the hard-negative source, or None.
      logq_correction: subtract log q from the logits (sampled softmax only).
      logq_mode: "per_source" or "shared".
      unigram_log_rate: float [item vocab] log(c_j / N), for ``logq_mode="shared"``.
      remove_accidental_hits: mask columns that hold the row's own positive item.
      ordinal_loss: the loss of models with ordinal levels (GNOLR); None: they cannot be trained.
      positive_code_weight: float [item vocab], a factor on each row's weight by its positive item (or None).
    """

    def __init__(self, loss: CandidateLoss, item_id_feature: str, in_batch: InBatchCandidates | None = None,
                 sampled: SampledCandidates | None = None, hard: HardNegativeCandidates | None = None,
                 logq_correction: bool = True, logq_mode: str = "per_source",
                 unigram_log_rate: np.ndarray | None = None, remove_accidental_hits: bool = True,
                 ordinal_loss: NestedOrdinalLoss | None = None, positive_code_weight: np.ndarray | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if in_batch is None and sampled is None:
            raise ValueError("a retrieval task needs in-batch or sampled negatives (or both)")
        if logq_mode not in LOGQ_MODES:
            raise ValueError(f"logq_mode must be one of {LOGQ_MODES}, got {logq_mode!r}")
        if logq_mode == "shared" and unigram_log_rate is None:
            raise ValueError("logq_mode='shared' needs unigram_log_rate")
        self.candidate_loss, self.item_id_feature = loss, item_id_feature
        self.in_batch, self.sampled, self.hard = in_batch, sampled, hard
        self.logq_correction, self.logq_mode = logq_correction, logq_mode
        self.remove_accidental_hits = remove_accidental_hits
        self.unigram_log_rate = (None if unigram_log_rate is None
                                 else tf.constant(np.asarray(unigram_log_rate, np.float32)))
        self.ordinal_loss = ordinal_loss
        self.positive_code_weight = (None if positive_code_weight is None
                                     else tf.constant(np.asarray(positive_code_weight, np.float32)))

    # ------------------------------------------------------------------ the candidate matrix
    def candidate_columns(self, scorer: Scorer, queries: tf.Tensor, positives: tf.Tensor,
                          batch: Mapping[str, tf.Tensor], step: tf.Tensor) -> CandidateColumns:
        """All sources' columns, concatenated: similarities, log q, codes [B, C], usable [B, C] and the
        positive's column [B]."""
        codes = batch[self.item_id_feature]
        rows = tf.shape(codes)[0]
        parts: list[CandidateColumns] = []
        if self.in_batch is not None:
            parts.append(self.in_batch.columns(scorer, queries, positives, codes, batch))
            positive_columns = parts[0].positive_columns
        else:
            similarity = scorer.paired_similarity(queries, positives[:, tf.newaxis])
            parts.append(CandidateColumns(similarity, self.sampled.positive_log_q(codes)[:, tf.newaxis],
                                          codes[:, tf.newaxis]))
            positive_columns = tf.zeros([rows], tf.int32)
        if self.sampled is not None:
            parts.append(self.sampled.columns(scorer, queries, step, self.item_id_feature))
        if self.hard is not None:
            parts.append(self.hard.columns(scorer, queries, batch, self.item_id_feature))
        return CandidateColumns(tf.concat([p.similarities for p in parts], axis=1), self._log_q(parts),
                                _concat_columns([p.codes for p in parts], rows), self._usable(parts, rows),
                                positive_columns)

    def _log_q(self, parts: list[CandidateColumns]) -> tf.Tensor:
        if self.logq_mode == "shared":
            return tf.gather(self.unigram_log_rate, _concat_columns([p.codes for p in parts], None))
        return _concat_columns([p.log_q for p in parts], None)

    @staticmethod
    def _usable(parts: list[CandidateColumns], rows: tf.Tensor) -> tf.Tensor | None:
        if all(p.usable is None for p in parts):
            return None
        return _concat_columns([p.usable if p.usable is not None else tf.ones_like(p.codes, tf.bool) for p in parts],
                               rows)

    def negative_mask(self, columns: CandidateColumns, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """[B, C] bool: the usable negatives of each row (accidental hits and unusable columns masked)."""
        negatives = valid_negative_mask(batch[self.item_id_feature], columns.codes, columns.positive_columns,
                                        tf.shape(columns.similarities)[1], self.remove_accidental_hits)
        if columns.usable is not None:
            negatives = tf.logical_and(negatives, columns.usable)
        return negatives

    def head_loss(self, scorer: Scorer, queries: tf.Tensor, positives: tf.Tensor, batch: Mapping[str, tf.Tensor],
                  temperature: tf.Tensor, step: tf.Tensor, weights: tf.Tensor | None,
                  usable: tf.Tensor | None = None) -> tf.Tensor:
        """The candidate loss of one tower pair (or objective head) on the batch: a scalar. ``usable`` [B, C]
        (optional) further restricts each row's negatives."""
        columns = self.candidate_columns(scorer, queries, positives, batch, step)
        negatives = self.negative_mask(columns, batch)
        if usable is not None:
            negatives = tf.logical_and(negatives, usable)
        return self.candidate_loss(columns.similarities, columns.positive_columns, negatives, temperature,
                                   columns.log_q if self.logq_correction else None, weights)

    def ordinal_head_loss(self, model, features, batch, temperature, step, weights, training) -> tf.Tensor:
        """GNOLR: cumulative per-level similarities [B, C, K] and the nested ordinal loss."""
        if self.ordinal_loss is None:
            raise ValueError(f"model {model.model_name!r} has ordinal levels: the task needs ordinal_loss=")
        levels = 1 + tf.add_n([tf.cast(batch[objective_label(name)], tf.int32) for name in model.ordinal_levels])
        scorer = Scorer(lambda f: model.item_embedding(f, training=training), model.cumulative_similarity,
                        model.paired_cumulative_similarity)
        towers = model(features, training=training)
        columns = self.candidate_columns(scorer, towers["user"], towers["item"], batch, step)
        return self.ordinal_loss(columns.similarities, model.ordinal_logits(columns.similarities), levels,
                                 columns.positive_columns, self.negative_mask(columns, batch), temperature,
                                 columns.log_q if self.logq_correction else None, weights)

    def in_context_head_loss(self, model, features, batch, temperature, step, weights, training) -> tf.Tensor:
        """LongRetriever: the user vector in the positive's context; negatives from that context only."""
        if self.sampled is not None or self.hard is not None:
            raise ValueError(f"model {model.model_name!r} trains in context (negatives of the positive's category "
                             "from the batch): use negatives='in_batch' without hard negatives")
        contexts = tf.cast(features[model.context_feature], tf.int32)
        users = model.context_user_embedding(features, contexts, training=training)
        items = model.context_item_embedding(features, training=training)
        scorer = Scorer(lambda f: model.context_item_embedding(f, training=training),
                        lambda u, v: tf.matmul(u, v, transpose_b=True), lambda u, v: tf.einsum("bd,bmd->bm", u, v))
        column_contexts, _ = all_gather_rows(contexts)
        same_context = tf.equal(contexts[:, tf.newaxis], column_contexts[tf.newaxis, :])
        return self.head_loss(scorer, users, items, batch, temperature, step, weights, usable=same_context)

    # ------------------------------------------------------------------ the task
    term_names = ("loss", "retrieval_loss", "auxiliary_loss")

    def call(self, model, batch: Mapping[str, tf.Tensor], training: bool = True) -> dict[str, tf.Tensor]:
        """``{"loss": total, "retrieval_loss": ..., "auxiliary_loss": ...}`` for ``batch`` under ``model``."""
        features = features_only(batch)
        step = model.optimizer.iterations if model.optimizer is not None else tf.constant(0, tf.int64)
        temperature = model.temperature.value
        weights = row_weights(batch)
        if self.positive_code_weight is not None:
            factor = tf.gather(self.positive_code_weight, batch[self.item_id_feature])
            weights = factor if weights is None else weights * factor
        objectives = getattr(model, "objective_names", None)
        auxiliary = tf.constant(0.0)
        if getattr(model, "ordinal_levels", None):
            loss = self.ordinal_head_loss(model, features, batch, temperature, step, weights, training)
        elif getattr(model, "context_feature", None):
            loss = self.in_context_head_loss(model, features, batch, temperature, step, weights, training)
        elif objectives:
            users = model.objective_user_embedding(features, training=training)
            items = model.objective_item_embedding(features, training=training)
            loss = tf.constant(0.0)
            for k, name in enumerate(objectives):
                scorer = Scorer(lambda f, k=k: model.objective_item_embedding(f, training=training)[:, k],
                                model.similarity, model.paired_similarity)
                label = tf.cast(batch[objective_label(name)], tf.float32)
                head_weights = label if weights is None else label * weights
                loss += self.head_loss(scorer, users[:, k], items[:, k], batch, temperature, step, head_weights)
        else:
            towers = model(features, training=training)
            scorer = Scorer(lambda f: model.item_embedding(f, training=training), model.similarity,
                            model.paired_similarity)
            loss = self.head_loss(scorer, towers["user"], towers["item"], batch, temperature, step, weights)
            auxiliary = model.auxiliary_loss(towers["user"], towers["item"], features, training=training)
        return {"loss": loss + auxiliary, "retrieval_loss": loss, "auxiliary_loss": auxiliary}

    def get_config(self) -> dict:
        return {**super().get_config(), "loss": self.candidate_loss.name, "item_id_feature": self.item_id_feature,
                "sources": [s.name for s in (self.in_batch, self.sampled, self.hard) if s is not None],
                "logq_correction": self.logq_correction, "logq_mode": self.logq_mode,
                "remove_accidental_hits": self.remove_accidental_hits,
                "ordinal_loss": None if self.ordinal_loss is None else self.ordinal_loss.get_config(),
                "positive_code_weight": self.positive_code_weight is not None}
