"""``gnolr``: Generalized Neural Ordinal Logistic Regression (Zhang et al., KDD 2025, "Embed Progressive
Implicit Preference in Unified Space for Deep Collaborative Filtering"; arXiv 2505.20900).

Feedback levels are ordered and nested: on MovieLens a retrieval example is a rated item (level 1), some are
liked (level 2, rating >= 4), fewer loved (level 3, rating 5); on other data, any ordered 0/1 label columns
(``levels`` names them; every example of a retrieval batch is at least level 1). With K levels:

* each tower gives one unit vector per level, u_t and v_t [B, K, d] (a shared MLP body, one linear head per
  level, L2-normalized), and the cumulative similarity s_t(u, v) = Σ_{j<=t} <u_j, v_j>;
* P(level >= t | u, v) = σ(S · s_t − a_t), with the scale S and thresholds a_1 < a_2 < ... < a_K;
* the retrieval score is the top level's similarity s_K = <concat_t u_t, concat_t v_t>: **one dot product**
  over the unified K · d space. A lower level's score is a prefix of the same vectors.

The nested feedback-specific optimization (``tower_zoo.tasks.ordinal``) sums the ordinal likelihood truncated
at every level t = 1..K (levels above t merged into t), so level t's problem only ever sees the first t
blocks: the first block learns "any positive", each later block what separates the next level.

Read from the paper's text (arXiv 2505.20900) and its released code (github FuCongResearchSquad/GNOLR,
``util/loss.py``: ``ordinal_multi_tasks_gnolr_with_multi_feedback``; ``model/DSSM.py``): thresholds
a_t = −log m_t from each feedback's base rate m_t, scale S (2.5 in its scripts), per-level tower heads,
cumulative logits. Deviations, and why:

* Retrieval batches hold positives only; the paper trains on impressions with explicit 0 labels. Level 0
  here is every candidate column that is not the row's positive (in-batch / sampled negatives, accidental
  hits masked), and the task adds a per-level sampled softmax (the paper's listwise variant
  ``single_gnolr_l`` combines pointwise and listwise terms the same way; weight ``listwise_weight`` there).
* The ordinal likelihood needs P(>= t) >= P(>= t+1), i.e. S · <u_{t+1}, v_{t+1}> <= a_{t+1} − a_t. The
  paper's scripts get it from their data (KuaiRand: gap 2.88 > S = 2.5); here it holds by construction:
  a_{t+1} = a_t + S + softplus(δ_{t+1}) (cosines are <= 1), with a_1 and the δ learned (the paper's
  "learnable a" variant) and initialised at −log m_t where that order allows.

Serving: items cache concat_t v_t (K · d floats); a request runs the user tower once and one ANN search
over the K · d vectors, exactly like a single-objective model of width K · d.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import tensorflow as tf

from tower_zoo.layers import L2Normalize, MLPTower
from tower_zoo.models.base import TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_activation, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class GNOLRConfig(TwoTowerConfig):
    """levels: names of the ordered 0/1 label columns above "any positive" (lowest first); K = len + 1.
    base_rates: m_1 > ... > m_K, the initial P(level >= t) of a candidate pair (thresholds a_t = −log m_t).
    ordinal_scale: S, the pointwise logits' scale on cosines. head_dim: d, the width of each level's block."""

    embedding_dim: int = 32
    hidden_units: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    head_dim: int = 32
    levels: tuple[str, ...] = ("like", "love")
    base_rates: tuple[float, ...] = (0.5, 0.25, 0.08)
    ordinal_scale: float = 2.5
    temperature: float = 0.05

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units")
        check_activation(self.activation)
        if self.head_dim < 1:
            raise ValueError(f"head_dim must be >= 1, got {self.head_dim}")
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels must be distinct names, got {self.levels}")
        if len(self.base_rates) != len(self.levels) + 1:
            raise ValueError(f"base_rates needs one rate per level including the base level: "
                             f"{len(self.levels) + 1} values, got {self.base_rates}")
        if any(not 0 < m < 1 for m in self.base_rates) or any(
                b >= a for a, b in zip(self.base_rates, self.base_rates[1:])):
            raise ValueError(f"base_rates must decrease strictly within (0, 1), got {self.base_rates}")
        if not self.ordinal_scale > 0:
            raise ValueError(f"ordinal_scale must be > 0, got {self.ordinal_scale}")


def initial_thresholds(base_rates: tuple[float, ...], scale: float) -> list[float]:
    """a_t = −log m_t, raised where needed so that a_{t+1} − a_t > scale (the order constraint)."""
    thresholds = [-math.log(base_rates[0])]
    for rate in base_rates[1:]:
        thresholds.append(max(-math.log(rate), thresholds[-1] + scale + 1e-2))
    return thresholds


class OrdinalThresholds(tf.keras.layers.Layer):
    """K increasing thresholds a_1 < ... < a_K with gaps > ``scale``: a_1 free, a_{t+1} = a_t + scale +
    softplus(δ_{t+1}). ``value()`` -> float [K]."""

    def __init__(self, initial: list[float], scale: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.initial, self.scale = [float(a) for a in initial], float(scale)
        gaps = [b - a - self.scale for a, b in zip(self.initial, self.initial[1:])]
        raw = [self.initial[0]] + [math.log(math.expm1(g)) for g in gaps]  # softplus⁻¹ of each extra gap
        self.raw = self.add_weight("raw", shape=(len(raw),), initializer=tf.keras.initializers.Constant(raw))

    def value(self) -> tf.Tensor:
        steps = tf.concat([self.raw[:1], self.scale + tf.nn.softplus(self.raw[1:])], axis=0)
        return tf.cumsum(steps)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "initial": self.initial, "scale": self.scale}


@register_model("gnolr", GNOLRConfig)
class GNOLR(TwoTowerModel):
    """One unit block per level on each side; towers [B, K · head_dim], scored by one dot product."""

    config_class = GNOLRConfig

    def __init__(self, feature_spec, config: GNOLRConfig | None = None, **kwargs: Any):
        super().__init__(feature_spec, config, **kwargs)
        c = self.config
        self.user_body, self.item_body = (
            MLPTower(self.feature_spec, side, c.embedding_dim, c.hidden_units, self.side_feature_names(side),
                     c.activation, name=f"{side}_body") for side in ("user", "item"))
        num_levels = len(c.levels) + 1
        self.user_heads = tf.keras.layers.Dense(num_levels * c.head_dim, name="user_level_heads")
        self.item_heads = tf.keras.layers.Dense(num_levels * c.head_dim, name="item_level_heads")
        self.normalize = L2Normalize(name="l2_normalize")
        self.thresholds = OrdinalThresholds(initial_thresholds(c.base_rates, c.ordinal_scale), c.ordinal_scale,
                                            name="ordinal_thresholds")

    @property
    def ordinal_levels(self) -> tuple[str, ...]:
        """Names of the levels above the base (the objective label columns the Trainer needs)."""
        return self.config.levels

    @property
    def objective_names(self) -> tuple[str, ...]:
        return self.config.levels

    @property
    def num_levels(self) -> int:
        return len(self.config.levels) + 1

    def _blocks(self, body, heads, features, training) -> tf.Tensor:
        vectors = heads(body(features, training=training))
        return self.normalize(tf.reshape(vectors, [-1, self.num_levels, self.config.head_dim]))

    def level_user_embedding(self, features, training=False) -> tf.Tensor:
        """[B, K, d]: the user's unit vector of each level."""
        return self._blocks(self.user_body, self.user_heads, features, training)

    def level_item_embedding(self, features, training=False) -> tf.Tensor:
        """[B, K, d]: the item's unit vector of each level."""
        return self._blocks(self.item_body, self.item_heads, features, training)

    def user_embedding(self, features, training=False) -> tf.Tensor:
        """[B, K · d]: the levels' blocks side by side (the unified space)."""
        return tf.reshape(self.level_user_embedding(features, training), [-1, self.num_levels * self.config.head_dim])

    def item_embedding(self, features, training=False) -> tf.Tensor:
        return tf.reshape(self.level_item_embedding(features, training), [-1, self.num_levels * self.config.head_dim])

    def _levels(self, vectors: tf.Tensor) -> tf.Tensor:
        return tf.reshape(vectors, tf.concat([tf.shape(vectors)[:-1], [self.num_levels, self.config.head_dim]], 0))

    def cumulative_similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """Every user against every item, per level: [B, K·d] x [N, K·d] -> [B, N, K], s_t = Σ_{j<=t} <u_j, v_j>."""
        dots = tf.einsum("bkd,nkd->bnk", self._levels(user_embedding), self._levels(item_embedding))
        return tf.cumsum(dots, axis=-1)

    def paired_cumulative_similarity(self, user_embedding: tf.Tensor, item_embedding: tf.Tensor) -> tf.Tensor:
        """Each user against its own items, per level: [B, K·d] x [B, M, K·d] -> [B, M, K]."""
        dots = tf.einsum("bkd,bmkd->bmk", self._levels(user_embedding), self._levels(item_embedding))
        return tf.cumsum(dots, axis=-1)

    def ordinal_logits(self, cumulative_similarity: tf.Tensor) -> tf.Tensor:
        """[..., K] cumulative similarities -> [..., K] logits of P(level >= t) = σ(S · s_t − a_t)."""
        return self.config.ordinal_scale * cumulative_similarity - self.thresholds.value()

    def level_probabilities(self, user_features, item_features, training=False) -> tf.Tensor:
        """Row-aligned (user i, item i) pairs: [B, K] of P(level >= t)."""
        similarity = self.paired_cumulative_similarity(self.user_embedding(user_features, training),
                                                       self.item_embedding(item_features, training)[:, tf.newaxis])
        return tf.sigmoid(self.ordinal_logits(similarity[:, 0]))

