"""``int_tower``: IntTower (Li et al., CIKM 2022), a pre-ranking two-tower with early interaction.

Read against the paper (arXiv 2210.09890) and the official PyTorch code (github.com/archersama/IntTower:
``model/IntTower.py``, ``layers/core.py`` ``User_Fe_DNN`` / ``Item_Fe_DNN``, ``preprocessing/utils.py``
``fe_score`` / ``contrast_loss``, ``model/base_tower.py`` ``fit``).

* Light-SE in both towers re-weights the feature fields before the MLP (``tower_zoo.layers.LightSE``).
* FE-Block (fine-grained early interaction): every layer l of the user MLP is projected to H head
  vectors u_{l,h}; the item tower's last layer to H head vectors v_k (``head_dim`` each). The score is

      s(u, v) = Σ_l Σ_h max_k <u_{l,h}, v_k>

  the max over the *item* heads, summed over user heads and layers: each user layer/head picks the item
  aspect it matches best. Like the official ``fe_score``, the heads are raw linear projections and the
  sum is the logit as it is (the official model adds a scalar bias and a sigmoid; ours the score bias).
  ``normalize_heads=True`` instead L2-normalizes every head and divides the sum by ``temperature``
  (cosines bound each term to [-1, 1]); it is an option, off by default, because neither the paper nor the
  code has it.
* CIR (contrastive interaction regularization). The paper: an InfoNCE loss that shortens the distance
  between a user and its positive (clicked) items, added to the log loss; InfoNCE's negatives being the
  other items of the batch. (The full paper text was not reachable with our tools: this is the abstract,
  the official README and summaries of section 3; the paper's λ and τ values are not known to us.) Here: anchors are the batch's clicked rows (``features[LABEL_FEATURE] = 1``; every row under
  the retrieval task); the representation is each tower's last FE layer, its heads flattened and
  L2-normalized ([B, H · head_dim], as the official code's ``user_fe_rep[-1]`` / ``item_fe_rep[-1]``);
  candidates are the items of *all* B rows (clicked or not), the positive is the row's own item, and a
  column holding that same item (an accidental hit) is masked; logits are cosines / ``cir_temperature``;
  the loss, averaged over the anchors, is added with weight ``cir_weight``.
  The released code differs, and changed after release: at the release commit (9bddd9f, 2022-05-19)
  ``contrast_loss`` is mean((1 - y) · û · v̂) / τ with τ = 0.001 over row-aligned pairs only (it pushes
  apart the user and item of non-clicked rows; no other row's item is a negative), added to a log loss
  *summed* over the batch; at HEAD (65be655 + a234d89, 2023-08-29) it is an in-batch InfoNCE with
  τ = 0.07 that indexes the positive column by the 0/1 label (column 0 or 1 of the batch, not the row's
  own item), and it is no longer added to the loss. We follow the paper; ``cir_temperature`` = 0.07 as
  at HEAD; ``cir_weight`` = 0.1 (the release adds CIR with weight 1 to a log loss summed over a batch of
  2048 rows, ≈ 1/2048 relative to our mean log loss).

Other differences to the official code, and why: the user heads project each user layer's *output*
(the official ``User_Fe_DNN`` projects each layer's input, so its first heads read the raw field
embeddings and the last layer's output is unused); no batch normalization in the towers (our MLP has
none); numeric features are fields through Light-SE (the official code appends them after it).

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
from tower_zoo.layers import MLP, LightSE, max_similarity
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
    dropout: float = 0.0
    normalize_heads: bool = False
    temperature: float = 1.0
    use_light_se: bool = True
    use_fe_block: bool = True
    use_cir: bool = True
    cir_weight: float = 0.1
    cir_temperature: float = 0.07

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_at_least(self, {"num_heads": 1, "head_dim": 1})
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.cir_temperature > 0 or self.cir_weight < 0:
            raise ValueError(f"need cir_temperature > 0 and cir_weight >= 0, got {self.cir_temperature}, "
                             f"{self.cir_weight}")


class HeadProjection(tf.keras.layers.Layer):
    """[B, d] -> [B, H, head_dim]: a linear map split into H heads (unit vectors when ``normalize``)."""

    def __init__(self, num_heads: int, head_dim: int, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.head_dim, self.normalize = num_heads, head_dim, normalize
        self.dense = tf.keras.layers.Dense(num_heads * head_dim, name="dense")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        heads = tf.reshape(self.dense(x), [-1, self.num_heads, self.head_dim])
        return tf.math.l2_normalize(heads, axis=-1) if self.normalize else heads

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_dim": self.head_dim,
                "normalize": self.normalize}


def contrastive_interaction_loss(users: tf.Tensor, items: tf.Tensor, item_ids: tf.Tensor, anchors: tf.Tensor,
                                 temperature: float) -> tf.Tensor:
    """CIR: users [B, d] and items [B, d] (row b's user and item), item_ids [B], anchors [B] bool (clicked).

    For each anchor row b: InfoNCE of cos(user_b, item_b) / T against cos(user_b, item_c) / T for every
    row c of the batch whose item differs from item_b. Mean over anchors; 0 without any anchor. Only the
    anchors' rows of the [B, B] similarity matrix are computed ([P, B], P anchors)."""
    anchor_rows = tf.where(anchors)[:, 0]                                        # [P]
    anchor_users = tf.math.l2_normalize(tf.gather(users, anchor_rows), axis=-1)
    items = tf.math.l2_normalize(items, axis=-1)
    logits = tf.matmul(anchor_users, items, transpose_b=True) / temperature      # [P, B]
    columns = tf.range(tf.shape(items)[0], dtype=anchor_rows.dtype)
    own = tf.equal(anchor_rows[:, tf.newaxis], columns[tf.newaxis, :])
    same_item = tf.equal(tf.gather(item_ids, anchor_rows)[:, tf.newaxis], item_ids[tf.newaxis, :])
    logits = tf.where(tf.logical_and(same_item, tf.logical_not(own)), tf.cast(-1e9, logits.dtype), logits)
    positives = tf.reduce_sum(tf.where(own, logits, tf.zeros_like(logits)), axis=-1)
    losses = tf.reduce_logsumexp(logits, axis=-1) - positives
    return tf.math.divide_no_nan(tf.reduce_sum(losses), tf.cast(tf.size(losses), losses.dtype))


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
        self.user_mlp = MLP(c.hidden_units, dropout=c.dropout, name="user_mlp")
        self.item_mlp = MLP(c.hidden_units, dropout=c.dropout, name="item_mlp")
        layers = range(len(c.hidden_units)) if c.use_fe_block else [len(c.hidden_units) - 1]
        self.user_layers = list(layers)
        self.user_heads = [HeadProjection(heads, c.head_dim, c.normalize_heads, name=f"user_heads_{l}")
                           for l in self.user_layers]
        self.item_heads = HeadProjection(heads, c.head_dim, c.normalize_heads, name="item_heads")
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
        return max_similarity(user_embedding, item_embedding)  # Σ_u max over item heads

    def paired_similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        return max_similarity(user_embedding, item_embedding)  # Σ_u max over item heads

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        """``cir_weight`` · CIR on the batch's clicked rows (every row when there is no label)."""
        if not self.config.use_cir:
            return tf.constant(0.0)
        last_user_layer = tf.reshape(user_embedding[:, -self.heads:], [-1, self.heads * self.config.head_dim])
        items = tf.reshape(item_embedding, [-1, self.heads * self.config.head_dim])
        item_ids = features[self.feature_spec.item_id_feature]
        anchors = (features[LABEL_FEATURE] > 0.5 if LABEL_FEATURE in features
                   else tf.ones_like(item_ids, tf.bool))
        return self.config.cir_weight * contrastive_interaction_loss(last_user_layer, items, item_ids, anchors,
                                                                     self.config.cir_temperature)
