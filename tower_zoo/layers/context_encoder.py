"""A small contextual encoder over a padded item sequence: recency positions and Transformer blocks."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def recency_positions(mask: tf.Tensor) -> tf.Tensor:
    """int32 [B, L]: for each valid position, how many valid positions come after it (0 = the most recent
    item); padding positions get 0 too (they are masked wherever they are read).

    Counting only valid positions makes the position of an item independent of where the padding sits."""
    valid = tf.cast(mask, tf.int32)
    after = tf.cumsum(valid, axis=1, exclusive=True, reverse=True)
    return after * valid


class TransformerBlock(tf.keras.layers.Layer):
    """Post-LN Transformer encoder block (self-attention, then a ReLU feed-forward; each with a residual and
    layer normalization). Inputs: ``values`` [B, L, D], ``mask`` [B, L] bool. Output [B, L, D].

    A padded position is never attended to as a key, so it cannot change a valid position's output."""

    def __init__(self, num_heads: int, feed_forward_units: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_heads, self.feed_forward_units = num_heads, feed_forward_units

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"TransformerBlock: width {dim} is not divisible by num_heads={self.num_heads}")
        self.attention = tf.keras.layers.MultiHeadAttention(self.num_heads, dim // self.num_heads, name="attention")
        self.attention_norm = tf.keras.layers.LayerNormalization(name="attention_norm")
        self.hidden = tf.keras.layers.Dense(self.feed_forward_units, activation="relu", name="feed_forward_hidden")
        self.output_dense = tf.keras.layers.Dense(dim, name="feed_forward_output")
        self.output_norm = tf.keras.layers.LayerNormalization(name="feed_forward_norm")
        super().build(input_shape)

    def call(self, values: tf.Tensor, mask: tf.Tensor, training: bool = False) -> tf.Tensor:
        keys_valid = mask[:, tf.newaxis, :]                                    # [B, 1, L]: which keys to read
        attended = self.attention(values, values, attention_mask=keys_valid, training=training)
        values = self.attention_norm(values + attended)
        return self.output_norm(values + self.output_dense(self.hidden(values)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_heads": self.num_heads, "feed_forward_units": self.feed_forward_units}


class ContextEncoder(tf.keras.layers.Layer):
    """Item vectors of a history + learned recency-position embeddings, then ``num_layers`` Transformer
    blocks (none: the position-aware embeddings as they are).

    Inputs: ``values`` [B, L, D] (padding rows zero), ``mask`` [B, L] bool. Output [B, L, D], each valid
    position's vector in the context of the whole (valid) sequence."""

    def __init__(self, max_length: int, num_layers: int = 1, num_heads: int = 2, feed_forward_units: int = 128,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if num_layers < 0 or max_length < 1:
            raise ValueError(f"ContextEncoder needs num_layers >= 0 and max_length >= 1, got {num_layers}, "
                             f"{max_length}")
        self.max_length, self.num_layers = max_length, num_layers
        self.num_heads, self.feed_forward_units = num_heads, feed_forward_units
        self.blocks = [TransformerBlock(num_heads, feed_forward_units, name=f"block_{i}") for i in range(num_layers)]

    def build(self, input_shape):
        self.positions = self.add_weight("positions", shape=(self.max_length, int(input_shape[-1])),
                                         initializer=tf.keras.initializers.RandomNormal(stddev=0.02))
        super().build(input_shape)

    def call(self, values: tf.Tensor, mask: tf.Tensor, training: bool = False) -> tf.Tensor:
        values = values + tf.gather(self.positions, recency_positions(mask))
        for block in self.blocks:
            values = block(values, mask, training=training)
        return values

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_length": self.max_length, "num_layers": self.num_layers,
                "num_heads": self.num_heads, "feed_forward_units": self.feed_forward_units}
