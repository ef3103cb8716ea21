"""Raw feature values in, the model's encoded inputs out, inside a TensorFlow graph (no Keras, no tower_zoo
needed to run it): the serving twin of ``FeatureSpec.encode``.

A client sends what it holds, one tensor per feature of a side (batch of B rows):

* categorical and sequence features: the raw values, int64 when the vocabulary is integer ids, else string;
  a categorical is ``[B]``, a sequence a right-padded ``[B, T]`` matrix (any T >= 1) whose padding slots hold
  the padding sentinel (``padding_id``, -1 by default, for int64 ids; ``""`` for strings);
* numeric features: float64 ``[B]`` (float64 so that a value on a bucket boundary is bucketized as the
  training data was).

``RawFeatureEncoder`` turns them into exactly what ``FeatureSpec.encode`` makes: vocabulary position + 2 (1 =
out of vocabulary, or one of the ``hash_buckets`` rows, ``tf.strings.to_hash_bucket_fast`` of the decimal
string), ``searchsorted(boundaries, x, side="right") + 2`` or ``(x - mean) / std``, and for sequences the last
``max_length`` values, left-aligned and right-padded with 0. Vocabularies become ``tf.lookup.StaticHashTable``
s initialized from text files that the SavedModel carries as assets (a million ids cost a file, not a
constant in the graph).

Bad requests fail inside the graph with an error naming the feature: a wrong rank or width (``EnsureShape``:
"Shape of tensor age [2,3] is not compatible with expected shape [?]"), an empty batch, features with different
row counts, a non-finite number (with the value), a value after a padding slot.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.spec import (NUM_RESERVED, OOV_INDEX, PAD_INDEX, FeatureSpec, NumericFeature,
                                        SequenceFeature)

STRING_PADDING = ""


def vocabulary_dtype(feature) -> tf.DType:
    """tf.int64 for a vocabulary of integer ids, tf.string for one of strings; ValueError for anything else."""
    vocabulary = feature.vocabulary
    if vocabulary and all(type(v) is int for v in vocabulary):
        return tf.int64
    if all(isinstance(v, str) for v in vocabulary):
        return tf.string
    kinds = sorted({type(v).__name__ for v in vocabulary})
    raise ValueError(f"feature {feature.name!r}: a served vocabulary must be all integer ids or all strings, "
                     f"this one holds {', '.join(kinds)}")


def raw_dtype(feature) -> tf.DType:
    """The dtype a client sends for ``feature``."""
    if isinstance(feature, NumericFeature):
        return tf.float64
    return vocabulary_dtype(feature)


def raw_signature(features: Sequence) -> dict[str, tf.TensorSpec]:
    """{name: TensorSpec} of the raw inputs of ``features``: [None] per value, [None, None] for sequences."""
    return {f.name: tf.TensorSpec([None, None] if isinstance(f, SequenceFeature) else [None], raw_dtype(f),
                                  name=f.name) for f in features}


def padding_value(feature, padding_id: int):
    """The sentinel that marks an empty slot of ``feature``'s raw sequence matrix."""
    return padding_id if vocabulary_dtype(feature) == tf.int64 else STRING_PADDING


def check_padding(features: Sequence, padding_id: int) -> None:
    """ValueError when a sequence feature's vocabulary holds its padding sentinel (it could not be sent)."""
    for feature in features:
        if isinstance(feature, SequenceFeature):
            sentinel = padding_value(feature, padding_id)
            if sentinel in set(feature.vocabulary):
                raise ValueError(f"feature {feature.name!r}: its vocabulary holds the padding sentinel {sentinel!r}; "
                                 "export with another padding_id")


def _file_safe(vocabulary: tuple) -> bool:
    """Whether one value per line of a text file round-trips every value (no empty or multi-line strings)."""
    return all(not isinstance(v, str) or (v and "\n" not in v and "\r" not in v) for v in vocabulary)


class VocabularyLookup(tf.Module):
    """Raw values (any shape) -> int32 codes: vocabulary position + 2; otherwise the OOV index 1, or with
    ``hash_buckets`` H, ``2 + len(vocabulary) + hash(str(value)) % H``."""

    def __init__(self, feature, asset_dir: str):
        super().__init__(name=f"lookup_{feature.name}")
        self.key_dtype = vocabulary_dtype(feature)
        self.size, self.hash_buckets = len(feature.vocabulary), feature.hash_buckets
        self.table = None
        if not self.size:
            return
        if _file_safe(feature.vocabulary):
            path = os.path.join(asset_dir, f"vocabulary_{feature.name}.txt")
            with open(path, "w", encoding="utf-8") as handle:
                handle.writelines(f"{value}\n" for value in feature.vocabulary)
            initializer = tf.lookup.TextFileInitializer(
                path, self.key_dtype, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
                tf.lookup.TextFileIndex.LINE_NUMBER, vocab_size=self.size, delimiter="\0")
        else:  # rare: values a text file cannot hold; a constant in the graph
            keys = np.asarray(feature.vocabulary, dtype=object if self.key_dtype == tf.string else np.int64)
            initializer = tf.lookup.KeyValueTensorInitializer(keys, np.arange(self.size, dtype=np.int64),
                                                              self.key_dtype, tf.int64)
        self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)

    def __call__(self, values: tf.Tensor) -> tf.Tensor:
        positions = (self.table.lookup(values) if self.table is not None
                     else tf.fill(tf.shape(values), tf.constant(-1, tf.int64)))
        if self.hash_buckets:
            text = tf.strings.as_string(values) if self.key_dtype == tf.int64 else values
            unknown = NUM_RESERVED + self.size + tf.strings.to_hash_bucket_fast(text, self.hash_buckets)
        else:
            unknown = tf.fill(tf.shape(values), tf.constant(OOV_INDEX, tf.int64))
        return tf.cast(tf.where(positions >= 0, positions + NUM_RESERVED, unknown), tf.int32)


