"""The MLP tower body shared by every model."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from tower_zoo.layers.dropout import StepSeededDropout


class MLP(tf.keras.layers.Layer):
    """Dense layers ``units[0] .. units[-1]``. Input [B, F]; output [B, units[-1]].

    Hidden layers use ``activation`` (and ``StepSeededDropout`` when ``dropout > 0``); the last layer uses
    ``output_activation`` (linear by default, as the output feeds a dot product).
    ``call(x, return_hidden=True)`` also returns every layer's output, for models that read
    intermediate layers (IntTower's FE-Block).
    """

    def __init__(self, units: Sequence[int], activation: str = "relu", dropout: float = 0.0,
                 output_activation: str | None = None, l2: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        if not units or any(int(u) < 1 for u in units):
            raise ValueError(f"MLP units must be a non-empty list of positive ints, got {list(units)!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP dropout must be in [0, 1), got {dropout}")
        self.units = [int(u) for u in units]
        self.activation = activation
        self.dropout = dropout
        self.output_activation = output_activation
        self.l2 = l2
        regularizer = tf.keras.regularizers.L2(l2) if l2 else None
        self.dense_layers = [
            tf.keras.layers.Dense(u, activation=activation if i < len(self.units) - 1 else output_activation,
                                  kernel_regularizer=regularizer, name=f"dense_{i}")
            for i, u in enumerate(self.units)
        ]
        self.dropout_layers = ([StepSeededDropout(dropout, name=f"dropout_{i}") for i in range(len(self.units) - 1)]
                               if dropout else [])

    def call(self, inputs: tf.Tensor, training: bool = False, return_hidden: bool = False):
        hidden = []
        x = inputs
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            hidden.append(x)
            if self.dropout_layers and i < len(self.dropout_layers):
                x = self.dropout_layers[i](x, training=training)
        return (x, hidden) if return_hidden else x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "dropout": self.dropout, "output_activation": self.output_activation, "l2": self.l2}
