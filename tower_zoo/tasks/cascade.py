"""List-wise tasks that train a pre-ranker for its place in a cascade (retrieval -> pre-ranking -> ranking).

A batch holds whole candidate lists: ``group_size`` consecutive rows are one request's candidates (the
retrieval stage's top n for that user), each with the ranker's logit ``batch[TEACHER_LOGIT]`` and a 0/1
label ``batch[LABEL]`` (1 for an item the user engaged with; candidates the user was never shown are 0).
The student's logits come from the model's row-aligned ``pair_logits``; the losses see them as [G, n].

* ``RankFlowTask`` (Qin et al., SIGIR 2022, "RankFlow: Joint Optimization of Multi-Stage Cascade Ranking
  Systems as Flows"): the pre-ranker trained on the data its stage actually sees — the retrieval-truncated
  candidate space, unexposed candidates as negatives — with guidance from its successor, the ranker:

      L = BCE(labels) + mse_weight · MSE(s, sg(t)) + rank_weight · mean_{t_i > t_j, same list} softplus(s_j - s_i)

  Its warm-up on exposures is an ordinary ``task="ranking"`` fit before it (``tower_zoo.cascade`` runs both).
* ``ARFTask`` (Wang et al. 2023, "Adaptive Neural Ranking Framework"): the relaxed Recall@m@k loss and the
  full-order (OPA) loss of ``tower_zoo.tasks.sorting`` against the ranker's order, combined by learned
  uncertainty weights (Kendall et al. 2018): L = Σ_t exp(-w_t) · L_t + w_t, w_t = log σ_t² learned; plus
  ``label_weight`` · BCE(labels) (0 by default: the paper trains on the ranker's order).

Both add the model's own auxiliary terms, as ``RankingTask`` does.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from tower_zoo.data.schema.keys import LABEL, TEACHER_LOGIT, features_only
from tower_zoo.tasks.ranking import weighted_mean
from tower_zoo.tasks.retrieval import row_weights
from tower_zoo.tasks.sorting import permutation_cross_entropy_loss, recall_m_k_surrogate_loss


def grouped(values: tf.Tensor, group_size: int) -> tf.Tensor:
    """[G · n] row values -> [G, n] lists."""
    return tf.reshape(values, [-1, group_size])


def within_list_rank_loss(student: tf.Tensor, teacher: tf.Tensor) -> tf.Tensor:
    """Pairwise logistic loss over every pair a list's teacher orders: [G, n] each -> scalar."""
    ordered = tf.cast(teacher[:, :, tf.newaxis] > teacher[:, tf.newaxis, :], student.dtype)
    gaps = student[:, :, tf.newaxis] - student[:, tf.newaxis, :]
    return tf.math.divide_no_nan(tf.reduce_sum(tf.nn.softplus(-gaps) * ordered), tf.reduce_sum(ordered))


class UncertaintyWeights(tf.keras.layers.Layer):
    """Learned log-variances w_t of ``num_losses`` losses: ``call(losses [T]) -> Σ exp(-w_t) L_t + w_t``."""

    def __init__(self, num_losses: int, **kwargs):
        super().__init__(**kwargs)
        self.num_losses = int(num_losses)
        self.log_variances = self.add_weight("log_variances", shape=(self.num_losses,), initializer="zeros")

    def call(self, losses: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.exp(-self.log_variances) * losses + self.log_variances)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_losses": self.num_losses}


class _ListTask(tf.keras.layers.Layer):
    """Shared plumbing: the student's list logits, the labels' BCE, the model's auxiliary terms."""

    def __init__(self, group_size: int, **kwargs):
        super().__init__(**kwargs)
        if group_size < 2:
            raise ValueError(f"list-wise training needs lists of >= 2 candidates, got group_size={group_size}")
        self.group_size = int(group_size)

    def student(self, model, batch, training: bool):
        """(logits [B], towers, features) of the batch's rows."""
        features = features_only(batch)
        towers = model(features, training=training)
        return model.pair_logits(towers["user"], towers["item"]), towers, features

    @staticmethod
    def label_loss(logits: tf.Tensor, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        labels = tf.cast(batch[LABEL], logits.dtype)
        return weighted_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), row_weights(batch))

    @staticmethod
    def auxiliary(model, towers, features, batch) -> tf.Tensor:
        return model.auxiliary_loss(towers["user"], towers["item"], {**features, LABEL: batch[LABEL]}, training=True)

    def get_config(self) -> dict:
        return {**super().get_config(), "group_size": self.group_size}


