"""Encoded example arrays as Parquet shards: the conversion both ways, and the shard writers.

An encoded column is int32 / float32 ``[N]`` (a scalar feature or a reserved key) or int32
``[N, L]`` (a sequence), stored as Arrow ``int32`` / ``float32`` / ``fixed_size_binary(4 L)``: each
row of a sequence is its L little-endian int32 codes, so reading it back is a zero-copy reshape of
one buffer (Parquet decodes such a column about 3x faster than a ``fixed_size_list<int32>[L]``,
whose repetition levels dominate the read time of a training shard). ``fixed_size_list`` columns
are read too.

``ShardWriter`` writes files ``part-NNNNN.parquet`` into one directory through ``slots`` open files:
each row goes to a slot at random (training parts: every shard mixes all users) or all to one slot
(queries, in order). A slot buffers up to ``row_group_rows`` rows and, once its file holds
``rows_per_shard`` rows, closes it and starts the next file. So its memory is bounded by the slots,
not by the rows written: ``slots * row_group_rows`` buffered rows, plus the footer metadata of the
open files (Parquet keeps ~1 KB per column and row group until a file is closed, which is why
files are rolled over instead of growing without end).
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_PATTERN = "part-{:05d}.parquet"


SEQUENCE_DTYPE = np.dtype("<i4")


def array_to_arrow(values: np.ndarray) -> pa.Array:
    """[N] -> a flat Arrow array; int32 [N, L] -> ``fixed_size_binary(4 L)``."""
    values = np.asarray(values)
    if values.ndim == 1:
        return pa.array(values)
    if values.ndim == 2 and values.dtype == np.int32:
        data = np.ascontiguousarray(values, dtype=SEQUENCE_DTYPE)
        width = SEQUENCE_DTYPE.itemsize * values.shape[1]
        return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(data)])
    raise ValueError(f"cannot store an array of shape {values.shape} and dtype {values.dtype}")


def arrow_to_array(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The inverse of ``array_to_arrow`` (also fixed-size lists -> [N, L])."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_fixed_size_binary(column.type):
        length = column.type.byte_width // SEQUENCE_DTYPE.itemsize
        data = np.frombuffer(column.buffers()[1], dtype=SEQUENCE_DTYPE, offset=column.offset * column.type.byte_width,
                             count=len(column) * length)
        return data.reshape(len(column), length).astype(np.int32, copy=False)
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
    """Rows to Parquet files ``part-NNNNN.parquet`` in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str, row_group_rows: int, rows_per_shard: int, slots: int = 1,
                 seed: int | None = None):
        self.directory = directory
        self._slots = max(1, slots)
        self._row_group_rows = max(1, row_group_rows)
        self._rows_per_shard = max(1, rows_per_shard)
        self._rng = None if seed is None else np.random.default_rng(seed)
        self._writers: dict[int, tuple[str, pq.ParquetWriter]] = {}
        self._pending: dict[int, list[pa.Table]] = {}
        self._pending_rows: dict[int, int] = {}
        self._file_rows: dict[int, int] = {}
        self._written: dict[str, int] = {}

    def write(self, table: pa.Table) -> None:
        """Adds ``table``'s rows, to random slots if seeded, else in order."""
        if table.num_rows == 0:
            return
        if self._rng is None or self._slots == 1:
            self._append(0, table if self._rng is None else table.take(pa.array(self._rng.permutation(table.num_rows))))
            return
        slots = self._rng.integers(self._slots, size=table.num_rows)
        order = np.argsort(slots, kind="stable")
        bounds = np.searchsorted(slots[order], np.arange(self._slots + 1))
        for slot in np.flatnonzero(np.diff(bounds)):
            # a slot's rows are shuffled too, so no file keeps the users' sorted order
            rows = self._rng.permutation(order[bounds[slot]:bounds[slot + 1]])
            self._append(int(slot), table.take(pa.array(rows)))

    def _append(self, slot: int, table: pa.Table) -> None:
        self._pending.setdefault(slot, []).append(table)
        self._pending_rows[slot] = self._pending_rows.get(slot, 0) + table.num_rows
        if self._pending_rows[slot] >= self._row_group_rows:
            self._flush(slot)

    def _flush(self, slot: int, final: bool = False) -> None:
        """Writes the slot's buffered rows as whole row groups (and the rest too if ``final``)."""
        pieces = self._pending.pop(slot, [])
        self._pending_rows[slot] = 0
        table = pa.concat_tables(pieces).combine_chunks() if pieces else None
        if table is not None and not final:
            whole = table.num_rows - table.num_rows % self._row_group_rows
            if whole < table.num_rows:
                self._pending[slot], self._pending_rows[slot] = [table.slice(whole)], table.num_rows - whole
            table = table.slice(0, whole)
        if table is None or table.num_rows == 0:
            return
        if slot not in self._writers:
            os.makedirs(self.directory, exist_ok=True)  # only parts that get rows have a directory
            name = SHARD_PATTERN.format(len(self._written))
            self._written[name] = 0
            self._writers[slot] = (name, pq.ParquetWriter(os.path.join(self.directory, name), table.schema,
                                                          compression="snappy"))
        name, writer = self._writers[slot]
        writer.write_table(table, row_group_size=self._row_group_rows)
        self._written[name] += table.num_rows
        if self._written[name] >= self._rows_per_shard:  # roll over: close this file, the next flush opens one
            writer.close()
            del self._writers[slot]

    def close(self) -> dict[str, int]:
        """Flushes and closes every file; ``{file name: rows}`` of every file written."""
        for slot in list(self._pending):
            self._flush(slot, final=True)
        for _, writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return dict(self._written)
