"""All-pairs scoring for models whose score is not a dot product of two vectors."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def all_pairs_logits(pair_logits: Callable, user_state, item_state) -> tf.Tensor:
    """[B, N] logits of every user of ``user_state`` (nested tensors with leading B) against every item of
    ``item_state`` (leading N), by tiling both sides to B · N rows and calling ``pair_logits`` once."""
    users = tf.shape(tf.nest.flatten(user_state)[0])[0]
    items = tf.shape(tf.nest.flatten(item_state)[0])[0]
    tiled_users = tf.nest.map_structure(lambda t: tf.repeat(t, items, axis=0), user_state)
    tiled_items = tf.nest.map_structure(
        lambda t: tf.tile(t, tf.concat([[users], tf.ones_like(tf.shape(t)[1:])], 0)), item_state)
    return tf.reshape(pair_logits(tiled_users, tiled_items), tf.stack([users, items]))
