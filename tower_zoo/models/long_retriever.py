"""``long_retriever``: LongRetriever-style retrieval over a long, category-tagged history (Ren et al.,
"LongRetriever: Towards Ultra-Long Sequence based Candidate Retrieval for Recommendation", arXiv 2508.15486).

The paper's full text and code were not in our stores; this follows its abstract and a published summary of
its method: mutually exclusive item categories serve as interpretable interests; for each interest a
search-based step keeps the sub-sequence of the user's lifelong behaviour in that category; the user is
represented by one vector per interest; *in-context training* trains the user vector of the positive's
category against candidates of that category (no extra cost: one user vector per example); *multi-context
retrieval* searches once per chosen category context and merges. Our reading, and its uncertainty: how the
sub-sequence is encoded, how contexts are chosen at serving and how lists are merged are not specified in
what we could read; the choices below are ours.

User side, in context c (a category code):

* SIM hard search: the history items whose category is c (``history_category == c``), attended with the
  context's embedding as query (keys and query projected, softmax over the sub-sequence, zeros if empty);
* the last ``recent_length`` history items, mean-pooled (every context sees them);
* the static user features (id, demographics) and the context embedding; log(1 + sub-sequence length);
* an MLP over their concatenation, L2-normalized: u_c [D].

Item side: an MLP over the item's features, L2-normalized: v [D]; and its category c(v).

Score: <u_{c(v)}, v> / T. For the base interface ``user_embedding`` returns every context's vector
[B, V, D + V] (V = the category vocabulary; V zeros appended so a mean of the user's vectors can query an
index of item vectors) and ``item_embedding`` [v, one_hot(c(v))] [B, D + V], so ``similarity`` scores each
item with the user's vector of its category: decomposable, and exhaustive over all contexts.
``prepare_data`` (used by the run harness through ``tower_zoo.registry.prepare_data``) adds the item
categories a plain dataset lacks (``tower_zoo.data.memory.categories.categorized``). Training
(``tower_zoo.tasks.retrieval``, in-context branch) computes only the positive's context per row
(``context_user_embedding``) and masks in-batch candidates of other categories.

Serving (``tower_zoo.evaluation.multi_context``): per request, the user's top-C categories by history
count; C user vectors (C attention passes over the history, O(C · L · D)); C searches, each over the items of
one category (one index per category); the C lists merged (quota by the categories' history shares, or by
score). Items cache v (D floats) and their category.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import tensorflow as tf

from tower_zoo.data.memory.categories import CATEGORY_FEATURE, HISTORY_CATEGORY_FEATURE, categorized
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.features import FieldEmbedding, SequenceEmbedding
from tower_zoo.layers import MLP, L2Normalize, MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class LongRetrieverConfig(TwoTowerConfig):
    """history_feature / history_category_feature: the long history and each item's category (user side);
    context_feature: the item's category (item side); recent_length: items every context also sees."""

    embedding_dim: int = 32
    hidden_units: tuple[int, ...] = (128, 64)
    history_feature: str = HISTORY_FEATURE
    history_category_feature: str = HISTORY_CATEGORY_FEATURE
    context_feature: str = CATEGORY_FEATURE
    recent_length: int = 20
    temperature: float = 0.05

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_at_least(self, {"recent_length": 1})


