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


def max_similarity(query_heads: tf.Tensor, candidate_heads: tf.Tensor) -> tf.Tensor:
    """Multi-head MaxSim: Σ_i max_j <q_i, c_j>, each query head matched to its best candidate head.

    ``query_heads`` [B, Hq, d]; ``candidate_heads`` either [N, Hc, d] (every query row against every
    candidate: -> [B, N]) or [B, M, Hc, d] (each query row against its own M candidates: -> [B, M]).
    The max runs over the candidate heads j, the sum over the query heads i; it costs Hq·Hc dot products
    of width d per (query, candidate) pair.
    """
    pattern = "bid,njd->bnij" if candidate_heads.shape.rank == 3 else "bid,bmjd->bmij"
    products = tf.einsum(pattern, query_heads, candidate_heads)  # [B, N or M, Hq, Hc]
    return tf.reduce_sum(tf.reduce_max(products, axis=-1), axis=-1)
