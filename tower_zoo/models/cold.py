"""``cold``: COLD (Wang et al., Alibaba, DLP-KDD 2020, "COLD: Towards the Next Generation of Pre-Ranking System").

COLD drops the two-tower restriction of pre-ranking: one fully connected network scores each (user,
candidate) pair over the concatenated embeddings of user features, item features and user × item cross
features (GwEN: group-wise embeddings, then FC layers), and keeps its cost in check by *feature selection*:
a squeeze-excitation block (``FieldImportance``) learns an importance per feature group, and a model with
only the most important groups, under a computing budget, is trained for serving.

Here: fields = the user tower's fields (user id, demographics, pooled history), the item's fields (item id,
year, genres) and two learned cross fields from the history (``HistoryAffinityCross``: history ⊙ candidate
affinity and their dot product), each ``embedding_dim`` wide; SE importance per field; an MLP
``hidden_units`` with ReLU; one logit. Feature selection (``rank_fields``): train with every field, rank the
fields by mean SE importance on data, retrain with the top ones (``user_features`` / ``item_features`` /
``cross_features`` of the config) — the benchmark reports each budget's AUC and cost.

What runs where (F fields of width D, MLP widths h_1..h_L):
* cached per item: its field embeddings (F_i · D floats) and its affinity vector (D);
* once per request: the user's field embeddings (F_u · D) and history summary (D);
* per candidate: the cross fields (2·D), the SE layer (F·D·F multiply-adds) and the MLP
  (F·D·h_1 + Σ h_l·h_{l+1}) — with the defaults (F = 11, D = 16, 128-64-32): about 3k + 22.5k + 10.3k ≈ 36k
  multiply-adds, vs 64 for a two-tower dot product; the benchmark measures µs per candidate.
Deviations: COLD's cross features are production statistics (user-category CTRs) that MovieLens does not
have; the learned affinity crosses stand in for them. COLD's engineering (column-wise computation, Float16,
online learning) is out of scope.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.features import FieldEmbedding
from tower_zoo.layers import MLP
from tower_zoo.layers.cross_features import HistoryAffinityCross
from tower_zoo.layers.field_importance import FieldImportance
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_positive_units
from tower_zoo.models.pairwise import all_pairs_logits
from tower_zoo.registry import register_model

CROSS_FIELDS = ("history_match", "history_similarity")


@dataclasses.dataclass
class ColdConfig(TwoTowerConfig):
    """Field width, MLP widths, SE on/off, the cross fields kept (feature selection), the history feature."""

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64, 32)
    use_se: bool = True
    cross_features: tuple[str, ...] = CROSS_FIELDS
    history_feature: str = HISTORY_FEATURE

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        unknown = sorted(set(self.cross_features) - set(CROSS_FIELDS))
        if unknown:
            raise ValueError(f"unknown cross feature(s) {unknown}; cold has {', '.join(CROSS_FIELDS)}")


@register_model("cold", ColdConfig)
class Cold(TwoTowerModel):
    """One MLP over user, item and cross fields with SE field weighting. States: dicts of fields."""

    model_kind = "pre_ranking"
    config_class = ColdConfig

    def __init__(self, feature_spec, config: ColdConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        self.user_fields = FieldEmbedding(spec, "user", c.embedding_dim, self.side_feature_names("user"),
                                          name="user_fields")
        self.item_fields = FieldEmbedding(spec, "item", c.embedding_dim, self.side_feature_names("item"),
                                          name="item_fields")
        self.cross = None
        if c.cross_features:
            history, _ = self.history_and_static_features(c.history_feature)
            self.cross = HistoryAffinityCross(history.vocab_size, c.embedding_dim, name="cross")
        self.importance = FieldImportance(name="field_importance") if c.use_se else None
        self.mlp = MLP(c.hidden_units + (1,), name="mlp")

    @property
    def field_names(self) -> tuple[str, ...]:
        """Every field in scoring order: user fields, item fields, cross fields."""
        return self.user_fields.feature_names + self.item_fields.feature_names + tuple(self.config.cross_features)

    def user_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        state = {"fields": self.user_fields(features)}  # [B, F_u, D]
        if self.cross is not None:
            state["history"] = self.cross.user_summary(features[self.config.history_feature])  # [B, D]
        return state

    def item_embedding(self, features, training=False) -> dict[str, tf.Tensor]:
        state = {"fields": self.item_fields(features)}  # [B, F_i, D]
        if self.cross is not None:
            state["affinity"] = self.cross.item_vector(features[self.feature_spec.item_id_feature])  # [B, D]
        return state

    def scored_fields(self, user_state, item_state) -> tuple[tf.Tensor, tf.Tensor | None]:
        """Row-aligned pairs -> (the SE-weighted fields [B, F, D], the importances [B, F] or None)."""
        parts = [user_state["fields"], item_state["fields"]]
        if self.cross is not None:
            cross = self.cross(user_state["history"], item_state["affinity"])  # [B, 2, D]
            keep = [CROSS_FIELDS.index(name) for name in self.config.cross_features]
            parts.append(tf.gather(cross, keep, axis=1))
        fields = tf.concat(parts, axis=1)
        if self.importance is None:
            return fields, None
        return self.importance(fields)

    def pair_logits(self, user_embedding, item_embedding) -> tf.Tensor:
        fields, _ = self.scored_fields(user_embedding, item_embedding)
        flat = tf.reshape(fields, [-1, len(self.field_names) * self.config.embedding_dim])
        return self.temperature(self.mlp(flat)[:, 0]) + self.score_bias

    def logits(self, user_embedding, item_embedding) -> tf.Tensor:
        return all_pairs_logits(self.pair_logits, user_embedding, item_embedding)

    def similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        raise ValueError("cold scores (user, candidate) pairs with an MLP; it has no similarity to index")


def rank_fields(model: Cold, features: dict[str, np.ndarray], batch_size: int = 4096) -> list[tuple[str, float]]:
    """COLD's feature ranking: every field's mean SE importance over ``features`` (row-aligned pairs), most
    important first."""
    if model.importance is None:
        raise ValueError("rank_fields needs a cold model with use_se=True")
    size = len(next(iter(features.values())))
    totals = np.zeros(len(model.field_names))
    for start in range(0, size, batch_size):
        chunk = {k: v[start:start + batch_size] for k, v in features.items()}
        _, importance = model.scored_fields(model.user_embedding(chunk), model.item_embedding(chunk))
        totals += importance.numpy().sum(axis=0)
    means = totals / size
    return sorted(zip(model.field_names, means.tolist()), key=lambda pair: -pair[1])


def selected_config(model: Cold, ranking: list[tuple[str, float]], budget: int) -> dict:
    """Config overrides keeping the ``budget`` most important fields (the id features always stay)."""
    spec = model.feature_spec
    kept = {name for name, _ in ranking[:budget]} | {spec.user_id_feature, spec.item_id_feature}
    return {"user_features": tuple(n for n in model.user_fields.feature_names if n in kept),
            "item_features": tuple(n for n in model.item_fields.feature_names if n in kept),
            "cross_features": tuple(n for n in model.config.cross_features if n in kept)}
