"""``poly_encoder``: the Poly-encoder (Humeau et al., ICLR 2020) as a recommender.

The paper (and its official code, ParlAI's ``agents/transformer/polyencoder.py``) scores a candidate
against a context in three steps, all with plain, unnormalized dot-product attention:

1. a context encoder turns the context tokens into contextual vectors h_1..h_L (a Transformer with
   position embeddings);
2. m learned codes c_1..c_m each attend over them, softmax over the L positions:
   y_j = Σ_t softmax_t(c_j · h_t) h_t;
3. the candidate vector v attends over the m code vectors, softmax over the codes:
   u_v = Σ_j softmax_j(y_j · v) y_j, and the score is u_v · v.

Here the context is the user's recent items (the ``history`` sequence feature, oldest first, padded and
masked): item embeddings + learned *recency* position embeddings (0 = the most recent valid item, so
padding never shifts a position) through ``context_layers`` post-LN Transformer blocks
(``tower_zoo.layers.ContextEncoder``; 0 = no contextual encoder, the position-aware embeddings
directly). The candidate is an MLP tower over the item's features, v [B, D] — cached offline like DSSM's.
User embedding: [B, m + 1, D]. Logits are score / T with T = ``temperature`` (1 = the paper's raw score).

Deviations from the paper, and why:

* one extra context vector from the user's static features (id, demographics) through an MLP, beside the
  m code vectors: a user with an empty history still has a representation (the paper's contexts are
  never empty);
* the candidate encoder is an MLP over item features, not a Transformer over tokens (items are ids and
  categories, not text);
* a small encoder (``context_layers`` = 1 block, ``context_heads`` = 2) for MovieLens-sized data instead
  of a pre-trained BERT; positions count recency because a history is a time-ordered list.

Serving cost: item vectors cached; per request, the user side once (the Transformer, O(L² · D) per
block, and m attention passes over L positions, O(m · L · D)), then per candidate O((m + 1) · D) for the
attention and the dot product. Because u_v depends on the candidate, the score is not one dot product:
full-corpus retrieval runs an ANN search with the mean of the context vectors and re-scores the top N
exactly with the attention (``RetrievalEvaluator`` does this for any model whose user embedding is
[B, H, D]), versus exhaustive scoring of every item.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.features import SequenceEmbedding
from tower_zoo.layers import ContextEncoder, MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class PolyEncoderConfig(TwoTowerConfig):
    """num_codes m, the history feature they attend over, the contextual encoder, the towers' MLP widths."""

    embedding_dim: int = 64
    num_codes: int = 4
    history_feature: str = HISTORY_FEATURE
    hidden_units: tuple[int, ...] = (128, 64)
    context_layers: int = 1
    context_heads: int = 2
    context_feed_forward_units: int = 128
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_at_least(self, {"num_codes": 1, "context_layers": 0, "context_heads": 1,
                              "context_feed_forward_units": 1})
        if self.hidden_units[-1] != self.embedding_dim:
            raise ValueError(f"hidden_units must end at embedding_dim={self.embedding_dim} (the context vectors' "
                             f"width), got {self.hidden_units}")
        if self.context_layers and self.embedding_dim % self.context_heads:
            raise ValueError(f"embedding_dim={self.embedding_dim} must be divisible by context_heads="
                             f"{self.context_heads}")


class CodeAttention(tf.keras.layers.Layer):
    """m learned codes attend over a masked sequence, softmax over its positions (unnormalized dot products).

    Inputs: ``values`` [B, L, D], ``mask`` [B, L] bool. Output: [B, m, D]; a row with no valid
    position gives zeros (padding never changes a result).
    """

    def __init__(self, num_codes: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_codes = num_codes

    def build(self, input_shape):
        self.codes = self.add_weight("codes", shape=(self.num_codes, int(input_shape[-1])),
                                     initializer=tf.keras.initializers.RandomNormal(stddev=0.1))
        super().build(input_shape)

    def call(self, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        scores = tf.einsum("md,bld->bml", self.codes, values)               # [B, m, L]
        scores = tf.where(mask[:, tf.newaxis, :], scores, tf.cast(-1e9, scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask[:, tf.newaxis, :], scores.dtype)  # over L
        return tf.einsum("bml,bld->bmd", weights, values)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_codes": self.num_codes}


def attention_pooled_scores(dots: tf.Tensor) -> tf.Tensor:
    """u_v · v from ``dots`` [..., m] = y_j · v for each context vector j: Σ_j softmax_j(y_j · v) (y_j · v).
    The softmax runs over the m context vectors (the last axis), never over candidates."""
    return tf.reduce_sum(tf.nn.softmax(dots, axis=-1) * dots, axis=-1)


def candidate_attention_scores(contexts: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """Poly-encoder scoring of every pair: contexts [B, m, D], items [N, D] -> [B, N] of u_v · v with
    u_v = Σ_j softmax_j(y_j · v) y_j."""
    return attention_pooled_scores(tf.einsum("bmd,nd->bnm", contexts, items))


@register_model("poly_encoder", PolyEncoderConfig)
class PolyEncoder(TwoTowerModel):
    """Contextual history attended by m codes; the candidate attends over them. Users [B, m+1, D], items [B, D]."""

    config_class = PolyEncoderConfig

    def __init__(self, feature_spec, config: PolyEncoderConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        history, static = self.history_and_static_features(c.history_feature)
        self.history_embedding = SequenceEmbedding(history.vocab_size, c.embedding_dim, name="history_embedding")
        self.context_encoder = ContextEncoder(history.max_length, c.context_layers, c.context_heads,
                                              c.context_feed_forward_units, name="context_encoder")
        self.code_attention = CodeAttention(c.num_codes, name="code_attention")
        self.static_tower = MLPTower(spec, "user", c.embedding_dim, c.hidden_units, static, name="user_static_tower")
        self.item_tower = MLPTower(spec, "item", c.embedding_dim, c.hidden_units, self.side_feature_names("item"),
                                   name="item_tower")

    def user_embedding(self, features, training=False) -> tf.Tensor:
        vectors, mask = self.history_embedding(features[self.config.history_feature])
        contextual = self.context_encoder(vectors, mask, training=training)   # [B, L, D]
        codes = self.code_attention(contextual, mask)                          # [B, m, D]
        static = self.static_tower(features, training=training)[:, tf.newaxis]
        return tf.concat([codes, static], axis=1)

    def similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        return candidate_attention_scores(user_embedding, item_embedding)

    def paired_similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """Each user against its own candidates: [B, m, D] x [B, H, D] -> [B, H]."""
        return attention_pooled_scores(tf.einsum("bmd,bhd->bhm", user_embedding, item_embedding))
