"""Embedding layers for the three feature kinds of a FeatureSpec.

Inputs are the arrays produced by ``FeatureSpec.encode``: int32 indices (0 = padding, 1 = OOV)
and standardized float32 numerics. Every feature becomes one "field" vector of the same width,
so towers can either concatenate fields (DSSM) or weight them per field (IntTower's Light-SE).
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from tower_zoo.data.spec import FeatureSpec, NumericFeature, SequenceFeature


class MaskedMeanPooling(tf.keras.layers.Layer):
    """Mean of the non-padding positions of a sequence.

    Inputs: ``values`` [B, L, D] and ``mask`` [B, L] (bool). Output: [B, D]; an all-padding
    row gives zeros (not NaN).
    """

    def call(self, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
        total = tf.reduce_sum(values * weights, axis=1)
        count = tf.reduce_sum(weights, axis=1)
        return tf.math.divide_no_nan(total, count)


class SequenceEmbedding(tf.keras.layers.Layer):
    """Embeds a padded id sequence. Input int32 [B, L]; output ([B, L, D] vectors, [B, L] mask).

    Padding (index 0) embeds to zeros and is masked out, so padding never changes a pooled value.
    """

    def __init__(self, vocab_size: int, dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.dim = dim
        self.embedding = tf.keras.layers.Embedding(vocab_size, dim, name="table")

    def call(self, ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mask = tf.not_equal(ids, 0)
        vectors = self.embedding(ids) * tf.cast(mask, self.embedding.dtype)[..., tf.newaxis]
        return vectors, mask

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}


class NumericEmbedding(tf.keras.layers.Layer):
    """A standardized scalar times a learned vector plus a bias vector. Input [B]; output [B, D]."""

    def __init__(self, dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.dim = dim

    def build(self, input_shape: tf.TensorShape) -> None:
        self.direction = self.add_weight("direction", shape=(self.dim,), initializer="glorot_uniform")
        self.bias = self.add_weight("bias", shape=(self.dim,), initializer="zeros")
        super().build(input_shape)

    def call(self, values: tf.Tensor) -> tf.Tensor:
        values = tf.cast(values, self.direction.dtype)[:, tf.newaxis]
        return values * self.direction + self.bias

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "dim": self.dim}


class FieldEmbedding(tf.keras.layers.Layer):
    """All features of one tower side, each embedded to a ``dim``-wide field vector.

    ``call(features)`` takes ``{name: encoded array}`` (extra keys are ignored: the other side's
    features may be in the same dict) and returns ``[B, F, D]``, fields in spec order:
    categorical and bucketized numerics by lookup, plain numerics by ``NumericEmbedding``,
    sequences by ``SequenceEmbedding`` + ``MaskedMeanPooling``.

    Args:
      feature_spec: the dataset's FeatureSpec (a dict from ``FeatureSpec.to_dict`` also works).
      side: ``"user"`` or ``"item"``.
      dim: the field width D.
      feature_names: optional subset of the side's features (default: all of them).
    """

    def __init__(self, feature_spec: FeatureSpec | dict, side: str, dim: int,
                 feature_names: Sequence[str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if isinstance(feature_spec, dict):
            feature_spec = FeatureSpec.from_dict(feature_spec)
        self.feature_spec = feature_spec
        self.side = side
        self.dim = dim
        available = [f.name for f in feature_spec.side(side)]
        names = list(feature_names) if feature_names is not None else available
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"unknown {side} feature(s) {unknown}; {side} features are {available}")
        if not names:
            raise ValueError(f"FieldEmbedding({side!r}) has no features")
        self.feature_names = tuple(names)
        self.pooling = MaskedMeanPooling(name="mean_pool")
        self.field_layers = {}
        for name in self.feature_names:
            feature = feature_spec.get(name)
            if isinstance(feature, SequenceFeature):
                layer = SequenceEmbedding(feature.vocab_size, dim, name=f"{name}_embedding")
            elif isinstance(feature, NumericFeature) and not feature.bucketized:
                layer = NumericEmbedding(dim, name=f"{name}_embedding")
            else:
                layer = tf.keras.layers.Embedding(feature.vocab_size, dim, name=f"{name}_embedding")
            self.field_layers[name] = layer

    @property
    def num_fields(self) -> int:
        return len(self.feature_names)

    def embed_field(self, name: str, values: tf.Tensor) -> tf.Tensor:
        """One field: ``values`` as encoded ([B] or [B, L]) -> [B, D]."""
        layer = self.field_layers[name]
        if isinstance(layer, SequenceEmbedding):
            vectors, mask = layer(values)
            return self.pooling(vectors, mask)
        return layer(values)

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        missing = [n for n in self.feature_names if n not in features]
        if missing:
            raise ValueError(f"{self.side} tower input lacks feature(s) {missing}; got {sorted(features)}")
        return tf.stack([self.embed_field(n, features[n]) for n in self.feature_names], axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "feature_spec": self.feature_spec.to_dict(), "side": self.side,
                "dim": self.dim, "feature_names": list(self.feature_names)}
