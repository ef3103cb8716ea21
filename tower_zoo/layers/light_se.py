"""Light-SE: squeeze-excitation field weighting (IntTower, CIKM 2022)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


class LightSE(tf.keras.layers.Layer):
    """Re-weights feature fields by learned importance.

    Input [B, F, D]. Squeeze: z = mean over D -> [B, F]; excitation: a = softmax(W z + b) over the F
    fields -> [B, F]; output E + E ⊙ a -> [B, F, D] (the residual keeps every field's signal).
    """

    def build(self, input_shape):
        self.excitation = tf.keras.layers.Dense(int(input_shape[1]), name="excitation")
        super().build(input_shape)

    def call(self, fields: tf.Tensor) -> tf.Tensor:
        weights = tf.nn.softmax(self.excitation(tf.reduce_mean(fields, axis=-1)), axis=-1)
        return fields + fields * weights[..., tf.newaxis]

    def get_config(self) -> dict[str, Any]:
        return super().get_config()
