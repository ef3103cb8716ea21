"""Embedding layers for the three feature kinds of a FeatureSpec.

Inputs are the arrays produced by ``FeatureSpec.encode``: int32 indices (0 = padding, 1 = OOV)
and standardized float32 numerics. Every feature becomes one "field" vector of the same width,
so towers can either concatenate fields (DSSM) or weight them per field (IntTower's Light-SE); a
feature with its own ``embedding_dim`` is embedded at that width and projected to the field width.
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from tower_zoo.data.schema.spec import FeatureSpec, NumericFeature, SequenceFeature

__all__ = ["FieldEmbedding", "MaskedMeanPooling", "NumericEmbedding", "PooledSequenceEmbedding", "ProjectedField",
           "SequenceEmbedding"]


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


class PooledSequenceEmbedding(tf.keras.layers.Layer):
    """The mean embedding of a padded id sequence's non-padding ids. Input int [B, L]; output [B, D]; a row
    of padding only gives zeros.

    Each distinct id of the batch is looked up once and the mean is one sparse segment reduction, so the
    table's gradient is an ``IndexedSlices`` over the batch's distinct rows (not B · L duplicated rows, which
    the optimizer would first have to sum: with histories of 50 that sum cost more than the whole forward
    pass). Same values as ``SequenceEmbedding`` + ``MaskedMeanPooling``.
    """

    def __init__(self, vocab_size: int, dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.dim = dim
        self.embedding = tf.keras.layers.Embedding(vocab_size, dim, name="table")

    def build(self, input_shape) -> None:
        if not self.embedding.built:   # a second build would call the table's initializer again
            self.embedding.build(tf.TensorShape([None]))
        super().build(input_shape)

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.convert_to_tensor(ids)
        positions = tf.where(tf.not_equal(ids, 0))  # [N, 2], row-major: segment ids come sorted
        # unique_with_counts, not unique: Grappler's arithmetic optimizer rewrites Unique → Gather →
        # SparseSegmentMean into a SparseSegmentMean over the whole table (SimplifyEmbeddingLookupStage), which
        # makes every step read all N rows of a variable: 1M-row tables trained 3–4× slower than 10k-row ones.
        # UniqueWithCounts is not matched by that rewrite; the counts are unused.
        distinct, position, _ = tf.unique_with_counts(tf.gather_nd(ids, positions))
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Replicas sum sparse gradients with collectives that need one shape on every replica: pad the
            # distinct ids to the fixed B · L with the padding id (those rows get zero gradient).
            distinct = tf.pad(distinct, [[0, tf.size(ids) - tf.size(distinct)]])
        return tf.sparse.segment_mean(self.embedding(distinct), position, tf.cast(positions[:, 0], tf.int32),
                                      num_segments=tf.shape(ids)[0])

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


class ProjectedField(tf.keras.layers.Layer):
    """A feature embedded at its own width W (the schema's per-feature ``embedding_dim``), then projected
    linearly (no bias) to the tower's field width D, so every field stays D wide. Input: codes [B] (or
    [B, L] for a ``PooledSequenceEmbedding``); output [B, D]. The W-wide table is the feature's embedding;
    the projection is what a factorized embedding (a [V, W] table times a [W, D] matrix) adds."""

    def __init__(self, embedding: tf.keras.layers.Layer, dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.embedding = embedding
        self.projection = tf.keras.layers.Dense(dim, use_bias=False, name="projection")
        self.dim = dim

    def call(self, codes: tf.Tensor) -> tf.Tensor:
        return self.projection(self.embedding(tf.cast(codes, tf.int32)))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "embedding": tf.keras.layers.serialize(self.embedding), "dim": self.dim}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ProjectedField":
        config = dict(config)
        embedding = tf.keras.layers.deserialize(config.pop("embedding"),
                                                custom_objects={"PooledSequenceEmbedding": PooledSequenceEmbedding})
        return cls(embedding, **config)


class FieldEmbedding(tf.keras.layers.Layer):
    """All features of one tower side, each embedded to a ``dim``-wide field vector.

    ``call(features)`` takes ``{name: encoded array}`` (extra keys are ignored: the other side's
    features may be in the same dict) and returns ``[B, F, D]``, fields in spec order:

    * categorical features and bucketized numerics share one fused table (``categorical_table``), each
      feature owning its own block of rows: one lookup per batch instead of one per feature, and one
      sparse update for the optimizer (the model is the same as with a table per feature);
    * plain numerics by ``NumericEmbedding``;
    * sequences by ``PooledSequenceEmbedding`` (the mean over their non-padding ids);
    * a categorical or sequence feature whose spec sets its own ``embedding_dim`` W other than D by its own
      W-wide table (``{name}_table``, or the pooled sequence embedding at width W) and a linear projection
      to D (``ProjectedField``): the feature's embedding has the declared width, and the fields still stack.

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
        self.field_layers = {}
        self.categorical_names, offsets, rows = [], [], 0
        for name in self.feature_names:
            feature = feature_spec.get(name)
            width = getattr(feature, "embedding_dim", None) or dim
            if isinstance(feature, SequenceFeature):
                pooled = PooledSequenceEmbedding(feature.vocab_size, width, name=f"{name}_embedding")
                self.field_layers[name] = pooled if width == dim else ProjectedField(pooled, dim, name=f"{name}_field")
            elif isinstance(feature, NumericFeature) and not feature.bucketized:
                self.field_layers[name] = NumericEmbedding(dim, name=f"{name}_embedding")
            elif width != dim:
                table = tf.keras.layers.Embedding(feature.vocab_size, width, name=f"{name}_table")
                self.field_layers[name] = ProjectedField(table, dim, name=f"{name}_field")
            else:
                self.categorical_names.append(name)
                offsets.append(rows)
                rows += feature.vocab_size
        self.categorical_offsets = tuple(offsets)
        self.categorical_table = (tf.keras.layers.Embedding(rows, dim, name="categorical_table")
                                  if self.categorical_names else None)
        # Where each spec-ordered field sits in [categorical fields..., other fields...].
        others = [n for n in self.feature_names if n not in self.categorical_names]
        self._field_order = [(self.categorical_names + others).index(n) for n in self.feature_names]

    @property
    def num_fields(self) -> int:
        return len(self.feature_names)

    def feature_width(self, name: str) -> int:
        """The width of feature ``name``'s own embedding (before any projection to ``dim``)."""
        layer = self.field_layers.get(name)
        embedding = layer.embedding if isinstance(layer, ProjectedField) else layer
        return getattr(embedding, "output_dim", None) or getattr(embedding, "dim", None) or self.dim

    def categorical_rows(self, name: str, codes: tf.Tensor) -> tf.Tensor:
        """Rows of the fused table holding feature ``name``'s ``codes`` (any shape)."""
        offset = self.categorical_offsets[self.categorical_names.index(name)]
        return tf.cast(codes, tf.int32) + offset

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        missing = [n for n in self.feature_names if n not in features]
        if missing:
            raise ValueError(f"{self.side} tower input lacks feature(s) {missing}; got {sorted(features)}")
        parts = []
        if self.categorical_table is not None:
            rows = tf.stack([self.categorical_rows(n, features[n]) for n in self.categorical_names], axis=1)
            parts.append(self.categorical_table(rows))  # [B, F_categorical, D]
        others = [self.field_layers[n](features[n]) for n in self.feature_names if n in self.field_layers]
        if others:
            parts.append(tf.stack(others, axis=1))
        fields = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        if self._field_order != list(range(self.num_fields)):
            fields = tf.gather(fields, self._field_order, axis=1)
        return fields

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "feature_spec": self.feature_spec.to_dict(), "side": self.side,
                "dim": self.dim, "feature_names": list(self.feature_names)}
