"""Target attention for pre-ranking: a full teacher and its residual-quantized, cacheable student.

``target_attention`` (teacher, DIN-style; Zhou et al., KDD 2018): the candidate item e attends over
the user's history h_1..h_T with an activation unit a_t = MLP([h_t, e, h_t ⊙ e, h_t - e]); the pooled
interest u = Σ softmax(a) h joins the user's static vector s and e in a scoring MLP. Accurate, but the
attention must run for every (user, candidate) pair through an MLP over the whole history.

``rq_target_attention`` (student; after arXiv 2509.16931): the item vector is residual-quantized,
e ≈ e_q = Σ_l C_l[k_l] (L codebooks of K codewords, ``ResidualQuantizer``), and the attention logit
is bilinear, a_t = (W h_t) · e_q. Because e_q is a sum of codewords, so is the logit:

    a_t = Σ_l (W h_t) · C_l[k_l]

so per request the user side precomputes a table P[l, k, t] = (W h_t) · C_l[k] for every codeword
(L · K · T values, computed once), and each candidate's logits are L gathered rows summed:
O(L · T) additions, then a softmax over T and a weighted sum O(T · D), and the score
(u + s) · e_q / T_temp. Cached offline per item: its L codes and e_q. It is trained with the exposure
labels plus distillation from the teacher's logits (``Trainer(task="ranking").fit(teacher_logits=...)``),
and the quantizer's own loss (weight ``quantizer_weight``). ``codebook_usage`` reports how many
codewords the item corpus uses per level and their perplexity.

Both towers of these models return dicts (the user's history state, the item's vector and codes): they
are pre-ranking models scored with ``score`` / ``pair_logits``, not ANN-indexable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from tower_zoo.data.dataset import HISTORY_FEATURE
from tower_zoo.features import SequenceEmbedding
from tower_zoo.layers import MLP, MLPTower, ResidualQuantizer, masked_attention_pool
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class TargetAttentionConfig(TwoTowerConfig):
    """Shared by teacher and student: history feature, widths, the teacher's attention/score MLPs."""

    embedding_dim: int = 32
    history_feature: str = HISTORY_FEATURE
    hidden_units: tuple[int, ...] = (64, 32)
    attention_units: tuple[int, ...] = (32,)
    score_units: tuple[int, ...] = (64,)
    temperature: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_positive_units(self, "attention_units", "score_units", allow_empty=True)
        if self.hidden_units[-1] != self.embedding_dim:
            raise ValueError(f"hidden_units must end at embedding_dim={self.embedding_dim}, got {self.hidden_units}")


@dataclasses.dataclass
class RQTargetAttentionConfig(TargetAttentionConfig):
    """Student: L levels of K codewords, and the quantizer loss weight."""

    num_levels: int = 3
    codebook_size: int = 64
    commitment: float = 0.25
    quantizer_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_at_least(self, {"num_levels": 1, "codebook_size": 2, "commitment": 0, "quantizer_weight": 0})


class _HistoryModel(TwoTowerModel):
    """Shared sides: history embeddings, a static user tower, an item tower (all ``embedding_dim`` wide)."""

    model_kind = "pre_ranking"

    def __init__(self, feature_spec, config=None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        history, static = self.history_and_static_features(c.history_feature)
        self.history_embedding = SequenceEmbedding(history.vocab_size, c.embedding_dim, name="history_embedding")
        self.static_tower = MLPTower(spec, "user", c.embedding_dim, c.hidden_units, static, name="user_static_tower")
        self.item_tower = MLPTower(spec, "item", c.embedding_dim, c.hidden_units, self.side_feature_names("item"),
                                   name="item_tower")

    def user_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        history, mask = self.history_embedding(features[self.config.history_feature])
        return {"history": history, "mask": mask, "static": self.static_tower(features, training=training)}

    def logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """All pairs [B, N], by pair scoring every (user, item) combination."""
        batch = tf.shape(user_embedding["static"])[0]
        count = tf.shape(tf.nest.flatten(item_embedding)[0])[0]
        tile_users = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), user_embedding)
        tile_items = tf.nest.map_structure(lambda t: tf.tile(t, tf.concat([[batch], tf.ones_like(
            tf.shape(t)[1:])], 0)), item_embedding)
        return tf.reshape(self.pair_logits(tile_users, tile_items), [batch, count])