class RankFlowTask(_ListTask):
    """RankFlow's pre-ranker loss on candidate lists; see the module docstring."""

    term_names = ("loss", "label_loss", "distillation_loss", "rank_loss", "auxiliary_loss")

    def __init__(self, group_size: int, mse_weight: float = 1.0, rank_weight: float = 1.0, **kwargs):
        super().__init__(group_size, **kwargs)
        self.mse_weight, self.rank_weight = float(mse_weight), float(rank_weight)

    def call(self, model, batch: Mapping[str, tf.Tensor], training: bool = True) -> dict[str, tf.Tensor]:
        logits, towers, features = self.student(model, batch, training)
        teacher = tf.stop_gradient(tf.cast(batch[TEACHER_LOGIT], logits.dtype))
        label_loss = self.label_loss(logits, batch)
        distillation = tf.reduce_mean(tf.square(logits - teacher))
        rank = within_list_rank_loss(grouped(logits, self.group_size), grouped(teacher, self.group_size))
        auxiliary = self.auxiliary(model, towers, features, batch)
        total = label_loss + self.mse_weight * distillation + self.rank_weight * rank + auxiliary
        return {"loss": total, "label_loss": label_loss, "distillation_loss": distillation, "rank_loss": rank,
                "auxiliary_loss": auxiliary}

    def get_config(self) -> dict:
        return {**super().get_config(), "mse_weight": self.mse_weight, "rank_weight": self.rank_weight}


class ARFTask(_ListTask):
    """ARF's uncertainty-weighted Recall@m@k and full-order losses on candidate lists; see the module docstring.

    Args:
      group_size: n, candidates per list.
      m, k: the pre-ranker keeps m of the n; the ranker's top k are the items it should keep.
      weights: the ``UncertaintyWeights(2)`` layer (owned by the Trainer, so it persists across fits and is
        checkpointed and optimized with the model).
      temperature: NeuralSort's τ.
      label_weight: weight of the BCE on the labels (0: the ranker's order only).
    """

    term_names = ("loss", "recall_loss", "order_loss", "label_loss", "auxiliary_loss")

    def __init__(self, group_size: int, m: int, k: int, weights: UncertaintyWeights, temperature: float = 1.0,
                 label_weight: float = 0.0, **kwargs):
        super().__init__(group_size, **kwargs)
        if not 1 <= k <= m <= group_size:
            raise ValueError(f"need 1 <= k <= m <= group_size, got k={k}, m={m}, group_size={group_size}")
        if weights.num_losses != 2:
            raise ValueError("ARF weighs two losses: pass UncertaintyWeights(2)")
        self.m, self.k, self.loss_weights = int(m), int(k), weights
        self.temperature, self.label_weight = float(temperature), float(label_weight)

    def call(self, model, batch: Mapping[str, tf.Tensor], training: bool = True) -> dict[str, tf.Tensor]:
        logits, towers, features = self.student(model, batch, training)
        student = grouped(logits, self.group_size)
        teacher = grouped(tf.cast(batch[TEACHER_LOGIT], logits.dtype), self.group_size)
        recall = recall_m_k_surrogate_loss(student, teacher, self.m, self.k, self.temperature)
        order = permutation_cross_entropy_loss(student, teacher, self.temperature)
        label_loss = self.label_loss(logits, batch)
        auxiliary = self.auxiliary(model, towers, features, batch)
        total = self.loss_weights(tf.stack([recall, order])) + self.label_weight * label_loss + auxiliary
        return {"loss": total, "recall_loss": recall, "order_loss": order, "label_loss": label_loss,
                "auxiliary_loss": auxiliary}

    def get_config(self) -> dict:
        return {**super().get_config(), "m": self.m, "k": self.k, "temperature": self.temperature,
                "label_weight": self.label_weight}
