"""``hit``: the Hierarchical Interaction-Enhanced Two-Tower model (Yang et al., Tencent, arXiv 2505.19849).

Two additions to plain towers, each computable on its own side:

**Coarse-grained generation.** Each tower owns two *generators*, MLPs over its own side's static
features (under stop-gradient). The user side's generators "mimic the ad": they predict the item
tower's multi-head representation; the item side's generators predict the user tower's. The *target*
generator learns from clicked rows (y = 1), the *non-target* generator from unclicked rows (y = 0):

    L_gen = Σ_side Σ_{g ∈ {target, non-target}}  mean_{rows with y = y_g} (1 - cos(G_g(sg(x_side)), sg(r_other)))

with r_other the opposite tower's flattened multi-head representation [B, H·d]. Both generated vectors
enter their tower's MLP input under stop-gradient (``[fields, sg(g_target), sg(g_non_target)]``), so the
ranking loss never moves a generator and the generation loss moves only the generators.

*Sign of the loss.* A generator is meant to mimic its target, i.e. maximize cos(ĝ, r), so the loss
falls as the cosine rises: 1 - cos (the constant 1 makes a perfect mimic cost 0). The released code
minimizes ``y · cos`` (plus sign, no ``1 -``), which drives the generated vector to the *opposite*
direction of the target; it still trains (the tower's first dense layer can flip a sign) but it is not
the mimicking the paper describes. We use 1 - cos. Rows are averaged over the rows a generator learns
from (the released code averages over the whole batch, i.e. the same loss scaled by the click rate).

**Fine-grained matching (multi-head representer).** Each tower ends in H_u (user) or H_v (item) heads
of width d, and the score is MaxSim: each user head takes its best-matching item head,

    s(u, v) = Σ_{i < H_u} max_{j < H_v} <u_i, v_j> / T + b.

Heads are raw projections as in the paper and the released code (``normalize_heads`` L2-normalizes
each head, an option of ours).

Serving cost. Cached offline per item: its H_v heads (H_v·d floats; the item generators run offline
with the item tower). Once per request: the user generators and tower. Per candidate: H_u·H_v dot
products of width d (H_u·H_v·d multiply-adds, H_u·(H_v - 1) comparisons, H_u - 1 additions) — with the
defaults 4·4·16 = 256 multiply-adds, four times a single dot product of the same 64-wide vectors.

Deviations: generators read the tower's non-sequence ("static") features by default
(``generator_features`` picks others); the generator input shares the tower's field embeddings (under
stop-gradient, as in the released code); Light-SE, which the released code defines but does not call
in HIT's forward pass, is not used.

Ablations: ``use_generators`` (both generators), ``use_target_generator`` / ``use_non_target_generator``
(one of them), ``user_heads = item_heads = 1`` (a single dot product instead of MaxSim).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.features import FieldEmbedding
from tower_zoo.layers import MLP, L2Normalize, max_similarity
from tower_zoo.models.base import LABEL_FEATURE, TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model

GENERATOR_KINDS = ("target", "non_target")       # learns from rows with label 1, label 0
_KIND_LABEL = {"target": 1.0, "non_target": 0.0}


@dataclasses.dataclass
class HITConfig(TwoTowerConfig):
    """Towers, heads, generators and their loss weight.

    user_heads / item_heads / head_dim: the multi-head representer (H_u, H_v, d).
    generator_features: features the generators read (each side takes its own; None: the side's
      non-sequence features).
    use_generators / use_target_generator / use_non_target_generator: ablations.
    """

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64)
    generator_units: tuple[int, ...] = (64,)
    user_heads: int = 4
    item_heads: int = 4
    head_dim: int = 16
    normalize_heads: bool = False
    use_generators: bool = True
    use_target_generator: bool = True
    use_non_target_generator: bool = True
    generator_features: tuple[str, ...] | None = None
    generator_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units", "generator_units")
        check_at_least(self, {"user_heads": 1, "item_heads": 1, "head_dim": 1, "generator_weight": 0})
        if self.use_generators and not (self.use_target_generator or self.use_non_target_generator):
            raise ValueError("use_generators=True needs use_target_generator or use_non_target_generator")

    @property
    def generator_kinds(self) -> tuple[str, ...]:
        """The generators each side has."""
        if not self.use_generators:
            return ()
        wanted = {"target": self.use_target_generator, "non_target": self.use_non_target_generator}
        return tuple(kind for kind in GENERATOR_KINDS if wanted[kind])


class HITTower(tf.keras.layers.Layer):
    """One side: fields -> generators on sg(static fields) -> MLP([fields, sg(generated)]) -> heads.

    ``call(features) -> heads [B, H, d]``; ``generate(features) -> {kind: [B, W]}``, each generator's
    prediction of the opposite tower's flattened heads (W = H_other · d).
    """

    def __init__(self, feature_spec, side: str, config: HITConfig, feature_names=None, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.side = side
        own_heads, other_heads = (c.user_heads, c.item_heads) if side == "user" else (c.item_heads, c.user_heads)
        self.num_heads, self.head_dim = own_heads, c.head_dim
        self.fields = FieldEmbedding(feature_spec, side, c.embedding_dim, feature_names, name="fields")
        self.generator_fields = self._generator_field_indices(feature_spec, c) if c.generator_kinds else []
        self.generators = {kind: MLP(c.generator_units + (other_heads * c.head_dim,), name=f"{kind}_generator")
                           for kind in c.generator_kinds}
        self.mlp = MLP(c.hidden_units + (own_heads * c.head_dim,), name="mlp")
        self.normalize = L2Normalize() if c.normalize_heads else None

    def _generator_field_indices(self, feature_spec, config: HITConfig) -> list[int]:
        names = self.fields.feature_names
        if config.generator_features is None:
            chosen = [n for n in names if feature_spec.get(n).kind != "sequence"]
        else:
            unknown = [n for n in config.generator_features if n not in {f.name for f in feature_spec.features}]
            if unknown:
                raise ValueError(f"generator_features has unknown feature(s) {unknown}; features are "
                                 f"{[f.name for f in feature_spec.features]}")
            chosen = [n for n in names if n in config.generator_features]
        if not chosen:
            raise ValueError(f"generator_features={config.generator_features} gives the {self.side} generators "
                             f"no input: pick some of the {self.side} tower's features {list(names)}")
        return [names.index(n) for n in chosen]

    def _flat(self, fields: tf.Tensor) -> tf.Tensor:
        return tf.reshape(fields, [-1, fields.shape[1] * self.fields.dim])

    def _generate_from(self, fields: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        if not self.generators:
            return {}
        static = tf.stop_gradient(self._flat(tf.gather(fields, self.generator_fields, axis=1)))
        return {kind: generator(static, training=training) for kind, generator in self.generators.items()}

    def generate(self, features, training: bool = False) -> dict[str, tf.Tensor]:
        """{generator kind: [B, W]} predictions of the opposite side's flattened heads."""
        return self._generate_from(self.fields(features), training)

    def call(self, features, training: bool = False) -> tf.Tensor:
        fields = self.fields(features)
        generated = self._generate_from(fields, training)
        x = tf.concat([self._flat(fields)] + [tf.stop_gradient(generated[k]) for k in sorted(generated)], axis=-1)
        heads = tf.reshape(self.mlp(x, training=training), [-1, self.num_heads, self.head_dim])
        return self.normalize(heads) if self.normalize is not None else heads

    def get_config(self) -> dict:
        return {**super().get_config(), "side": self.side, "num_heads": self.num_heads, "head_dim": self.head_dim}