def last_values(values: tf.Tensor, valid: tf.Tensor, max_length: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The last ``max_length`` valid entries of each row, left-aligned.

    values [B, T] with valid [B, T] a prefix of each row -> (values [B, max_length], valid [B, max_length]).
    """
    lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=1)
    padded = tf.pad(values, [[0, 0], [0, max_length]])
    start = tf.maximum(lengths - max_length, 0)
    positions = start[:, tf.newaxis] + tf.range(max_length)[tf.newaxis]
    kept = tf.range(max_length)[tf.newaxis] < tf.minimum(lengths, max_length)[:, tf.newaxis]
    return tf.gather(padded, positions, batch_dims=1), kept


def ordered_keys(values: tf.Tensor) -> tf.Tensor:
    """float64 -> int64 keys in the same order (-0.0 and 0.0 equal), for exact comparisons: TensorFlow on CPU
    flushes subnormal floats to zero, so comparing the floats themselves misplaces a value such as -5e-324
    that numpy keeps below 0.0."""
    bits = tf.bitcast(values, tf.int64)
    magnitude = tf.bitwise.bitwise_and(bits, tf.constant(np.iinfo(np.int64).max, tf.int64))
    return tf.where(bits < 0, -magnitude, magnitude)


def _numpy_ordered_keys(values: np.ndarray) -> np.ndarray:
    bits = np.asarray(values, np.float64).view(np.int64)
    magnitude = bits & np.iinfo(np.int64).max
    return np.where(bits < 0, -magnitude, magnitude)


def graph_assert(condition: tf.Tensor, message: str, *data: tf.Tensor) -> None:
    """A serving-graph check: InvalidArgumentError with ``message`` and the first values of ``data``."""
    tf.debugging.Assert(condition, [message, *data], summarize=5)


class RawFeatureEncoder(tf.Module):
    """``encode(raw) -> encoded`` for the features ``names`` of ``spec`` (see the module docstring).

    ``asset_dir`` receives the vocabulary files (the SavedModel copies them into its assets); ``padding_id`` is
    the int64 sentinel of empty sequence slots.
    """

    def __init__(self, spec: FeatureSpec, names: Sequence[str], asset_dir: str, padding_id: int = -1):
        super().__init__(name="raw_features")
        self.features = tuple(spec.get(name) for name in names)
        check_padding(self.features, padding_id)
        self.padding_id = padding_id
        self.lookups = {f.name: VocabularyLookup(f, asset_dir) for f in self.features
                        if not isinstance(f, NumericFeature)}

    @property
    def signature(self) -> dict[str, tf.TensorSpec]:
        return raw_signature(self.features)

    def check_request(self, raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The inputs through their rank checks (EnsureShape: use the returned tensors, or the check is pruned),
        after asserting a non-empty batch and equal row counts."""
        checked = {f.name: tf.ensure_shape(raw[f.name], [None] * (2 if isinstance(f, SequenceFeature) else 1),
                                           name=f.name) for f in self.features}
        rows = {name: tf.shape(values)[0] for name, values in checked.items()}
        first = self.features[0].name
        graph_assert(rows[first] > 0, f"empty batch: feature {first!r} has 0 rows")
        for name, count in rows.items():
            graph_assert(tf.equal(count, rows[first]), f"feature {name!r} has a different number of rows than "
                    f"{first!r}:", count, rows[first])
        return checked

    def encode(self, raw: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """{name: raw tensor} -> {name: encoded tensor}, as ``FeatureSpec.encode`` would make them."""
        checked = self.check_request(raw)
        return {f.name: self._encode_feature(f, checked[f.name]) for f in self.features}

    def _encode_feature(self, feature, values: tf.Tensor) -> tf.Tensor:
        if isinstance(feature, NumericFeature):
            finite = tf.math.is_finite(values)
            graph_assert(tf.reduce_all(finite), f"feature {feature.name!r}: non-finite value",
                    tf.boolean_mask(values, tf.logical_not(finite)))
            if feature.bucketized:
                boundaries = tf.constant(_numpy_ordered_keys(np.asarray(feature.boundaries)), tf.int64)
                return (tf.searchsorted(boundaries, ordered_keys(values), side="right", out_type=tf.int32)
                        + NUM_RESERVED)
            return tf.cast((values - feature.mean) / feature.std, tf.float32)
        if isinstance(feature, SequenceFeature):
            valid = tf.not_equal(values, padding_value(feature, self.padding_id))
            gap_then_value = tf.logical_and(tf.logical_not(valid[:, :-1]), valid[:, 1:])
            graph_assert(tf.logical_not(tf.reduce_any(gap_then_value)), f"feature {feature.name!r}: a value follows a "
                    f"padding slot; sequences are right-padded with {padding_value(feature, self.padding_id)!r}, "
                    "rows (first few):", tf.where(tf.reduce_any(gap_then_value, axis=1))[:, 0])
            kept, kept_valid = last_values(values, valid, feature.max_length)
            return tf.where(kept_valid, self.lookups[feature.name](kept), PAD_INDEX)
        return self.lookups[feature.name](values)
