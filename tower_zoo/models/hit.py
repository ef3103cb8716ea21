"""``hit``: a Hierarchical Interaction-Enhanced Two-Tower model (Tencent) for pre-ranking.

Plain two towers never see each other before the final dot product. HIT gives each tower a
*generator* that learns to predict the opposite tower's output from its own side's features:

    ĝ_v = G_u(sg(x_u)) ≈ sg(v(item))      ĝ_u = G_v(sg(x_v)) ≈ sg(u(user))

trained on clicked pairs with L_gen = ||ĝ_v - sg(v)||² + ||ĝ_u - sg(u)||² (generator inputs and
targets under stop-gradient, so the generator loss moves only the generators). Each tower's MLP then
reads its own features *and* the generated vector (under stop-gradient, so the ranking loss does not
move the generator): the user tower sees "the kind of item this user clicks", the item tower "the kind
of user who clicks it" — cross-tower interaction with both sides still computable on their own.

Both towers end in H heads of head_dim (unit vectors); the score aggregates them,
s = (1/H) Σ_h <u_h, v_h> / T.

Cached offline: the item's H heads (its generator runs offline too). Per request: the user generator and
tower once; per candidate H · head_dim multiply-adds (one dot product of the flattened heads).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.features import FieldEmbedding
from tower_zoo.layers import MLP, L2Normalize
from tower_zoo.models.base import LABEL_FEATURE, TwoTowerConfig, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least, check_positive_units
from tower_zoo.registry import register_model


@dataclasses.dataclass
class HITConfig(TwoTowerConfig):
    """Tower and generator widths, heads, and the generator loss weight (``use_generators`` ablates)."""

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64)
    generator_units: tuple[int, ...] = (64,)
    num_heads: int = 4
    head_dim: int = 16
    temperature: float = 0.2
    use_generators: bool = True
    generator_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_positive_units(self, "hidden_units", "generator_units")
        check_at_least(self, {"num_heads": 1, "head_dim": 1, "generator_weight": 0})


class HITTower(tf.keras.layers.Layer):
    """One side: fields -> (generator on sg(fields)) -> MLP([fields, sg(generated)]) -> H unit heads.

    ``call(features) -> (heads [B, H, d], generated [B, H·d] or None)``.
    """

    def __init__(self, feature_spec, side, config: HITConfig, feature_names=None, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.num_heads, self.head_dim = c.num_heads, c.head_dim
        self.fields = FieldEmbedding(feature_spec, side, c.embedding_dim, feature_names, name="fields")
        self.generator = (MLP(c.generator_units + (c.num_heads * c.head_dim,), name="generator")
                          if c.use_generators else None)
        self.mlp = MLP(c.hidden_units + (c.num_heads * c.head_dim,), name="mlp")
        self.normalize = L2Normalize()

    def call(self, features, training=False):
        fields = self.fields(features)
        x = tf.reshape(fields, [-1, self.fields.num_fields * self.fields.dim])
        generated = None
        if self.generator is not None:
            generated = self.generator(tf.stop_gradient(x), training=training)
            x = tf.concat([x, tf.stop_gradient(generated)], axis=-1)
        heads = tf.reshape(self.mlp(x, training=training), [-1, self.num_heads, self.head_dim])
        return self.normalize(heads), generated


@register_model("hit", HITConfig)
class HierarchicalInteractionTwoTower(TwoTowerModel):
    """Generators inject the opposite side's expected representation; multi-head score. Towers [B, H, d]."""

    model_kind = "pre_ranking"
    config_class = HITConfig

    def __init__(self, feature_spec, config: HITConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        self.user_tower = HITTower(self.feature_spec, "user", self.config, self.side_feature_names("user"),
                                   name="user_tower")
        self.item_tower = HITTower(self.feature_spec, "item", self.config, self.side_feature_names("item"),
                                   name="item_tower")

    def user_embedding(self, features, training=False) -> tf.Tensor:
        return self.user_tower(features, training=training)[0]

    def item_embedding(self, features, training=False) -> tf.Tensor:
        return self.item_tower(features, training=training)[0]

    def similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        return tf.einsum("bhd,nhd->bn", user_embedding, item_embedding) / self.config.num_heads

    def paired_similarity(self, user_embedding, item_embedding) -> tf.Tensor:
        return tf.einsum("bhd,bmhd->bm", user_embedding, item_embedding) / self.config.num_heads

    def generator_loss(self, features, user_embedding, item_embedding, training=False) -> tf.Tensor:
        """L_gen on the batch's clicked pairs (all pairs when there is no label)."""
        _, generated_item = self.user_tower(features, training=training)   # user side predicts the item
        _, generated_user = self.item_tower(features, training=training)   # item side predicts the user
        width = self.config.num_heads * self.config.head_dim
        errors = (tf.reduce_sum(tf.square(generated_item - tf.stop_gradient(tf.reshape(item_embedding, [-1, width]))), axis=-1)
                  + tf.reduce_sum(tf.square(generated_user - tf.stop_gradient(tf.reshape(user_embedding, [-1, width]))), axis=-1))
        if LABEL_FEATURE in features:
            weights = tf.cast(features[LABEL_FEATURE], errors.dtype)
            return tf.math.divide_no_nan(tf.reduce_sum(errors * weights), tf.reduce_sum(weights))
        return tf.reduce_mean(errors)

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        if not self.config.use_generators:
            return tf.constant(0.0)
        return self.config.generator_weight * self.generator_loss(features, user_embedding, item_embedding, training)
