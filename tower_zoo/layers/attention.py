"""Attention pooling over a masked sequence."""

from __future__ import annotations

import tensorflow as tf


def masked_attention_pool(logits: tf.Tensor, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Σ_t softmax_t(logits) · values_t over valid positions.

    logits [B, T], values [B, T, D], mask [B, T] bool -> [B, D]; an all-padding row gives zeros.
    """
    logits = tf.where(mask, logits, tf.cast(-1e9, logits.dtype))
    weights = tf.nn.softmax(logits, axis=-1) * tf.cast(mask, logits.dtype)
    return tf.einsum("bt,btd->bd", weights, values)


class MultiHeadTargetAttention(tf.keras.layers.Layer):
    """Multi-head attention of query vectors over a masked sequence (keys = values = the sequence).

    ``call(queries, sequence, mask) -> [B, Q, output_dim]`` with ``queries`` [B, Q, D] (each row its own
    queries, e.g. its candidate) or [Q, D] (the same queries for every row, e.g. codewords), ``sequence``
    [B, T, D] and ``mask`` [B, T] bool. Head h: softmax_t((W_q^h q)·(W_k^h x_t) / sqrt(d_h)) over valid
    positions, pooling W_v^h x_t; the heads' outputs are concatenated and projected by W_o. A row with
    no valid position attends to nothing (zeros before W_o). Cost: Q·T·H·d_h multiply-adds per row.
    """

    def __init__(self, num_heads: int, head_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or head_dim < 1 or output_dim < 1:
            raise ValueError(f"need num_heads, head_dim, output_dim >= 1, got {num_heads}, {head_dim}, {output_dim}")
        self.num_heads, self.head_dim, self.output_dim = num_heads, head_dim, output_dim
        width = num_heads * head_dim
        self.query = tf.keras.layers.Dense(width, use_bias=False, name="query")
        self.key = tf.keras.layers.Dense(width, use_bias=False, name="key")
        self.value = tf.keras.layers.Dense(width, use_bias=False, name="value")
        self.output_projection = tf.keras.layers.Dense(output_dim, use_bias=False, name="output")

    def _split(self, x: tf.Tensor) -> tf.Tensor:
        """[..., H·d] -> [..., H, d]."""
        return tf.reshape(x, tf.concat([tf.shape(x)[:-1], [self.num_heads, self.head_dim]], 0))

    def call(self, queries: tf.Tensor, sequence: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        q = self._split(self.query(queries)) / tf.sqrt(tf.cast(self.head_dim, sequence.dtype))
        k, v = self._split(self.key(sequence)), self._split(self.value(sequence))     # [B, T, H, d]
        shared = queries.shape.rank == 2
        logits = tf.einsum("qhd,bthd->bhqt" if shared else "bqhd,bthd->bhqt", q, k)   # [B, H, Q, T]
        valid = tf.cast(mask, logits.dtype)[:, tf.newaxis, tf.newaxis, :]
        weights = tf.nn.softmax(logits + (valid - 1.0) * 1e9, axis=-1) * valid
        pooled = tf.einsum("bhqt,bthd->bqhd", weights, v)
        pooled = tf.reshape(pooled, tf.concat([tf.shape(pooled)[:2], [self.num_heads * self.head_dim]], 0))
        return self.output_projection(pooled)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_heads": self.num_heads, "head_dim": self.head_dim,
                "output_dim": self.output_dim}
