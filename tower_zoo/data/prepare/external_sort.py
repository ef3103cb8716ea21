"""Out-of-core grouping and sorting: hash-partition rows into bucket files, sort each bucket in memory.

``BucketPartitioner`` spreads record batches over ``num_buckets`` Arrow IPC files by a hash of a key
column (every row of one key lands in the same bucket), buffering at most ``flush_rows`` rows per
bucket. ``sorted_buckets`` then yields each bucket as one table sorted by the sort keys; a bucket
holding more than ``max_rows`` rows is first re-partitioned with another hash salt, so memory stays
bounded by ``max_rows`` unless a single key has more rows than that (such a bucket is sorted whole).
Bucket files are deleted as soon as they are read.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tower_zoo.data.prepare.split_assign import mix64

MAX_SPLIT_DEPTH = 4


def key_hash(keys: pa.Array, salt: int) -> np.ndarray:
    """uint64 [N]: a hash of each key (integers through splitmix64, strings through pandas' hash)."""
    if pa.types.is_integer(keys.type):
        raw = keys.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
    else:
        raw = pd.util.hash_array(keys.to_numpy(zero_copy_only=False))
    with np.errstate(over="ignore"):
        return mix64(raw ^ np.uint64((salt * 0x632BE59BD9B4E019) % (1 << 64)))


@dataclasses.dataclass(frozen=True)
class BucketFile:
    path: str
    rows: int
    depth: int = 0


class BucketPartitioner:
    """Writes rows into bucket files by ``key_hash(batch[key], salt) % num_buckets``."""

    def __init__(self, directory: str, schema: pa.Schema, key: str, num_buckets: int, flush_rows: int,
                 salt: int = 0, name: str = "bucket"):
        os.makedirs(directory, exist_ok=True)
        self._schema, self._key, self._salt = schema, key, salt
        self._num_buckets, self._flush_rows = num_buckets, max(1, flush_rows)
        self._paths = [os.path.join(directory, f"{name}-{salt}-{b:05d}.arrow") for b in range(num_buckets)]
        self._writers: list[pa.ipc.RecordBatchFileWriter | None] = [None] * num_buckets
        self._pending: list[list[pa.RecordBatch]] = [[] for _ in range(num_buckets)]
        self._pending_rows = np.zeros(num_buckets, np.int64)
        self._rows = np.zeros(num_buckets, np.int64)

    def add(self, batch: pa.RecordBatch) -> None:
        """Routes every row of ``batch`` (which has this partitioner's schema) to its bucket."""
        buckets = (key_hash(batch.column(self._key), self._salt) % np.uint64(self._num_buckets)).astype(np.int64)
        order = np.argsort(buckets, kind="stable")
        bounds = np.searchsorted(buckets[order], np.arange(self._num_buckets + 1))
        ordered = batch.take(pa.array(order))
        for bucket in np.flatnonzero(np.diff(bounds)):
            piece = ordered.slice(bounds[bucket], bounds[bucket + 1] - bounds[bucket])
            self._pending[bucket].append(piece)
            self._pending_rows[bucket] += piece.num_rows
            if self._pending_rows[bucket] >= self._flush_rows:
                self._flush(bucket)

    def _flush(self, bucket: int) -> None:
        if not self._pending[bucket]:
            return
        if self._writers[bucket] is None:
            self._writers[bucket] = pa.ipc.new_file(self._paths[bucket], self._schema)
        table = pa.Table.from_batches(self._pending[bucket], self._schema).combine_chunks()
        self._writers[bucket].write_table(table)
        self._rows[bucket] += table.num_rows
        self._pending[bucket], self._pending_rows[bucket] = [], 0

    def close(self, depth: int = 0) -> list[BucketFile]:
        """Flushes and closes every bucket; the non-empty buckets."""
        for bucket in range(self._num_buckets):
            self._flush(bucket)
            if self._writers[bucket] is not None:
                self._writers[bucket].close()
        return [BucketFile(path, int(rows), depth) for path, rows in zip(self._paths, self._rows) if rows]


def read_bucket(bucket: BucketFile) -> pa.Table:
    """A bucket file's rows (memory-mapped read, then the file is deleted)."""
    with pa.memory_map(bucket.path) as source:
        table = pa.ipc.open_file(source).read_all()
    table = table.combine_chunks()
    os.remove(bucket.path)
    return table


def _split_bucket(bucket: BucketFile, directory: str, key: str, max_rows: int) -> list[BucketFile]:
    """Re-partitions an oversized bucket with the next hash salt, batch by batch."""
    parts = -(-bucket.rows // max_rows) * 2
    with pa.memory_map(bucket.path) as source:
        reader = pa.ipc.open_file(source)
        partitioner = BucketPartitioner(directory, reader.schema, key, parts, max_rows // parts + 1,
                                        salt=bucket.depth + 1, name=os.path.basename(bucket.path)[:-6])
        for index in range(reader.num_record_batches):
            partitioner.add(reader.get_batch(index))
    os.remove(bucket.path)
    return partitioner.close(bucket.depth + 1)


def sorted_buckets(buckets: Sequence[BucketFile], directory: str, key: str, sort_keys: Sequence[str],
                   max_rows: int) -> Iterator[pa.Table]:
    """Each bucket's rows sorted ascending by ``sort_keys``; oversized buckets are split first."""
    pending = list(buckets)
    while pending:
        bucket = pending.pop(0)
        if bucket.rows > max_rows and bucket.depth < MAX_SPLIT_DEPTH:
            pieces = _split_bucket(bucket, directory, key, max_rows)
            if max(piece.rows for piece in pieces) < bucket.rows:  # else one key holds every row: sort whole
                pending[:0] = pieces
                continue
            pending[:0], bucket = pieces[1:], pieces[0]
        table = read_bucket(bucket)
        yield table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in sort_keys]))
