"""The ranking task: pointwise training on exposures, for pre-ranking models.

Each row of a batch is one exposure (a user shown an item) with a 0/1 label (``batch[LABEL]``). The
loss is the (weighted) mean binary cross-entropy of the model's row-aligned logit — or, for a model with one
head per objective (``objective_names`` and ``objective_logits``), the sum over objectives of each head's BCE
on its own labels (``batch[objective_label(name)]``) — plus, when the batch
carries a ranker's logits (``batch[TEACHER_LOGIT]``), ``distill_weight`` times a distillation loss, plus
the model's own auxiliary terms (which see the labels, e.g. IntTower's CIR on clicked rows).
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from tower_zoo.data.schema.keys import LABEL, TEACHER_LOGIT, features_only, objective_label
from tower_zoo.tasks.retrieval import row_weights


def weighted_mean(values: tf.Tensor, weights: tf.Tensor | None) -> tf.Tensor:
    """Mean of ``values`` [B] weighted by ``weights`` [B] (plain mean when None; 0 when all weights are 0)."""
    if weights is None:
        return tf.reduce_mean(values)
    return tf.math.divide_no_nan(tf.reduce_sum(values * weights), tf.reduce_sum(weights))


def distillation_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor) -> tf.Tensor:
    """MSE between logits plus a pairwise rank loss: for every in-batch pair the teacher orders
    (t_i > t_j), softplus(-(s_i - s_j)) averaged over those pairs. Inputs [B]; output scalar."""
    teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
    mse = tf.reduce_mean(tf.square(student_logits - teacher_logits))
    ordered = tf.cast(teacher_logits[:, tf.newaxis] > teacher_logits[tf.newaxis, :], student_logits.dtype)
    gaps = student_logits[:, tf.newaxis] - student_logits[tf.newaxis, :]
    rank = tf.math.divide_no_nan(tf.reduce_sum(tf.nn.softplus(-gaps) * ordered), tf.reduce_sum(ordered))
    return mse + rank


class RankingTask(tf.keras.layers.Layer):
    """Pointwise BCE on exposure labels (+ distillation, + the model's terms); see the module docstring."""

    def __init__(self, distill_weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not (distill_weight >= 0 and distill_weight < float("inf")):
            raise ValueError(f"distill_weight must be finite and >= 0, got {distill_weight}")
        self.distill_weight = float(distill_weight)

    term_names = ("loss", "ranking_loss", "auxiliary_loss")

    def call(self, model, batch: Mapping[str, tf.Tensor], training: bool = True) -> dict[str, tf.Tensor]:
        """``{"loss": total, "ranking_loss": BCE, "auxiliary_loss": ...}`` for ``batch`` under ``model``."""
        features = features_only(batch)
        towers = model(features, training=training)
        logits = model.pair_logits(towers["user"], towers["item"])
        labels = tf.cast(batch[LABEL], logits.dtype)
        weights = row_weights(batch)
        objectives = getattr(model, "objective_names", None) if hasattr(model, "objective_logits") else None
        if objectives:
            heads = model.objective_logits(towers["user"], towers["item"])  # [B, K]
            loss = tf.add_n([weighted_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(batch[objective_label(name)], heads.dtype), logits=heads[:, k]), weights)
                for k, name in enumerate(objectives)])
        else:
            loss = weighted_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), weights)
        if TEACHER_LOGIT in batch:
            loss += self.distill_weight * distillation_loss(logits, batch[TEACHER_LOGIT])
        auxiliary = model.auxiliary_loss(towers["user"], towers["item"], {**features, LABEL: labels},
                                         training=training)
        return {"loss": loss + auxiliary, "ranking_loss": loss, "auxiliary_loss": auxiliary}

    def get_config(self) -> dict:
        return {**super().get_config(), "distill_weight": self.distill_weight}
