"""``int_tower``: IntTower (Li et al., CIKM 2022), a pre-ranking two-tower with early interaction.

* Light-SE in both towers re-weights the feature fields before the MLP (``tower_zoo.layers.LightSE``).
* FE-Block (fine-grained early interaction): every layer l of the user MLP is projected to H head
  vectors u_{l,h}; the item tower's last layer to H head vectors v_k; all L2-normalized. The score is

      s(u, v) = Σ_l Σ_h max_k <u_{l,h}, v_k> / T

  so each user layer/head picks the item aspect it matches best.
* CIR (contrastive interaction regularization): an in-batch InfoNCE between the user's last-layer
  representation (mean of its heads) and its clicked item's (mean of the item heads), temperature
  ``cir_temperature``, on label = 1 rows, added to the loss with ``cir_weight``. The official code
  defines it but leaves it out of the training loss; here it is in the loss (``use_cir``).

Cached offline: the item's H head vectors (H · head_dim floats). Per request: the user tower and
its L · H head vectors; per candidate L · H · H dot products of head_dim (L=3, H=4, head_dim=16: 768
multiply-adds) and a max — vs one dot product for DSSM.

Ablations: ``use_light_se``, ``use_fe_block`` (off: one head on the last layer, i.e. a plain
two-tower dot product), ``use_cir``.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.features import FieldEmbedding
from tower_zoo.layers import MLP, L2Normalize, LightSE
from tower_zoo.models.base import LABEL_FEATURE, TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class IntTowerConfig(TwoTowerConfig):
    """Tower widths, heads of the FE-Block, CIR strength, and the three ablation flags."""

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64, 32)
    num_heads: int = 4
    head_dim: int = 16
    temperature: float = 0.5
    use_light_se: bool = True
    use_fe_block: bool = True
    use_cir: bool = True
    cir_weight: float = 0.1
    cir_temperature: float = 0.1

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_at_least(self, {"num_heads": 1, "head_dim": 1})
        if not self.cir_temperature > 0 or self.cir_weight < 0:
            raise ValueError(f"need cir_temperature > 0 and cir_weight >= 0, got {self.cir_temperature}, "
                             f"{self.cir_weight}")


class HeadProjection(tf.keras.layers.Layer):
    """[B, d] -> [B, H, head_dim] unit vectors (a linear map split into H heads)."""

    def __init__(self, num_heads: int, head_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_dim = num_heads, head_dim
        self.dense = tf.keras.layers.Dense(num_heads * head_dim, name="dense")
        self.normalize = L2Normalize()

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.normalize(tf.reshape(self.dense(x), [-1, self.num_heads, self.head_dim]))

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_dim": self.head_dim}


def max_sim_scores(users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """FE-Block score: users [B, U, d] (layers × heads), items [..., H, d] with leading [N] (all pairs,
    -> [B, N]) or [B, M] (row-aligned, -> [B, M]): Σ_u max_h <user_u, item_h>."""
    if items.shape.rank == 3:
        dots = tf.einsum("bud,nhd->bnuh", users, items)
    else:
        dots = tf.einsum("bud,bmhd->bmuh", users, items)
    return tf.reduce_sum(tf.reduce_max(dots, axis=-1), axis=-1)


def info_nce(users: tf.Tensor, items: tf.Tensor, temperature: float) -> tf.Tensor:
    """In-batch contrastive loss of unit vectors users [P, d] vs items [P, d] (row i's positive is item i)."""
    logits = tf.matmul(users, items, transpose_b=True) / temperature
    labels = tf.range(tf.shape(users)[0])
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


@register_model("int_tower", IntTowerConfig)
class IntTower(TwoTowerModel):
    """Light-SE + FE-Block multi-head max-sim + CIR. Users [B, L·H, d], items [B, H, d]."""

    model_kind = "pre_ranking"
    config_class = IntTowerConfig

    def __init__(self, feature_spec, config: IntTowerConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        heads = c.num_heads if c.use_fe_block else 1
        self.user_fields = FieldEmbedding(self.feature_spec, "user", c.embedding_dim, self.side_feature_names("user"),
                                          name="user_fields")
        self.item_fields = FieldEmbedding(self.feature_spec, "item", c.embedding_dim, self.side_feature_names("item"),
                                          name="item_fields")
        self.user_se = LightSE(name="user_light_se") if c.use_light_se else None
        self.item_se = LightSE(name="item_light_se") if c.use_light_se else None
        self.user_mlp = MLP(c.hidden_units, name="user_mlp")
        self.item_mlp = MLP(c.hidden_units, name="item_mlp")
        layers = range(len(c.hidden_units)) if c.use_fe_block else [len(c.hidden_units) - 1]
        self.user_layers = list(layers)
        self.user_heads = [HeadProjection(heads, c.head_dim, name=f"user_heads_{l}") for l in self.user_layers]
        self.item_heads = HeadProjection(heads, c.head_dim, name="item_heads")
        self.heads = heads

    def _flat_fields(self, fields_layer, se_layer, features):
        fields = fields_layer(features)
        if se_layer is not None:
            fields = se_layer(fields)
        return tf.reshape(fields, [-1, fields_layer.num_fields * fields_layer.dim])

    def user_embedding(self, features, training=False) -> tf.Tensor:
        _, hidden = self.user_mlp(self._flat_fields(self.user_fields, self.user_se, features), training=training,
                                  return_hidden=True)
        return tf.concat([project(hidden[l]) for l, project in zip(self.user_layers, self.user_heads)], axis=1)

    def item_embedding(self, features, training=False) -> tf.Tensor:
        top = self.item_mlp(self._flat_fields(self.item_fields, self.item_se, features), training=training)
        return self.item_heads(top)

    def similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        return max_sim_scores(user_embedding, item_embedding)

    def paired_similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        return max_sim_scores(user_embedding, item_embedding)

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        if not self.config.use_cir:
            return tf.constant(0.0)
        last = tf.math.l2_normalize(tf.reduce_mean(user_embedding[:, -self.heads:], axis=1), axis=-1)
        items = tf.math.l2_normalize(tf.reduce_mean(item_embedding, axis=1), axis=-1)
        if LABEL_FEATURE in features:  # pre-ranking: only clicked pairs are positives
            clicked = features[LABEL_FEATURE] > 0.5
            last, items = tf.boolean_mask(last, clicked), tf.boolean_mask(items, clicked)
        enough = tf.shape(last)[0] >= 2
        loss = tf.cond(enough, lambda: info_nce(last, items, self.config.cir_temperature), lambda: 0.0)
        return self.config.cir_weight * loss