@register_model("target_attention", TargetAttentionConfig)
class TargetAttentionTeacher(_HistoryModel):
    """DIN-style full target attention (the teacher). Per candidate: an MLP over the whole history."""

    config_class = TargetAttentionConfig

    def __init__(self, feature_spec, config: TargetAttentionConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.activation_unit = MLP(c.attention_units + (1,), name="activation_unit")
        self.score_mlp = MLP(c.score_units + (1,), name="score_mlp")

    def item_embedding(self, features, training=False) -> tf.Tensor:
        return self.item_tower(features, training=training)

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        history, mask = user_embedding["history"], user_embedding["mask"]
        target = tf.broadcast_to(item_embedding[:, tf.newaxis], tf.shape(history))
        unit_input = tf.concat([history, target, history * target, history - target], axis=-1)
        attention = self.activation_unit(unit_input)[..., 0]  # [B, T]
        interest = masked_attention_pool(attention, history, mask)
        static = user_embedding["static"]
        joint = tf.concat([interest, static, item_embedding, (interest + static) * item_embedding], axis=-1)
        return self.temperature(self.score_mlp(joint)[:, 0]) + self.score_bias


@register_model("rq_target_attention", RQTargetAttentionConfig)
class RQTargetAttention(_HistoryModel):
    """Residual-quantized item vectors make target attention a per-user table lookup (the student)."""

    config_class = RQTargetAttentionConfig

    def __init__(self, feature_spec, config: RQTargetAttentionConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.attention_projection = tf.keras.layers.Dense(c.embedding_dim, use_bias=False, name="attention_projection")
        self.quantizer = ResidualQuantizer(c.num_levels, c.codebook_size, c.commitment, name="quantizer")

    def item_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        raw = self.item_tower(features, training=training)
        quantized, codes, _ = self.quantizer(raw)
        return {"vector": quantized, "codes": codes, "raw": raw}

    def user_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        state = super().user_embedding(features, training=training)
        if not self.quantizer.built:
            self.quantizer.build(tf.TensorShape([None, self.config.embedding_dim]))
        keys = self.attention_projection(state["history"])  # [B, T, D]
        state["table"] = tf.einsum("btd,lkd->blkt", keys, self.quantizer.codebooks)  # P[l, k, t] per user
        return state

    def attention_logits(self, table: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
        """table [B, L, K, T] and codes [B, L] -> [B, T]: Σ_l table[b, l, codes[b, l], :]."""
        return tf.reduce_sum(tf.gather(table, codes, axis=2, batch_dims=2), axis=1)

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        logits = self.attention_logits(user_embedding["table"], item_embedding["codes"])
        interest = masked_attention_pool(logits, user_embedding["history"], user_embedding["mask"])
        score = tf.reduce_sum((interest + user_embedding["static"]) * item_embedding["vector"], axis=-1)
        return self.temperature(score) + self.score_bias

    def initialize_codebooks(self, item_features: dict[str, Any], seed: int = 0) -> None:
        """k-means initialization of the codebooks on the item tower's current outputs for a corpus."""
        raw = self.item_tower(item_features).numpy()
        self.quantizer.initialize_from(raw, seed=seed)

    def quantization_loss(self, item_embedding) -> tf.Tensor:
        return self.quantizer(item_embedding["raw"])[2]

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        return self.config.quantizer_weight * self.quantization_loss(item_embedding)

    def codebook_usage(self, item_features: dict[str, Any], batch_size: int = 2048) -> dict[str, Any]:
        """Over an item corpus: codewords used per level (count, fraction), code perplexity per level,
        and the relative reconstruction error ||e - e_q||² / ||e||²."""
        size = len(next(iter(item_features.values())))
        codes, errors, norms = [], 0.0, 0.0
        for start in range(0, size, batch_size):
            chunk = {k: v[start:start + batch_size] for k, v in item_features.items()}
            out = self.item_embedding(chunk)
            codes.append(out["codes"].numpy())
            errors += float(tf.reduce_sum(tf.square(out["raw"] - out["vector"])))
            norms += float(tf.reduce_sum(tf.square(out["raw"])))
        codes = np.concatenate(codes)
        used, perplexity = [], []
        for level in range(codes.shape[1]):
            counts = np.bincount(codes[:, level], minlength=self.config.codebook_size)
            p = counts[counts > 0] / counts.sum()
            used.append(int((counts > 0).sum()))
            perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
        return {"used": used, "used_fraction": [u / self.config.codebook_size for u in used],
                "perplexity": perplexity, "relative_reconstruction_error": errors / max(norms, 1e-12)}
