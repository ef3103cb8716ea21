"""``dssm``: the deep structured semantic model as a two-tower recommender (Huang et al., CIKM 2013).

Each tower embeds its side's features (ids, categorical and bucketized side features, pooled
sequences such as the user's recent items and the item's genres), runs an MLP, and L2-normalizes;
the score is the cosine divided by a temperature. Item side cached offline: the item tower's output.
Per request: the user tower (one MLP pass) and an ANN search.
"""

from __future__ import annotations

import dataclasses

from tower_zoo.layers import MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_activation, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class DSSMConfig(TwoTowerConfig):
    """DSSM: MLP ``hidden_units`` per tower over ``embedding_dim`` fields, cosine / ``temperature``."""

    embedding_dim: int = 32
    hidden_units: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    dropout: float = 0.0
    l2_normalize: bool = True
    temperature: float = 0.05

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_activation(self.activation)


@register_model("dssm", DSSMConfig)
class DSSM(TwoTowerModel):
    """Two MLP towers over all features. Towers: features -> [B, hidden_units[-1]], unit norm."""

    config_class = DSSMConfig

    def __init__(self, feature_spec, config: DSSMConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.user_tower, self.item_tower = (
            MLPTower(self.feature_spec, side, c.embedding_dim, c.hidden_units, self.side_feature_names(side),
                     c.activation, c.dropout, c.l2_normalize, name=f"{side}_tower")
            for side in ("user", "item"))

