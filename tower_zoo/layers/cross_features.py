"""User × item cross features for pre-rankers that score each (user, candidate) pair.

Production pre-rankers (COLD, three-tower models) feed engineered cross statistics (user-category CTR,
user-item counts). From interaction logs alone we learn the equivalent: an *affinity* embedding per item,
the user's history summarized as the mean affinity vector of its items (once per request), and per
candidate two cross fields:

* h ⊙ a — the element-wise match of the history summary h [B, D] and the candidate's affinity vector
  a [B, D];
* ⟨h, a⟩ · w + b — their dot product (how much the candidate looks like what the user watched), lifted to a
  field by a learned direction w [D].

Cost: h once per request (a pooled lookup over the history), a cached per item, 2·D multiply-adds per
candidate.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tower_zoo.features.embedding import NumericEmbedding, PooledSequenceEmbedding


class HistoryAffinityCross(tf.keras.layers.Layer):
    """``user_summary(history ids [B, L]) -> h [B, D]``; ``item_vector(item ids [B]) -> a [B, D]``;
    ``call(h [..., D], a [..., D]) -> cross fields [..., 2, D]``. History and candidates share one table."""

    def __init__(self, vocab_size: int, dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.history = PooledSequenceEmbedding(vocab_size, dim, name="affinity")
        self.similarity_field = NumericEmbedding(dim, name="similarity_field")

    def build(self, input_shape=None) -> None:
        self.history.build(tf.TensorShape([None, None]))
        self.similarity_field.build(tf.TensorShape([None]))
        super().build(input_shape)

    def user_summary(self, history_ids: tf.Tensor) -> tf.Tensor:
        return self.history(history_ids)

    def item_vector(self, item_ids: tf.Tensor) -> tf.Tensor:
        return self.history.embedding(item_ids)

    def call(self, summary: tf.Tensor, item_vector: tf.Tensor) -> tf.Tensor:
        match = summary * item_vector
        similarity = tf.reduce_sum(match, axis=-1)
        lifted = tf.reshape(self.similarity_field(tf.reshape(similarity, [-1])), tf.shape(match))
        return tf.stack([match, lifted], axis=-2)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}
