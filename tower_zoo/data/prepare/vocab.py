"""Vocabularies built from streamed values: counting, selection, and a reusable encoder.

A vocabulary holds the values seen at least ``min_count`` times, most frequent first (ties by value),
cut to ``max_size``; in the encoded space value ``vocabulary[i]`` is ``i + NUM_RESERVED`` (see
``tower_zoo.data.schema.spec``). Counting keeps one (value, count) pair per distinct value plus a bounded
buffer of per-batch counts, so its memory grows with the number of distinct values, never with the
number of rows counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tower_zoo.data.schema.dataset_schema import VocabOptions
from tower_zoo.data.schema.spec import NUM_RESERVED, OOV_INDEX, hash_bucket

COMPACT_ROWS = 1 << 16  # buffered (value, count) pairs that trigger a merge (at least 2x the merged rows)


class ValueCounter:
    """Counts values streamed in batches: ``add`` per batch, ``counts()`` at the end."""

    def __init__(self, compact_rows: int = COMPACT_ROWS):
        self._compact_rows = compact_rows
        self._parts: list[pa.Table] = []
        self._buffered = 0
        self._merged_rows = 0

    def add(self, values: pa.Array | pa.ChunkedArray, counts: np.ndarray | None = None) -> None:
        """Counts ``values`` (each occurrence once, or ``counts[i]`` times for ``values[i]``)."""
        if counts is None:
            pairs = pc.value_counts(values)
            part = pa.table({"values": pairs.field("values"), "counts": pairs.field("counts").cast(pa.int64())})
        else:
            part = pa.table({"values": values, "counts": pa.array(np.asarray(counts, np.int64))})
        self._parts.append(part)
        self._buffered += part.num_rows
        if self._buffered > max(self._compact_rows, 2 * self._merged_rows):
            self._compact()

    def _compact(self) -> None:
        if len(self._parts) > 1:
            merged = pa.concat_tables(self._parts).group_by("values").aggregate([("counts", "sum")])
            self._parts = [merged.rename_columns(["values", "counts"])]
        self._merged_rows = self._buffered = self._parts[0].num_rows if self._parts else 0

    def counts(self) -> pa.Table:
        """Table (values, counts int64): one row per distinct value, in no particular order."""
        self._compact()
        if not self._parts:
            return pa.table({"values": pa.array([], pa.int64()), "counts": pa.array([], pa.int64())})
        return self._parts[0]


def select_vocabulary(counts: pa.Table, options: VocabOptions) -> pa.Array:
    """The vocabulary from (values, counts): count >= min_count, most frequent first (ties by value),
    at most ``max_size`` values."""
    kept = counts.filter(pc.greater_equal(counts["counts"], options.min_count)) if options.min_count else counts
    order = pc.sort_indices(kept, sort_keys=[("counts", "descending"), ("values", "ascending")])
    if options.max_size is not None:
        order = order[:options.max_size]
    return kept["values"].take(order).combine_chunks()


def as_python_vocabulary(values: pa.Array) -> tuple:
    """A FeatureSpec vocabulary (Python ints / strs / floats) from Arrow values."""
    return tuple(values.to_pylist())


class VocabularyEncoder:
    """Maps raw values to codes of one vocabulary, with an O(1) hash lookup built once.

    ``encode`` returns int32 [N] codes: ``i + NUM_RESERVED`` for ``vocabulary[i]``, else the hashed
    row (``hash_buckets`` > 0) or ``OOV_INDEX``; ``in_vocabulary`` tells which values were found.
    """

    def __init__(self, vocabulary: pa.Array, hash_buckets: int = 0):
        self.values = vocabulary
        self._index = pd.Index(vocabulary.to_numpy(zero_copy_only=False))
        self.size = len(self._index)
        self.hash_buckets = hash_buckets

    def positions(self, values: pa.Array | np.ndarray) -> np.ndarray:
        """int64 [N]: index of each value in the vocabulary, -1 if absent."""
        raw = values.to_numpy(zero_copy_only=False) if isinstance(values, (pa.Array, pa.ChunkedArray)) else values
        if len(raw) == 0 or self.size == 0:
            return np.full(len(raw), -1, np.int64)
        return self._index.get_indexer(raw)

    def encode(self, values: pa.Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes int32 [N], in_vocabulary bool [N])."""
        raw = values.to_numpy(zero_copy_only=False) if isinstance(values, (pa.Array, pa.ChunkedArray)) else values
        positions = self.positions(raw)
        found = positions >= 0
        codes = np.where(found, positions + NUM_RESERVED, OOV_INDEX).astype(np.int32)
        if self.hash_buckets and not found.all():
            codes[~found] = (NUM_RESERVED + self.size + hash_bucket(raw[~found], self.hash_buckets)).astype(np.int32)
        return codes, found
