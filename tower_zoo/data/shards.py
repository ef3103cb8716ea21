"""Encoded example arrays as Parquet shards: the conversion both ways, and the shard writers.

An encoded column is int32 / float32 ``[N]`` (a scalar feature or a reserved key) or int32
``[N, L]`` (a sequence), stored as Arrow ``int32`` / ``float32`` / ``fixed_size_list<int32>[L]``
so that reading it back is a zero-copy reshape. ``ShardWriter`` spreads rows over ``num_shards``
files ``part-NNNNN.parquet`` of one directory, either at random (training parts: every shard mixes
all users) or in order (queries), buffering up to ``row_group_rows`` rows per shard, so its memory
is ``num_shards * row_group_rows`` rows at most.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_PATTERN = "part-{:05d}.parquet"


def array_to_arrow(values: np.ndarray) -> pa.Array:
    """[N] -> a flat Arrow array; [N, L] -> ``fixed_size_list<.>[L]``."""
    values = np.ascontiguousarray(values)
    if values.ndim == 1:
        return pa.array(values)
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    raise ValueError(f"cannot store an array of shape {values.shape}")


def arrow_to_array(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The inverse of ``array_to_arrow`` (fixed-size or variable lists of equal length -> [N, L])."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
        return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), width)
    return column.to_numpy(zero_copy_only=False)


def arrays_to_table(arrays: Mapping[str, np.ndarray], extra: Mapping[str, pa.Array] | None = None) -> pa.Table:
    """``{name: [N] or [N, L]}`` (plus ready Arrow columns ``extra``) as one Arrow table."""
    columns = {name: array_to_arrow(values) for name, values in arrays.items()}
    columns.update(extra or {})
    return pa.table(columns)


def table_to_arrays(table: pa.Table | pa.RecordBatch, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """``{name: [N] or [N, L]}`` from a table written by ``arrays_to_table``."""
    names = names if names is not None else table.schema.names
    return {name: arrow_to_array(table.column(name)) for name in names}


class ShardWriter:
    """Rows to Parquet files ``part-NNNNN.parquet`` in ``directory`` (see the module docstring).

    With a ``seed``, each row goes to one of ``num_shards`` shards at random; without, shards are
    filled in order, ``rows_per_shard`` rows each.
    """

    def __init__(self, directory: str, row_group_rows: int, seed: int | None = None, num_shards: int = 1,
                 rows_per_shard: int = 1_000_000):
        self.directory = directory
        self._num_shards = max(1, num_shards)
        self._row_group_rows = max(1, row_group_rows)
        self._rows_per_shard = max(1, rows_per_shard)
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._pending: dict[int, list[pa.Table]] = {}
        self._pending_rows: dict[int, int] = {}
        self._rows: dict[int, int] = {}
        self._current = 0  # sequential mode: the shard being filled

    def write(self, table: pa.Table) -> None:
        """Adds ``table``'s rows: to random shards (seeded mode), else to the current shard."""
        if table.num_rows == 0:
            return
        if self._rng is None:
            self._append(self._current, table)
            if self._rows.get(self._current, 0) + self._pending_rows.get(self._current, 0) >= self._rows_per_shard:
                self._flush(self._current)
                self._current += 1
            return
        shards = self._rng.integers(self._num_shards, size=table.num_rows)
        order = np.argsort(shards, kind="stable")
        bounds = np.searchsorted(shards[order], np.arange(self._num_shards + 1))
        for shard in np.flatnonzero(np.diff(bounds)):
            # a shard's rows are shuffled too, so no shard keeps the users' sorted order
            rows = self._rng.permutation(order[bounds[shard]:bounds[shard + 1]])
            self._append(int(shard), table.take(pa.array(rows)))

    def _append(self, shard: int, table: pa.Table) -> None:
        self._pending.setdefault(shard, []).append(table)
        self._pending_rows[shard] = self._pending_rows.get(shard, 0) + table.num_rows
        if self._pending_rows[shard] >= self._row_group_rows:
            self._flush(shard)

    def _flush(self, shard: int) -> None:
        pieces = self._pending.pop(shard, [])
        if not pieces:
            return
        table = pa.concat_tables(pieces).combine_chunks()
        if shard not in self._writers:
            os.makedirs(self.directory, exist_ok=True)  # only parts that get rows have a directory
            path = os.path.join(self.directory, SHARD_PATTERN.format(shard))
            self._writers[shard] = pq.ParquetWriter(path, table.schema, compression="snappy")
        self._writers[shard].write_table(table, row_group_size=self._row_group_rows)
        self._rows[shard] = self._rows.get(shard, 0) + table.num_rows
        self._pending_rows[shard] = 0

    def close(self) -> dict[str, int]:
        """Flushes and closes every shard; ``{file name: rows}`` of the shards that hold rows."""
        for shard in list(self._pending):
            self._flush(shard)
        for writer in self._writers.values():
            writer.close()
        return {SHARD_PATTERN.format(shard): self._rows[shard] for shard in sorted(self._writers)}
