"""The "COLD-style DNN" baseline of the paper-protocol benchmark: one MLP over both sides' features together.

Not a registered model and not a two-tower: the zoo's ``cold`` (COLD, Wang et al. 2020) is still to come. This
is the plain stand-in the IntTower paper's COLD row is compared with here: the user fields and the item fields
(``FieldEmbedding``, ``embedding_dim`` each) are concatenated and one MLP (``hidden_units``, then a linear unit)
gives the logit. The official COLD baseline in IntTower's repository (``model/cold.py``) also has SENET field
weights and a linear (wide) part; this one has neither. Its sides are still computed separately (the fields),
so it passes the same decomposability contract, but every candidate costs a full MLP pass.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.features import FieldEmbedding
from tower_zoo.layers import MLP
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_positive_units


@dataclasses.dataclass
class ConcatDNNConfig(TwoTowerConfig):
    """Field width and MLP widths (a final 1-unit layer is added); no dropout, as the official COLD's default."""

    embedding_dim: int = 32
    hidden_units: tuple[int, ...] = (300, 300, 128)

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")


class ConcatDNN(TwoTowerModel):
    """User fields [B, Fu·D] and item fields [B, Fi·D]; the logit is MLP([user, item]). See the module docstring."""

    model_name = "cold_style_dnn"
    model_kind = "pre_ranking"
    config_class = ConcatDNNConfig

    def __init__(self, feature_spec, config: ConcatDNNConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.user_fields = FieldEmbedding(self.feature_spec, "user", c.embedding_dim, name="user_fields")
        self.item_fields = FieldEmbedding(self.feature_spec, "item", c.embedding_dim, name="item_fields")
        self.mlp = MLP(tuple(c.hidden_units) + (1,), name="mlp")

    def user_embedding(self, features, training=False) -> tf.Tensor:
        fields = self.user_fields(features)
        return tf.reshape(fields, [-1, self.user_fields.num_fields * self.user_fields.dim])

    def item_embedding(self, features, training=False) -> tf.Tensor:
        fields = self.item_fields(features)
        return tf.reshape(fields, [-1, self.item_fields.num_fields * self.item_fields.dim])

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        joint = tf.concat([user_embedding, item_embedding], axis=-1)
        return self.mlp(joint)[:, 0] + self.score_bias

    def logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """All pairs [B, N] by one MLP pass per (user, item) pair."""
        users, items = tf.shape(user_embedding)[0], tf.shape(item_embedding)[0]
        pairs_user = tf.repeat(user_embedding, items, axis=0)
        pairs_item = tf.tile(item_embedding, [users, 1])
        return tf.reshape(self.pair_logits(pairs_user, pairs_item), [users, items])