class CategorySubsequenceAttention(tf.keras.layers.Layer):
    """SIM hard search + attention. Inputs: history vectors [B, L, D], history categories int [B, L], valid
    mask [B, L], context embeddings [B, C, D] and context codes int [B, C]. Output: ([B, C, D] pooled
    sub-sequence per context, zeros where it is empty; [B, C] sub-sequence lengths)."""

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.query = tf.keras.layers.Dense(dim, use_bias=False, name="query")
        self.key = tf.keras.layers.Dense(dim, use_bias=False, name="key")
        super().build(input_shape)

    def call(self, values, categories, valid, context_vectors, contexts):
        match = tf.logical_and(valid[:, tf.newaxis, :],
                               tf.equal(categories[:, tf.newaxis, :], contexts[:, :, tf.newaxis]))  # [B, C, L]
        scores = tf.einsum("bcd,bld->bcl", self.query(context_vectors), self.key(values))
        scores = tf.where(match, scores / math.sqrt(int(values.shape[-1])), tf.cast(-1e9, scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(match, scores.dtype)
        return tf.einsum("bcl,bld->bcd", weights, values), tf.reduce_sum(tf.cast(match, scores.dtype), axis=-1)


@register_model("long_retriever", LongRetrieverConfig)
class LongRetriever(TwoTowerModel):
    """One user vector per category context; items scored by the vector of their own category."""

    config_class = LongRetrieverConfig

    def __init__(self, feature_spec, config: LongRetrieverConfig | None = None, **kwargs: Any):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        history, static = self.history_and_static_features(c.history_feature)
        for name, side in ((c.history_category_feature, "user"), (c.context_feature, "item")):
            if name not in spec.names or spec.get(name).side != side:
                raise ValueError(f"long_retriever needs the {side} feature {name!r} (see "
                                 "tower_zoo.data.memory.categories.with_item_categories); the spec has "
                                 f"{spec.names}")
        static = [n for n in static if n != c.history_category_feature]
        self.num_contexts = spec.get(c.context_feature).vocab_size
        if spec.get(c.history_category_feature).vocab_size != self.num_contexts:
            raise ValueError(f"{c.history_category_feature!r} and {c.context_feature!r} must share one vocabulary")
        self.history_items = SequenceEmbedding(history.vocab_size, c.embedding_dim, name="history_items")
        self.context_table = tf.keras.layers.Embedding(self.num_contexts, c.embedding_dim, name="context_table")
        self.subsequence = CategorySubsequenceAttention(name="subsequence_attention")
        self.static_fields = FieldEmbedding(spec, "user", c.embedding_dim, static, name="static_fields")
        self.user_mlp = MLP(c.hidden_units, name="user_mlp")
        self.item_tower = MLPTower(spec, "item", c.embedding_dim, c.hidden_units, self.side_feature_names("item"),
                                   normalize=True, name="item_tower")
        self.normalize = L2Normalize(name="l2_normalize")

    @classmethod
    def prepare_data(cls, data):
        """``data`` with item categories and category-tagged histories (see the module docstring)."""
        return categorized(data)

    @property
    def context_feature(self) -> str:
        return self.config.context_feature

    def multi_context_user_embedding(self, features, contexts: tf.Tensor, training=False) -> tf.Tensor:
        """User vectors in the given contexts: contexts int [B, C] -> [B, C, D]."""
        c = self.config
        contexts = tf.cast(contexts, tf.int32)
        vectors, valid = self.history_items(tf.cast(features[c.history_feature], tf.int32))
        categories = tf.cast(features[c.history_category_feature], tf.int32)
        context_vectors = self.context_table(contexts)
        pooled, lengths = self.subsequence(vectors, categories, valid, context_vectors, contexts)
        counts = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1, keepdims=True)
        recent = tf.logical_and(valid, tf.range(tf.shape(valid)[1])[tf.newaxis] >= counts - c.recent_length)
        recent_mean = tf.math.divide_no_nan(tf.einsum("bl,bld->bd", tf.cast(recent, vectors.dtype), vectors),
                                            tf.cast(tf.reduce_sum(tf.cast(recent, tf.int32), 1, keepdims=True),
                                                    vectors.dtype))
        static = tf.reshape(self.static_fields(features), [tf.shape(vectors)[0], -1])
        width = tf.shape(contexts)[1]
        shared = tf.concat([recent_mean, static], axis=-1)
        shared = tf.tile(shared[:, tf.newaxis], [1, width, 1])
        inputs = tf.concat([pooled, context_vectors, tf.math.log1p(lengths)[..., tf.newaxis], shared], axis=-1)
        return self.normalize(self.user_mlp(inputs, training=training))

    def context_user_embedding(self, features, contexts: tf.Tensor, training=False) -> tf.Tensor:
        """One context per row: contexts int [B] -> [B, D]."""
        return self.multi_context_user_embedding(features, contexts[:, tf.newaxis], training)[:, 0]

    def user_embedding(self, features, training=False) -> tf.Tensor:
        """[B, V, D + V]: the user's vector in every category context, V zeros appended."""
        rows = tf.shape(features[self.config.history_feature])[0]
        contexts = tf.tile(tf.range(self.num_contexts)[tf.newaxis], [rows, 1])
        vectors = self.multi_context_user_embedding(features, contexts, training)
        return tf.pad(vectors, [[0, 0], [0, 0], [0, self.num_contexts]])

    def context_item_embedding(self, features, training=False) -> tf.Tensor:
        """[B, D]: the item vector alone."""
        return self.item_tower(features, training=training)

    def item_embedding(self, features, training=False) -> tf.Tensor:
        """[B, D + V]: the item vector and the one-hot of its category."""
        category = tf.one_hot(tf.cast(features[self.config.context_feature], tf.int32), self.num_contexts)
        return tf.concat([self.context_item_embedding(features, training), category], axis=-1)

    def _split_items(self, items: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return items[..., :self.config.hidden_units[-1]], items[..., self.config.hidden_units[-1]:]

    def similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """[B, V, D + V] x [N, D + V] -> [B, N]: each item against the user's vector of its category."""
        vectors, category = self._split_items(item_embedding)
        users, _ = self._split_items(user_embedding)
        return tf.einsum("bvd,nd,nv->bn", users, vectors, category)

    def paired_similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """[B, V, D + V] x [B, M, D + V] -> [B, M]."""
        vectors, category = self._split_items(item_embedding)
        users, _ = self._split_items(user_embedding)
        return tf.einsum("bvd,bmd,bmv->bm", users, vectors, category)
