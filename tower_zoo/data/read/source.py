"""Example sources: what the Trainer reads, from arrays in memory or streamed from prepared shards.

A source yields, per epoch, batches ``{feature: [B, ...], reserved key: [B, ...]}`` (see
``tower_zoo.data.schema.keys``) in an order fixed by ``(seed, epoch)``: the same seed and epoch give the same
batches in any process, which is what makes a resumed run replay exactly the batches an uninterrupted
run would have seen. ``epoch`` is a tensor (usually a ``tf.Variable`` the Trainer advances at each epoch
end), read when an epoch's iterator is created, so one ``tf.data.Dataset`` serves every epoch of a
Keras ``fit``.

Positive down-sampling is decided by the source from a per-item-code keep probability: a row with
item code c is kept when ``u < keep_probability[c]``, u a stateless uniform draw seeded by (seed,
epoch), so it too is replayed exactly on resume. A dropped row stays in its batch with
``batch[KEEP] = 0`` (tasks give it no weight and do not use it as a candidate): every epoch then has
the same number of batches, which Keras ``fit`` requires of a dataset it iterates once per epoch.

Two implementations:

* ``ArrayExampleSource``: row-aligned NumPy arrays (small data, tests, notebooks).
* ``tower_zoo.data.read.prepared.ShardExampleSource``: Parquet shards written by ``tower-zoo prepare``,
  streamed with bounded memory.
"""

from __future__ import annotations

import abc
from typing import Mapping

import numpy as np
import tensorflow as tf

from tower_zoo.data.read.pipeline import num_rows
from tower_zoo.data.schema.keys import KEEP, is_reserved
from tower_zoo.data.schema.spec import FeatureSpec

# Offsets mixed into the stateless seeds so shuffling and down-sampling draw independent numbers.
SHUFFLE_STREAM = 0
DOWNSAMPLE_STREAM = 1


def epoch_seed(seed: int | tf.Tensor, epoch: tf.Tensor, stream: int) -> tf.Tensor:
    """int64 [2] stateless seed for ``stream`` (shuffle, down-sample, ...) of ``epoch``."""
    seed = tf.cast(seed, tf.int64)
    return tf.stack([seed * 1_000_003 + stream, tf.cast(epoch, tf.int64)])


def read_epoch(epoch: tf.Tensor | tf.Variable | int) -> tf.data.Dataset:
    """A one-element dataset holding the epoch's value *when iterated* (a variable is read then)."""
    if isinstance(epoch, tf.Variable):
        return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
            lambda _: tf.cast(epoch.read_value(), tf.int64))
    return tf.data.Dataset.from_tensors(tf.cast(epoch, tf.int64))


class ExampleSource(abc.ABC):
    """Training examples for one FeatureSpec; see the module docstring."""

    feature_spec: FeatureSpec

    @property
    @abc.abstractmethod
    def num_rows(self) -> int:
        """Examples per epoch before down-sampling."""

    @property
    @abc.abstractmethod
    def keys(self) -> tuple[str, ...]:
        """Every entry of a batch: feature names and reserved keys (``KEEP`` only with down-sampling)."""

    @abc.abstractmethod
    def item_counts(self) -> np.ndarray:
        """int64 [item vocab size]: training examples per item code (before down-sampling)."""

    @abc.abstractmethod
    def dataset(self, batch_size: int, seed: int, epoch: tf.Tensor | tf.Variable | int,
                keep_probability: np.ndarray | None = None, shuffle: bool = True,
                drop_remainder: bool = False) -> tf.data.Dataset:
        """Batches of one epoch (see the module docstring); ``keep_probability`` float32 [item vocab]."""


class ArrayExampleSource(ExampleSource):
    """Row-aligned arrays ``{key: [R, ...]}`` held in memory (feature names and reserved keys).

    Each epoch draws a permutation of the rows from (seed, epoch), marks down-sampled rows, and
    gathers batches of rows from the arrays: vectorized, no per-row work in the pipeline.

    With ``group_size`` n, rows come in lists of n consecutive rows (a request's candidates): the epoch
    permutes whole lists and a batch holds batch_size / n complete lists, in order (list-wise losses).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], feature_spec: FeatureSpec, group_size: int = 1):
        self._size = num_rows(arrays)
        if group_size < 1 or self._size % group_size:
            raise ValueError(f"group_size must be >= 1 and divide the {self._size} rows, got {group_size}")
        self.group_size = int(group_size)
        missing = sorted(set(feature_spec.names) - set(arrays))
        if missing:
            raise ValueError(f"training examples lack feature(s) {missing}; got {sorted(arrays)}")
        unknown = sorted(k for k in arrays if k not in feature_spec.names and not is_reserved(k))
        if unknown:
            raise ValueError(f"training examples have unknown column(s) {unknown}; features are "
                             f"{feature_spec.names}")
        self.feature_spec = feature_spec
        self._arrays = {k: np.asarray(v) for k, v in arrays.items()}
        # Host-side, before any graph runs: a code outside its table, a float / string / NaN code or a
        # history of the wrong width is one ValueError naming the feature, the value and its row.
        feature_spec.check_encoded(self._arrays, where="training examples", names=feature_spec.names)

    @property
    def num_rows(self) -> int:
        return self._size

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._arrays)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)

    def item_counts(self) -> np.ndarray:
        codes = self._arrays[self.feature_spec.item_id_feature].astype(np.int64)
        return np.bincount(codes, minlength=self.feature_spec.item_id.vocab_size)

    def dataset(self, batch_size, seed, epoch, keep_probability=None, shuffle=True, drop_remainder=False):
        if batch_size < 1 or batch_size % self.group_size:
            raise ValueError(f"batch_size must be a positive multiple of the group size {self.group_size}, "
                             f"got {batch_size}")
        size, group = self._size, self.group_size
        tensors = {k: tf.constant(v) for k, v in self._arrays.items()}
        item_codes = tensors[self.feature_spec.item_id_feature]
        keep = None if keep_probability is None else tf.constant(np.asarray(keep_probability, np.float32))

        def epoch_rows(epoch_value):
            lists = tf.range(size // group, dtype=tf.int64)
            if shuffle:
                lists = tf.random.experimental.stateless_shuffle(lists, epoch_seed(seed, epoch_value, SHUFFLE_STREAM))
            rows = tf.reshape(lists[:, tf.newaxis] * group + tf.range(group, dtype=tf.int64), [-1])
            columns = {"rows": rows}
            if keep is not None:
                draws = tf.random.stateless_uniform([size], epoch_seed(seed, epoch_value, DOWNSAMPLE_STREAM))
                columns[KEEP] = tf.cast(draws < tf.gather(keep, tf.gather(item_codes, rows)), tf.float32)
            return tf.data.Dataset.from_tensor_slices(columns).batch(batch_size, drop_remainder=drop_remainder)

        def gather(columns):
            batch = {k: tf.gather(v, columns["rows"]) for k, v in tensors.items()}
            if KEEP in columns:
                batch[KEEP] = columns[KEEP]
            return batch

        return (read_epoch(epoch).flat_map(epoch_rows)
                .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))
