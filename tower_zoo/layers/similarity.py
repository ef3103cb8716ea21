"""Turning tower outputs into logits: L2 normalization and temperature."""

from __future__ import annotations

import math
from typing import Any

import tensorflow as tf


class L2Normalize(tf.keras.layers.Layer):
    """Scales vectors to unit L2 norm along ``axis``. Input [..., D]; output the same shape.

    With both towers normalized, the dot product is the cosine similarity in [-1, 1].
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-12, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.math.l2_normalize(inputs, axis=self.axis, epsilon=self.epsilon)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


class Temperature(tf.keras.layers.Layer):
    """Divides similarities by a temperature T > 0. Input any shape; output the same shape.

    A small T (e.g. 0.05) sharpens a softmax over cosine similarities, which otherwise can only
    spread logits over [-1, 1]. With ``learnable=True`` the layer learns log T (so T stays
    positive), clipped to [``min_value``, ``max_value``].
    """

    def __init__(self, initial: float = 1.0, learnable: bool = False, min_value: float = 1e-3,
                 max_value: float = 100.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not initial > 0:
            raise ValueError(f"temperature must be > 0, got {initial}")
        self.initial = float(initial)
        self.learnable = learnable
        self.min_value = min_value
        self.max_value = max_value
        # Created here, not in build(): ``value`` is read before the layer is ever called.
        self.log_temperature = self.add_weight(
            "log_temperature", shape=(), trainable=learnable,
            initializer=tf.keras.initializers.Constant(math.log(self.initial)))

    @property
    def value(self) -> tf.Tensor:
        """The current temperature T (a scalar)."""
        return tf.clip_by_value(tf.exp(self.log_temperature), self.min_value, self.max_value)

    def call(self, similarities: tf.Tensor) -> tf.Tensor:
        return similarities / tf.cast(self.value, similarities.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial": self.initial, "learnable": self.learnable,
                "min_value": self.min_value, "max_value": self.max_value}
