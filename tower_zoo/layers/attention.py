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
