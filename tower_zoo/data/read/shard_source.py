"""ShardExampleSource: training examples streamed from the Parquet shards ``tower-zoo prepare`` writes.

One epoch, a deterministic function of (seed, epoch):

1. the shards are put in an order drawn from (seed, epoch);
2. ``cycle_length`` shards are read at a time, interleaved one record batch (``read_rows`` rows)
   each in turn; an exhausted shard is replaced by the next in order;
3. down-sampling (optional) marks a row with item code c kept (``batch[KEEP] = 1``) when
   u < keep_probability[c], u a stateless uniform of (seed, epoch, the row's number in the part),
   so it does not depend on the order the rows are read in; dropped rows stay, marked 0, so every
   epoch has the same number of batches (see ``tower_zoo.data.read.source``);
4. a shuffle buffer: rows accumulate until ``shuffle_rows`` are buffered, are permuted with a
   generator seeded by (seed, epoch), and all but half of them are released in that order (the
   other half waits to be mixed with the next rows); at the end everything left is released;
5. released rows are cut into batches (the last one partial unless ``drop_remainder``).

Steps 1-5 run in one NumPy generator behind ``tf.data.Dataset.from_generator``, which yields
whole batches; memory is ``cycle_length`` record batches plus the shuffle buffer, whatever the
size of the part. Every row is read exactly once per epoch.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from tower_zoo.data.prepare.split_assign import uniform_from_rows
from tower_zoo.data.read.source import DOWNSAMPLE_STREAM, SHUFFLE_STREAM, ExampleSource, read_epoch
from tower_zoo.data.schema.keys import KEEP
from tower_zoo.data.schema.spec import FeatureSpec
from tower_zoo.data.store.shards import table_to_arrays

DEFAULT_SHUFFLE_ROWS = 65_536
DEFAULT_READ_ROWS = 8_192
DEFAULT_CYCLE_LENGTH = 4


def _concatenate(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(chunks) == 1:
        return chunks[0]
    return {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}


def _take(arrays: dict[str, np.ndarray], rows: np.ndarray | slice) -> dict[str, np.ndarray]:
    return {key: values[rows] for key, values in arrays.items()}


class ShardExampleSource(ExampleSource):
    """Examples of one part of a prepared directory; see the module docstring.

    Args:
      files: the part's shard paths, in the manifest's order (which numbers the rows).
      rows_per_file: rows of each file.
      item_counts: int64 [item vocab size] rows per item code of this part.
    """

    def __init__(self, files: Sequence[str], rows_per_file: Sequence[int], feature_spec: FeatureSpec,
                 item_counts: np.ndarray, shuffle_rows: int = DEFAULT_SHUFFLE_ROWS,
                 read_rows: int = DEFAULT_READ_ROWS, cycle_length: int = DEFAULT_CYCLE_LENGTH):
        if not files:
            raise ValueError("a ShardExampleSource needs at least one shard")
        self.feature_spec = feature_spec
        self._files = list(files)
        self._first_rows = np.concatenate([[0], np.cumsum(rows_per_file)]).astype(np.int64)
        self._item_counts = np.asarray(item_counts, np.int64)
        self._shuffle_rows, self._read_rows, self._cycle_length = shuffle_rows, read_rows, cycle_length
        schema = pq.read_schema(self._files[0])
        missing = [name for name in feature_spec.names if name not in schema.names]
        if missing:
            raise ValueError(f"{self._files[0]}: lacks feature column(s) {missing}")
        self._keys = tuple(feature_spec.names) + tuple(n for n in schema.names if n.startswith("__")
                                                       and n not in ("__id__",))
        self._signature = {}
        first = next(pq.ParquetFile(self._files[0]).iter_batches(batch_size=1, columns=list(self._keys)))
        for key, values in table_to_arrays(first, list(self._keys)).items():
            self._signature[key] = tf.TensorSpec([None, *values.shape[1:]], tf.as_dtype(values.dtype))

    @property
    def num_rows(self) -> int:
        return int(self._first_rows[-1])

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    def item_counts(self) -> np.ndarray:
        return self._item_counts.copy()

    # ------------------------------------------------------------------------- reading
    def _file_chunks(self, index: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """(row numbers in the part, arrays) per record batch of file ``index``."""
        first = self._first_rows[index]
        for batch in pq.ParquetFile(self._files[index]).iter_batches(batch_size=self._read_rows,
                                                                     columns=list(self._keys)):
            yield np.arange(first, first + batch.num_rows), table_to_arrays(batch, list(self._keys))
            first += batch.num_rows

    def _interleaved(self, order: np.ndarray) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        waiting = list(order)
        active = [self._file_chunks(waiting.pop(0)) for _ in range(min(self._cycle_length, len(waiting)))]
        while active:
            for reader in list(active):
                chunk = next(reader, None)
                if chunk is None:
                    position = active.index(reader)
                    active[position:position + 1] = [self._file_chunks(waiting.pop(0))] if waiting else []
                    continue
                yield chunk

    def epoch_batches(self, epoch: int, batch_size: int, seed: int, keep_probability: np.ndarray | None = None,
                      shuffle: bool = True, drop_remainder: bool = False) -> Iterator[dict[str, np.ndarray]]:
        """The batches of one epoch as NumPy dicts (what ``dataset`` yields as tensors)."""
        rng = np.random.default_rng([seed, epoch, SHUFFLE_STREAM])
        order = rng.permutation(len(self._files)) if shuffle else np.arange(len(self._files))
        item_key = self.feature_spec.item_id_feature
        pending: list[dict[str, np.ndarray]] = []
        pending_rows, ready = 0, None
        for rows, arrays in self._interleaved(order):
            if keep_probability is not None:
                draws = uniform_from_rows(rows, seed, stream=1_000_003 * int(epoch) + DOWNSAMPLE_STREAM)
                arrays = {**arrays, KEEP: (draws < keep_probability[arrays[item_key]]).astype(np.float32)}
            pending.append(arrays)
            pending_rows += len(arrays[item_key])
            if shuffle and pending_rows < self._shuffle_rows:
                continue
            window = _concatenate(pending)
            if shuffle:
                window = _take(window, rng.permutation(pending_rows))
            carried = self._shuffle_rows // 2 if shuffle else 0
            released = pending_rows - carried
            ready = yield from self._release(ready, _take(window, slice(0, released)), batch_size)
            pending, pending_rows = ([_take(window, slice(released, None))] if carried else []), carried
        if pending_rows:
            window = _concatenate(pending)
            if shuffle:
                window = _take(window, rng.permutation(pending_rows))
            ready = yield from self._release(ready, window, batch_size)
        if ready is not None and len(ready[item_key]) and not drop_remainder:
            yield ready

    def _release(self, ready, rows: dict[str, np.ndarray], batch_size: int):
        """Yields full batches from ``ready`` + ``rows``; returns the rows left over."""
        ready = rows if ready is None else _concatenate([ready, rows])
        size = len(next(iter(ready.values())))
        full = size - size % batch_size
        for start in range(0, full, batch_size):
            yield _take(ready, slice(start, start + batch_size))
        return _take(ready, slice(full, None))

    def dataset(self, batch_size, seed, epoch, keep_probability=None, shuffle=True, drop_remainder=False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        keep = None if keep_probability is None else np.asarray(keep_probability, np.float32)

        def generate(epoch_value):
            yield from self.epoch_batches(int(epoch_value), batch_size, seed, keep, shuffle, drop_remainder)

        batch_dim = batch_size if drop_remainder else None  # static, as ``batch(drop_remainder=True)`` gives
        signature = {key: tf.TensorSpec([batch_dim, *spec.shape[1:]], spec.dtype) for key, spec in self._signature.items()}
        if keep is not None:
            signature[KEEP] = tf.TensorSpec([batch_dim], tf.float32)

        def one_epoch(epoch_value):
            return tf.data.Dataset.from_generator(generate, args=(epoch_value,), output_signature=signature)

        return read_epoch(epoch).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)
