"""``dat``: Dual Augmented Two-tower model (Yu et al., Meituan, DLP-KDD 2021).

Each tower also reads a learned *augmented vector*, one per user (a_u) and one per item (a_v),
concatenated to its feature embeddings before the MLP. Two extra losses:

* Adaptive-Mimic Mechanism (AMM), on positive pairs only: a_u learns to mimic the *item* tower's
  output for the user's positives and a_v the *user* tower's output for the item's positives. The paper
  writes it per side as (1/T) Σ_(u,v,y) [y·a_u + (1 - y)·p_v - p_v]², which is y·(a_u - p_v)²: a row
  with label y = 0 contributes nothing. Here, over a batch of B rows with labels y_b,

      L_amm = (1/B) Σ_b y_b · ( ||a_u,b - sg(p_v,b)||² + ||a_v,b - sg(p_u,b)||² )

  with ||·||² the squared L2 norm (a sum over the D output dimensions, our reading of the paper's square
  of a vector) and the mean over all B rows, unlabelled ones included, as the paper's 1/T. Under the
  retrieval task every row is a positive (y_b = 1); under ``task="ranking"`` the exposure label
  (``features[LABEL_FEATURE]``) gates each row, so a_u is never pulled toward an item the user
  disliked. The DAT baseline released with IntTower's code (``preprocessing/utils.py``,
  ``dual_augmented_loss``) gates the same way but takes the mean over rows *and* dimensions, i.e. our
  value divided by D (a constant factor ``amm_weight`` absorbs). sg is stop-gradient: the mimic loss
  moves only the augmented vectors, never the opposite tower. Through a_u, the user tower sees
  information about the items the user interacts with (and vice versa): an implicit cross-tower
  interaction that stays cacheable.
* Category Alignment Loss (CAL): item embeddings of categories with few items are pushed toward the
  covariance structure of the largest category, so the model transfers what it learned there:

      L_ca = sum_{c != major} ||C(major) - C(c)||_F²

  with C(c) the covariance of the item-tower outputs of the batch's items in category c (categories
  with fewer than 2 items in the batch are skipped; the major category is the batch's largest). The
  category comes from ``category_feature`` (MovieLens: genres; an item is in every genre it lists).

Loss: L = L_task + amm_weight · L_amm + cal_weight · L_ca; ``use_amm`` / ``use_cal`` turn each off.
CAL reads every row's item vector whatever its label: it aligns the geometry of the item space, which
does not depend on who clicked (the paper computes it over the batch's items).
Serving: a_v is part of the item tower's input, so item vectors are cached as for DSSM; a_u is one
embedding lookup per request.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tower_zoo.data.schema.spec import PAD_INDEX, SequenceFeature
from tower_zoo.layers import L2Normalize, MLPTower
from tower_zoo.models.base import LABEL_FEATURE, TwoTowerModel
from tower_zoo.models.config_checks import check_at_least
from tower_zoo.models.dssm import DSSMConfig
from tower_zoo.registry import register_model


@dataclasses.dataclass
class DATConfig(DSSMConfig):
    """DSSM's knobs plus the augmented vectors and the two extra losses."""

    use_amm: bool = True
    amm_weight: float = 0.5
    use_cal: bool = True
    cal_weight: float = 1.0
    category_feature: str = "genres"

    def validate(self) -> None:
        super().validate()
        check_at_least(self, {"amm_weight": 0, "cal_weight": 0})


