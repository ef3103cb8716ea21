"""``mf``: matrix factorization, the matrix-completion baseline.

score(u, i) = <p_u, q_i> / T with one embedding per user id and per item id, nothing else.
Item side cached offline: q_i. Per request: one id lookup and an ANN search.
"""

from __future__ import annotations

import dataclasses

from tower_zoo.layers import MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.registry import register_model


@dataclasses.dataclass
class MFConfig(TwoTowerConfig):
    """MF: id embeddings of width ``embedding_dim``, raw inner product (temperature 1)."""

    embedding_dim: int = 64


@register_model("mf", MFConfig)
class MatrixFactorization(TwoTowerModel):
    """User-id and item-id embeddings scored by inner product. Towers: [B] ids -> [B, D]."""

    config_class = MFConfig

    def __init__(self, feature_spec, config: MFConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        spec, dim = self.feature_spec, self.config.embedding_dim
        self.user_tower = MLPTower(spec, "user", dim, feature_names=[spec.user_id_feature], name="user_tower")
        self.item_tower = MLPTower(spec, "item", dim, feature_names=[spec.item_id_feature], name="item_tower")

