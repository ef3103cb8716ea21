"""Dropout whose randomness is part of the model's checkpoint."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


class StepSeededDropout(tf.keras.layers.Layer):
    """Inverted dropout with stateless draws seeded by (a per-layer stream seed, a call counter).

    Input any shape; output the same shape. In training, each element is kept with probability
    1 - ``rate`` and scaled by 1 / (1 - rate); at inference it is the identity.

    Both the stream seed and the counter are non-trainable weights, so a checkpoint records where the
    random stream stands: a run resumed from it draws exactly the masks an uninterrupted run draws
    (Keras' own Dropout keeps its state in op kernels no checkpoint sees). The stream seed is ``seed``
    if given, else drawn from NumPy's global generator when the layer is built (so it follows
    ``tf.keras.utils.set_random_seed`` and differs between layers).
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate, self.seed = float(rate), seed

    def build(self, input_shape) -> None:
        stream = self.seed if self.seed is not None else int(np.random.randint(1, 2**31 - 1))
        self.stream = self.add_weight("stream", shape=(), dtype=tf.int64, trainable=False,
                                      initializer=tf.keras.initializers.Constant(stream))
        self.calls = self.add_weight("calls", shape=(), dtype=tf.int64, initializer="zeros", trainable=False,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        if not training or self.rate == 0.0:
            return inputs
        seed = tf.stack([self.stream.read_value(), self.calls.read_value()])
        with tf.control_dependencies([seed]):
            self.calls.assign_add(1)
        keep = tf.random.stateless_uniform(tf.shape(inputs), seed, dtype=inputs.dtype) >= self.rate
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