def covariance(vectors: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Unbiased covariance of the rows of ``vectors`` [B, D] selected by 0/1 ``weights`` [B]: [D, D]."""
    weights = tf.cast(weights, vectors.dtype)[:, tf.newaxis]
    count = tf.reduce_sum(weights)
    mean = tf.reduce_sum(vectors * weights, axis=0) / tf.maximum(count, 1.0)
    centered = (vectors - mean) * weights
    return tf.matmul(centered, centered, transpose_a=True) / tf.maximum(count - 1.0, 1.0)


def category_alignment_loss(item_vectors: tf.Tensor, membership: tf.Tensor) -> tf.Tensor:
    """CAL for one batch: item vectors [B, D], membership [B, K] (item b in category k) -> scalar.

    The major category is the one with most items in the batch; categories with < 2 items are skipped.
    """
    membership = tf.cast(membership, item_vectors.dtype)
    counts = tf.reduce_sum(membership, axis=0)  # [K]
    major = tf.argmax(counts)
    covariances = tf.map_fn(lambda column: covariance(item_vectors, column), tf.transpose(membership))  # [K, D, D]
    distances = tf.reduce_sum(tf.square(covariances - covariances[major]), axis=[1, 2])  # [K]
    usable = tf.logical_and(counts >= 2.0, tf.not_equal(tf.range(tf.shape(counts)[0], dtype=major.dtype), major))
    return tf.reduce_sum(tf.where(usable, distances, tf.zeros_like(distances)))


@register_model("dat", DATConfig)
class DualAugmentedTwoTower(TwoTowerModel):
    """DSSM towers that also read per-id augmented vectors; AMM and CAL losses. Towers: [B, D]."""

    config_class = DATConfig

    def __init__(self, feature_spec, config: DATConfig | None = None, **kwargs):
        super().__init__(feature_spec, config, **kwargs)
        c, spec = self.config, self.feature_spec
        category = spec.get(c.category_feature) if c.use_cal else None
        if category is not None and (category.side != "item" or not hasattr(category, "vocabulary")):
            raise ValueError(f"category_feature {c.category_feature!r} must be a categorical or sequence item feature")
        self.user_tower, self.item_tower = (
            MLPTower(spec, side, c.embedding_dim, c.hidden_units, self.side_feature_names(side), c.activation,
                     c.dropout, normalize=False, name=f"{side}_tower") for side in ("user", "item"))
        out_dim = c.hidden_units[-1]
        self.user_augment = tf.keras.layers.Embedding(spec.user_id.vocab_size, out_dim, name="user_augmented")
        self.item_augment = tf.keras.layers.Embedding(spec.item_id.vocab_size, out_dim, name="item_augmented")
        self.normalize = L2Normalize(name="l2_normalize") if c.l2_normalize else None
        self.num_categories = category.vocab_size if category is not None else 0

    def _output(self, vectors: tf.Tensor) -> tf.Tensor:
        return self.normalize(vectors) if self.normalize is not None else vectors

    def augmented_vectors(self, features) -> tuple[tf.Tensor, tf.Tensor]:
        """(a_u [B, D], a_v [B, D]) for the ids in ``features``."""
        spec = self.feature_spec
        return (self.user_augment(features[spec.user_id_feature]), self.item_augment(features[spec.item_id_feature]))

    def user_embedding(self, features, training=False) -> tf.Tensor:
        a_u = self.user_augment(features[self.feature_spec.user_id_feature])
        return self._output(self.user_tower(features, training=training, extra_inputs=a_u))

    def item_embedding(self, features, training=False) -> tf.Tensor:
        a_v = self.item_augment(features[self.feature_spec.item_id_feature])
        return self._output(self.item_tower(features, training=training, extra_inputs=a_v))

    def mimic_errors(self, user_embedding, item_embedding, features) -> tuple[tf.Tensor, tf.Tensor]:
        """Per row, ([B] ||a_u - sg(p_v)||², [B] ||a_v - sg(p_u)||²): each augmented vector against the
        *opposite* tower's output, summed over the D dimensions."""
        a_u, a_v = self.augmented_vectors(features)
        user_side = tf.reduce_sum(tf.square(a_u - tf.stop_gradient(item_embedding)), axis=-1)
        item_side = tf.reduce_sum(tf.square(a_v - tf.stop_gradient(user_embedding)), axis=-1)
        return user_side, item_side

    def mimic_loss(self, user_embedding, item_embedding, features) -> tf.Tensor:
        """L_amm (module docstring): rows gated by ``features[LABEL_FEATURE]`` when present (all rows are
        positives otherwise), averaged over all B rows."""
        user_side, item_side = self.mimic_errors(user_embedding, item_embedding, features)
        errors = user_side + item_side
        if LABEL_FEATURE in features:
            errors = tf.cast(features[LABEL_FEATURE], errors.dtype) * errors
        return tf.reduce_mean(errors)

    def category_membership(self, features) -> tf.Tensor:
        """[B, K] 0/1: item b belongs to category k (padding and OOV columns dropped)."""
        values = features[self.config.category_feature]
        feature = self.feature_spec.get(self.config.category_feature)
        if not isinstance(feature, SequenceFeature):
            values = values[:, tf.newaxis]
        hot = tf.reduce_max(tf.one_hot(values, self.num_categories), axis=1)
        return hot[:, PAD_INDEX + 2:]

    def auxiliary_loss(self, user_embedding, item_embedding, features, training=False) -> tf.Tensor:
        loss = tf.constant(0.0)
        if self.config.use_amm:
            loss += self.config.amm_weight * self.mimic_loss(user_embedding, item_embedding, features)
        if self.config.use_cal:
            loss += self.config.cal_weight * category_alignment_loss(item_embedding,
                                                                     self.category_membership(features))
        return loss
