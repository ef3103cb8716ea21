"""``three_tower``: the industrial pre-ranking "三塔" design — user tower, item tower, and a small cross tower.

A two-tower pre-ranker cannot see user × item cross features; a full ranker is too expensive per candidate.
The three-tower model splits the cost explicitly:

* user tower (once per request): an MLP over the user's fields -> u [B, T]; also the history summary h [B, D]
  the cross features need;
* item tower (cached offline per item): an MLP over the item's fields -> v [B, T]; also its affinity vector a;
* cross tower (per candidate, small): an MLP over the user × item cross fields (``HistoryAffinityCross``:
  h ⊙ a and ⟨h, a⟩) -> c [B, C];
* upper layers (per candidate): an MLP over [u, v, u ⊙ v, c] with one head per objective (``objectives``,
  e.g. like and love on MovieLens), trained on each objective's labels (``objective_labels`` of
  ``Trainer.fit``); ``pair_logits`` is the first objective's logit, ``objective_logits`` all of them (fuse
  them at serving time with ``tower_zoo.training.objectives.fuse_objective_scores``).

Per-candidate cost (defaults T = 32, D = 16, cross 32-16, upper 64): cross fields 2·D, cross tower
2·D·32 + 32·16, upper (3T + 16)·64 + 64·K ≈ 1k + 0.5k + 7.2k ≈ 8.8k multiply-adds — between a two-tower
dot product (T) and COLD's full MLP; the benchmark measures µs per candidate.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.layers import MLP, MLPTower
from tower_zoo.layers.cross_features import HistoryAffinityCross
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_positive_units
from tower_zoo.models.pairwise import all_pairs_logits
from tower_zoo.registry import register_model


@dataclasses.dataclass
class ThreeTowerConfig(TwoTowerConfig):
    """Tower, cross-tower and upper-layer widths, the objectives (one head each), the history feature."""

    embedding_dim: int = 16
    tower_units: tuple[int, ...] = (64, 32)
    cross_units: tuple[int, ...] = (32, 16)
    upper_units: tuple[int, ...] = (64,)
    objectives: tuple[str, ...] = ("like", "love")
    history_feature: str = HISTORY_FEATURE

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "tower_units", "cross_units", "upper_units")
        if not self.objectives or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives must be distinct names, got {self.objectives}")


@register_model("three_tower", ThreeTowerConfig)
class ThreeTower(TwoTowerModel):
    """User tower (per request), item tower (cached), cross tower and heads (per candidate)."""

    model_kind = "pre_ranking"
    config_class = ThreeTowerConfig

    def __init__(self, feature_spec, config: ThreeTowerConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        history, _ = self.history_and_static_features(c.history_feature)
        self.user_tower, self.item_tower = (
            MLPTower(spec, side, c.embedding_dim, c.tower_units, self.side_feature_names(side), name=f"{side}_tower")
            for side in ("user", "item"))
        self.cross = HistoryAffinityCross(history.vocab_size, c.embedding_dim, name="cross")
        self.cross_tower = MLP(c.cross_units, output_activation="relu", name="cross_tower")
        self.upper = MLP(c.upper_units, output_activation="relu", name="upper")
        self.heads = tf.keras.layers.Dense(len(c.objectives), name="objective_heads")

    @property
    def objective_names(self) -> tuple[str, ...]:
        return self.config.objectives

    def user_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        return {"vector": self.user_tower(features, training=training),                      # [B, T]
                "history": self.cross.user_summary(features[self.config.history_feature])}  # [B, D]

    def item_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        return {"vector": self.item_tower(features, training=training),                      # [B, T]
                "affinity": self.cross.item_vector(features[self.feature_spec.item_id_feature])}  # [B, D]

    def objective_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        """Row-aligned pairs -> [B, K], one logit per objective."""
        cross = self.cross(user_embedding["history"], item_embedding["affinity"])  # [B, 2, D]
        crossed = self.cross_tower(tf.reshape(cross, [-1, 2 * self.config.embedding_dim]))
        u, v = user_embedding["vector"], item_embedding["vector"]
        joint = self.upper(tf.concat([u, v, u * v, crossed], axis=-1))
        return self.temperature(self.heads(joint)) + self.score_bias

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        return self.objective_logits(user_embedding, item_embedding)[:, 0]

    def logits(self, user_embedding, item_embedding) -> tf.Tensor:
        return all_pairs_logits(self.pair_logits, user_embedding, item_embedding)

    def similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        raise ValueError("three_tower scores (user, candidate) pairs with its cross tower; it has no similarity")
