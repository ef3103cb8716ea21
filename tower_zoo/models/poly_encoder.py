"""``poly_encoder``: the Poly-encoder (Humeau et al., ICLR 2020) as a recommender.

User side: the user's recent items (the ``history`` sequence feature, padded and masked) are
embedded and attended by m learned codes c_1..c_m: code j forms y_j = Σ_t softmax_t(c_j · h_t) h_t.
The user's static features (id, demographics) go through an MLP into one more context vector, so
a user with an empty history still has a representation. User embedding: [B, m + 1, D].

Item side: an MLP tower over the item's features, v [B, D] — cached offline like DSSM's.

Score: the candidate attends over the user's context vectors,
    w = softmax_j(y_j · v),   u_v = Σ_j w_j y_j,   score = (u_v · v) / T
(every vector L2-normalized), which is ``similarity(users [B, m+1, D], items [N, D]) -> [B, N]``.

Serving cost: item vectors cached; per request, the user side once (m attention passes over L history
items: O(m · L · D)), then per candidate O((m + 1) · D) for the attention and the dot product. Because
u_v depends on the candidate, the score is not one dot product: full-corpus retrieval runs an ANN
search with the mean of the context vectors and re-scores the top N exactly with the attention
(``RetrievalEvaluator`` does this for any model whose user embedding is [B, H, D]), versus exhaustive
scoring of every item.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow as tf

from tower_zoo.data.dataset import HISTORY_FEATURE
from tower_zoo.features import SequenceEmbedding
from tower_zoo.layers import L2Normalize, MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class PolyEncoderConfig(TwoTowerConfig):
    """num_codes m, the history feature they attend over, and the towers' MLP widths."""

    embedding_dim: int = 64
    num_codes: int = 4
    history_feature: str = HISTORY_FEATURE
    hidden_units: tuple[int, ...] = (128, 64)
    temperature: float = 0.05

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_at_least(self, {"num_codes": 1})
        if self.hidden_units[-1] != self.embedding_dim:
            raise ValueError(f"hidden_units must end at embedding_dim={self.embedding_dim} (the context vectors' "
                             f"width), got {self.hidden_units}")


class CodeAttention(tf.keras.layers.Layer):
    """m learned codes attend over a masked sequence.

    Inputs: ``values`` [B, L, D], ``mask`` [B, L] bool. Output: [B, m, D]; a row with no valid
    position gives zeros (padding never changes a result).
    """

    def __init__(self, num_codes: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_codes = num_codes

    def build(self, input_shape):
        self.codes = self.add_weight("codes", shape=(self.num_codes, int(input_shape[-1])),
                                     initializer="glorot_uniform")
        super().build(input_shape)

    def call(self, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        scores = tf.einsum("md,bld->bml", self.codes, values)
        scores = tf.where(mask[:, tf.newaxis, :], scores, tf.cast(-1e9, scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask[:, tf.newaxis, :], scores.dtype)
        return tf.einsum("bml,bld->bmd", weights, values)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_codes": self.num_codes}


def candidate_attention_scores(contexts: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """Poly-encoder scoring: contexts [B, H, D], items [N, D] -> [B, N] of Σ_j softmax_j(y_j·v) (y_j·v)."""
    dots = tf.einsum("bhd,nd->bnh", contexts, items)
    return tf.reduce_sum(tf.nn.softmax(dots, axis=-1) * dots, axis=-1)


@register_model("poly_encoder", PolyEncoderConfig)
class PolyEncoder(TwoTowerModel):
    """History attended by m codes; the candidate attends over them. Users [B, m+1, D], items [B, D]."""

    config_class = PolyEncoderConfig

    def __init__(self, feature_spec, config: PolyEncoderConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        history, static = self.history_and_static_features(c.history_feature)
        self.history_embedding = SequenceEmbedding(history.vocab_size, c.embedding_dim, name="history_embedding")
        self.code_attention = CodeAttention(c.num_codes, name="code_attention")
        self.static_tower = MLPTower(spec, "user", c.embedding_dim, c.hidden_units, static, name="user_static_tower")
        self.item_tower = MLPTower(spec, "item", c.embedding_dim, c.hidden_units, self.side_feature_names("item"),
                                   normalize=True, name="item_tower")
        self.normalize = L2Normalize(name="l2_normalize")

    def user_embedding(self, features, training=False) -> tf.Tensor:
        vectors, mask = self.history_embedding(features[self.config.history_feature])
        codes = self.code_attention(vectors, mask)  # [B, m, D]
        static = self.static_tower(features, training=training)[:, tf.newaxis]
        return self.normalize(tf.concat([codes, static], axis=1))

    def similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        return candidate_attention_scores(user_embedding, item_embedding)

    def paired_similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        dots = tf.einsum("bmd,bhd->bhm", user_embedding, item_embedding)
        return tf.reduce_sum(tf.nn.softmax(dots, axis=-1) * dots, axis=-1)
