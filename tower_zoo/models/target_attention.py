"""``target_attention``: multi-head target attention over the user's history, the teacher of TARQ.

The candidate item's vector q = ItemTower(item features) [D] is the query of a multi-head attention over
the user's history embeddings x_1..x_T (keys = values; ``MultiHeadTargetAttention``), giving the
candidate-specific interest h = MHA(q, X, X) [D]. With the user's static vector s = UserTower(static
features), the logit is

    logit = (<s + h, q> + MLP([h, s, q, h ⊙ q, s ⊙ q, user fields, item fields])) / T + b,

the student's factorized form plus an interaction MLP that also reads the raw field embeddings of both
sides (``score_reads_fields``), as a ranking model does; the teacher can express everything the student
(``rq_target_attention``) can. Accurate but costly for pre-ranking: per candidate an attention over the
whole history, O(T·D), and the MLP (``benchmarks/tarq_cost.py`` measures it).

Deviation from TARQ (arXiv 2509.16931): its backbone first runs self-attention over the history
(MHA(X, X, X)); we attend over the history embeddings directly. ``use_recency`` (off by default, our
option) adds an embedding of each history item's recency rank to keys and values.

This module also holds what teacher and student share: ``TargetAttentionConfig`` and
``HistoryTowersModel`` (history embeddings, a static user tower and an item tower). Both models' towers
return dicts (pre-ranking models, scored with ``score`` / ``pair_logits``, not ANN-indexable).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.features import SequenceEmbedding
from tower_zoo.layers import MLP, MLPTower, MultiHeadTargetAttention
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class TargetAttentionConfig(TwoTowerConfig):
    """Shared by teacher and student: the history feature, tower widths, attention heads (``embedding_dim``
    must divide by ``num_heads``), the teacher's scoring MLP (``score_reads_fields``: it also reads the raw
    field embeddings) and the recency embedding of history items (``use_recency``)."""

    embedding_dim: int = 32
    history_feature: str = HISTORY_FEATURE
    hidden_units: tuple[int, ...] = (64, 32)
    num_heads: int = 4
    score_units: tuple[int, ...] = (64,)
    score_reads_fields: bool = True
    use_recency: bool = False
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_positive_units(self, "score_units", allow_empty=True)
        check_at_least(self, {"num_heads": 1})
        if self.hidden_units[-1] != self.embedding_dim:
            raise ValueError(f"hidden_units must end at embedding_dim={self.embedding_dim}, got {self.hidden_units}")
        if self.embedding_dim % self.num_heads:
            raise ValueError(f"embedding_dim={self.embedding_dim} must divide by num_heads={self.num_heads}")


def flat_fields(fields, features) -> tf.Tensor:
    """A FieldEmbedding's fields of ``features`` flattened: [B, F·E]."""
    return tf.reshape(fields(features), [-1, fields.num_fields * fields.dim])


def history_attention(config: TargetAttentionConfig, name: str) -> MultiHeadTargetAttention:
    """The multi-head attention over history embeddings both models use: H heads of D/H, output D."""
    return MultiHeadTargetAttention(config.num_heads, config.embedding_dim // config.num_heads,
                                    config.embedding_dim, name=name)


class HistoryTowersModel(TwoTowerModel):
    """Shared sides: history embeddings, a static user tower, an item tower (all ``embedding_dim`` wide).

    ``history_state(features) -> {"history": [B, T, D], "mask": [B, T]}``, ``static_vector(features)``
    [B, D]; ``logits`` scores all pairs by pair scoring.
    """

    model_kind = "pre_ranking"

    def __init__(self, feature_spec, config=None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        history, static = self.history_and_static_features(c.history_feature)
        self.history_embedding = SequenceEmbedding(history.vocab_size, c.embedding_dim, name="history_embedding")
        self.static_tower = MLPTower(spec, "user", c.embedding_dim, c.hidden_units, static, name="user_static_tower")
        self.item_tower = MLPTower(spec, "item", c.embedding_dim, c.hidden_units, self.side_feature_names("item"),
                                   name="item_tower")
        self.history_length = history.max_length
        self.recency_embedding = (tf.keras.layers.Embedding(history.max_length, c.embedding_dim, name="recency_embedding")
                                  if c.use_recency else None)

    def history_state(self, features) -> dict[str, tf.Tensor]:
        """{"history": [B, T, D], "mask": [B, T]}: item embeddings plus, with ``use_recency``, an embedding of
        each item's recency (how many valid items follow it; the last ``max_length - 1`` and older share one)."""
        history, mask = self.history_embedding(features[self.config.history_feature])
        if self.recency_embedding is not None:
            valid = tf.cast(mask, tf.int32)
            recency = tf.minimum(tf.cumsum(valid, axis=1, exclusive=True, reverse=True), self.history_length - 1)
            history = (history + self.recency_embedding(recency)) * tf.cast(valid, history.dtype)[..., tf.newaxis]
        return {"history": history, "mask": mask}

    def static_vector(self, features, training=False) -> tf.Tensor:
        return self.static_tower(features, training=training)

    def item_embedding(self, features, training=False) -> tf.Tensor:
        return self.item_tower(features, training=training)

    def logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """All pairs [B, N], by pair scoring every (user, item) combination."""
        batch = tf.shape(tf.nest.flatten(user_embedding)[0])[0]
        count = tf.shape(tf.nest.flatten(item_embedding)[0])[0]
        tile_users = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), user_embedding)
        tile_items = tf.nest.map_structure(lambda t: tf.tile(t, tf.concat([[batch], tf.ones_like(
            tf.shape(t)[1:])], 0)), item_embedding)
        return tf.reshape(self.pair_logits(tile_users, tile_items), [batch, count])


@register_model("target_attention", TargetAttentionConfig)
class TargetAttentionTeacher(HistoryTowersModel):
    """Multi-head target attention + interaction MLP (the teacher). Per candidate: attention over T."""

    config_class = TargetAttentionConfig

    def __init__(self, feature_spec, config: TargetAttentionConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.attention = history_attention(c, "target_attention")
        self.score_mlp = MLP(c.score_units + (1,), name="score_mlp")

    def user_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        """{"history": [B, T, D], "mask": [B, T], "static": [B, D], "fields": [B, F_u·E]}."""
        state = {**self.history_state(features), "static": self.static_vector(features, training)}
        if self.config.score_reads_fields:
            state["fields"] = flat_fields(self.static_tower.fields, features)
        return state

    def item_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        """{"vector": q [B, D], "fields": [B, F_v·E]}."""
        state = {"vector": self.item_tower(features, training=training)}
        if self.config.score_reads_fields:
            state["fields"] = flat_fields(self.item_tower.fields, features)
        return state

    def interest(self, user_embedding, item_embedding) -> tf.Tensor:
        """h = MHA(item vector, history, history): [B, D], the representation the student distils."""
        query = item_embedding["vector"][:, tf.newaxis]
        return self.attention(query, user_embedding["history"], user_embedding["mask"])[:, 0]

    def logit_from_interest(self, user_embedding, item_embedding, interest) -> tf.Tensor:
        static, item = user_embedding["static"], item_embedding["vector"]
        joint = [interest, static, item, interest * item, static * item]
        if self.config.score_reads_fields:
            joint += [user_embedding["fields"], item_embedding["fields"]]
        joint = tf.concat(joint, axis=-1)
        score = tf.reduce_sum((static + interest) * item, axis=-1) + self.score_mlp(joint)[:, 0]
        return self.temperature(score) + self.score_bias

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        return self.logit_from_interest(user_embedding, item_embedding, self.interest(user_embedding, item_embedding))
