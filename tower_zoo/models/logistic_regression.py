"""``logistic_regression``: the pre-ranking baseline with no feature interactions.

logit = b + Σ_user features w_f[x_f] + Σ_item features w_f[x_f] (sequences: the mean weight of their
values). Written as two towers so it runs through the same Trainer and evaluators: the user tower
outputs [s_u, 1] and the item tower [1, s_i], whose dot product is s_u + s_i.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.features import FieldEmbedding
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.registry import register_model


@dataclasses.dataclass
class LogisticRegressionConfig(TwoTowerConfig):
    """One weight per feature value; ``embedding_dim`` is fixed at 1."""

    embedding_dim: int = 1

    def validate(self) -> None:
        super().validate()
        if self.embedding_dim != 1:
            raise ValueError(f"logistic_regression has one weight per value: embedding_dim must be 1, got "
                             f"{self.embedding_dim}")


@register_model("logistic_regression", LogisticRegressionConfig)
class LogisticRegression(TwoTowerModel):
    """Sum of per-feature weights (a baseline, not a two-tower interaction model). Towers: [B, 2]."""

    model_kind = "baseline"
    config_class = LogisticRegressionConfig

    def __init__(self, feature_spec, config: LogisticRegressionConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        self.user_weights = FieldEmbedding(self.feature_spec, "user", 1, self.side_feature_names("user"),
                                           name="user_weights")
        self.item_weights = FieldEmbedding(self.feature_spec, "item", 1, self.side_feature_names("item"),
                                           name="item_weights")

    def user_embedding(self, features, training=False) -> tf.Tensor:
        total = tf.reduce_sum(self.user_weights(features), axis=[1, 2])
        return tf.stack([total, tf.ones_like(total)], axis=-1)

    def item_embedding(self, features, training=False) -> tf.Tensor:
        total = tf.reduce_sum(self.item_weights(features), axis=[1, 2])
        return tf.stack([tf.ones_like(total), total], axis=-1)
