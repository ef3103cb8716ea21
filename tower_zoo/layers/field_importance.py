"""COLD's squeeze-excitation feature weighting, the basis of its feature selection."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


class FieldImportance(tf.keras.layers.Layer):
    """Scales each field by a learned importance in (0, 1) computed from all fields together.

    Input [B, F, D]; ``call`` returns (the fields scaled, [B, F, D]; the importances s, [B, F]) with
    s = sigmoid(W · flatten(fields) + b): one fully connected layer from the concatenated field embeddings to
    one scalar per field (COLD, Wang et al. 2020). The mean of s over data ranks the fields; keeping the top
    ones under a budget is COLD's feature selection (``tower_zoo.models.cold.rank_fields``).
    """

    def build(self, input_shape) -> None:
        fields, dim = int(input_shape[1]), int(input_shape[2])
        self.num_fields, self.field_dim = fields, dim
        self.excitation = tf.keras.layers.Dense(fields, activation="sigmoid", name="excitation")
        self.excitation.build(tf.TensorShape([None, fields * dim]))
        super().build(input_shape)

    def call(self, fields: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        importance = self.excitation(tf.reshape(fields, [-1, self.num_fields * self.field_dim]))
        return fields * importance[..., tf.newaxis], importance

    def get_config(self) -> dict[str, Any]:
        return super().get_config()