def cosine_generation_loss(generated: tf.Tensor, target: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """mean over rows weighted by ``weights`` [B] of 1 - cos(generated [B, W], sg(target) [B, W]); 0 when
    no row has weight."""
    cosine = tf.reduce_sum(tf.math.l2_normalize(generated, axis=-1)
                           * tf.math.l2_normalize(tf.stop_gradient(target), axis=-1), axis=-1)
    return tf.math.divide_no_nan(tf.reduce_sum((1.0 - cosine) * weights), tf.reduce_sum(weights))


@register_model("hit", HITConfig)
class HierarchicalInteractionTwoTower(TwoTowerModel):
    """Target / non-target generators feed each tower; MaxSim over multi-head representations.
    Towers: users [B, H_u, d], items [B, H_v, d]."""

    model_kind = "pre_ranking"
    config_class = HITConfig

    def __init__(self, feature_spec, config: HITConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        self.user_tower = HITTower(self.feature_spec, "user", self.config, self.side_feature_names("user"),
                                   name="user_tower")
        self.item_tower = HITTower(self.feature_spec, "item", self.config, self.side_feature_names("item"),
                                   name="item_tower")

    def similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        """users [B, H_u, d] x items [N, H_v, d] -> [B, N] MaxSim."""
        return max_similarity(user_embedding, item_embedding)

    def paired_similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        """users [B, H_u, d] x their own items [B, M, H_v, d] -> [B, M] MaxSim."""
        return max_similarity(user_embedding, item_embedding)

    def generation_losses(self, features, user_embedding, item_embedding, training=False) -> dict[str, tf.Tensor]:
        """{"<side>_<kind>": loss}: each generator's 1 - cos against the opposite tower's flattened heads, over
        the rows with its label (target: y = 1, non-target: y = 0; every row counts as clicked without labels)."""
        flat = {"user": tf.reshape(user_embedding, [tf.shape(user_embedding)[0], -1]),
                "item": tf.reshape(item_embedding, [tf.shape(item_embedding)[0], -1])}
        labels = (tf.cast(features[LABEL_FEATURE], tf.float32) if LABEL_FEATURE in features
                  else tf.ones([tf.shape(flat["user"])[0]]))
        losses = {}
        for side, tower, other in (("user", self.user_tower, "item"), ("item", self.item_tower, "user")):
            for kind, generated in tower.generate(features, training=training).items():
                weights = labels if _KIND_LABEL[kind] == 1.0 else 1.0 - labels
                losses[f"{side}_{kind}"] = cosine_generation_loss(generated, flat[other], weights)
        return losses

    def generator_loss(self, features, user_embedding, item_embedding, training=False) -> tf.Tensor:
        """L_gen: the sum of ``generation_losses``."""
        losses = self.generation_losses(features, user_embedding, item_embedding, training)
        return tf.add_n(list(losses.values())) if losses else tf.constant(0.0)

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        if not self.config.generator_kinds:
            return tf.constant(0.0)
        return self.config.generator_weight * self.generator_loss(features, user_embedding, item_embedding, training)
