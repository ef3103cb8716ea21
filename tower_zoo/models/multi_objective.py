"""``multi_objective``: shared towers of any retrieval model with one head per objective.

Each objective k (e.g. click, like) gets a linear head on each side followed by L2 normalization:
u_k = norm(W_k · u), v_k = norm(V_k · v), trained with its own labels (the Trainer runs the
configured loss per head on the examples positive for that objective). At scoring time the heads
are fused with weights w_k:

    score(u, v) = sum_k w_k · <u_k, v_k> / T = <concat_k(w_k · u_k), concat_k(v_k)> / T,

so the fused user and item vectors are still one dot product apart and the item side stays
ANN-indexable. Cached offline: concat_k(v_k), K · head_dim floats per item. Per request: the shared
user tower, K small matrix products, one ANN search. The fusion weights can be changed after
training without retraining (``set_fusion_weights``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import tensorflow as tf

from tower_zoo.layers import L2Normalize
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.registry import create_model, register_model


@dataclasses.dataclass
class MultiObjectiveConfig(TwoTowerConfig):
    """base_model / base_overrides: the shared towers; objectives and fusion_weights align."""

    base_model: str = "dssm"
    base_overrides: dict = dataclasses.field(default_factory=dict)
    objectives: tuple[str, ...] = ("click", "like")
    fusion_weights: tuple[float, ...] = (1.0, 1.0)
    head_dim: int = 32
    temperature: float = 0.05

    def validate(self) -> None:
        super().validate()
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives must be distinct names, got {self.objectives}")
        if len(self.fusion_weights) != len(self.objectives):
            raise ValueError(f"fusion_weights {self.fusion_weights} must align with objectives {self.objectives}")
        if self.base_model == "multi_objective":
            raise ValueError("base_model cannot itself be multi_objective")
        if self.head_dim < 1:
            raise ValueError(f"head_dim must be >= 1, got {self.head_dim}")


@register_model("multi_objective", MultiObjectiveConfig)
class MultiObjectiveModel(TwoTowerModel):
    """One head per objective on shared towers, fused at scoring time. Towers: [B, K * head_dim]."""

    config_class = MultiObjectiveConfig

    def __init__(self, feature_spec, config: MultiObjectiveConfig | None = None, **kwargs: Any):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.base = create_model(c.base_model, self.feature_spec, **c.base_overrides)
        self.user_heads = [tf.keras.layers.Dense(c.head_dim, name=f"user_head_{o}") for o in c.objectives]
        self.item_heads = [tf.keras.layers.Dense(c.head_dim, name=f"item_head_{o}") for o in c.objectives]
        self.normalize = L2Normalize(name="l2_normalize")
        self.fusion = tf.Variable(c.fusion_weights, trainable=False, dtype=tf.float32, name="fusion_weights")

    @property
    def objective_names(self) -> tuple:
        return self.config.objectives

    def set_fusion_weights(self, weights: Sequence[float]) -> None:
        """Changes the scoring-time fusion weights (item vectors need no recomputation)."""
        if len(weights) != len(self.config.objectives):
            raise ValueError(f"need {len(self.config.objectives)} weights, got {list(weights)}")
        self.fusion.assign([float(w) for w in weights])

    def _heads(self, vectors: tf.Tensor, heads) -> tf.Tensor:
        return tf.stack([self.normalize(head(vectors)) for head in heads], axis=1)

    def objective_user_embedding(self, features, training=False) -> tf.Tensor:
        """[B, K, head_dim] one unit vector per objective."""
        return self._heads(self.base.user_embedding(features, training=training), self.user_heads)

    def objective_item_embedding(self, features, training=False) -> tf.Tensor:
        """[B, K, head_dim] one unit vector per objective."""
        return self._heads(self.base.item_embedding(features, training=training), self.item_heads)

    def user_embedding(self, features, training=False) -> tf.Tensor:
        heads = self.objective_user_embedding(features, training=training)
        weighted = heads * self.fusion[tf.newaxis, :, tf.newaxis]
        return tf.reshape(weighted, [-1, len(self.user_heads) * self.config.head_dim])

    def item_embedding(self, features, training=False) -> tf.Tensor:
        heads = self.objective_item_embedding(features, training=training)
        return tf.reshape(heads, [-1, len(self.item_heads) * self.config.head_dim])
