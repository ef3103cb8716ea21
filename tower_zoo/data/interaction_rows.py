"""Interaction batches in canonical form, and the first streaming pass over them (``scan``).

``canonical_rows`` turns one raw record batch into ``InteractionRows``: ids (int64 or string),
int64 times (the file row number when the schema has no timestamp), float32 rating / weight and
0/1 float32 labels, with a ValueError naming file, column and row for a null, a NaN, a fractional
id or time, or a label column that is not 0/1. ``scan`` streams every file once, checking every
row that way and counting ids, in memory that grows with the number of distinct ids only.
"""

from __future__ import annotations

import dataclasses
import operator

import numpy as np
import pyarrow as pa

from tower_zoo.data.files import (DEFAULT_BATCH_ROWS, canonical_ids, canonical_numbers, check_interaction_file,
                                  id_family, iter_batches, list_files)
from tower_zoo.data.schema import DatasetSchema, LabelDef
from tower_zoo.data.vocab import ValueCounter

_OPERATORS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt,
              "<": operator.lt}


@dataclasses.dataclass
class InteractionRows:
    """One batch of interactions, canonical (see the module docstring); every array has N rows."""

    users: pa.Array
    items: pa.Array
    time: np.ndarray                 # int64 [N]
    row: np.ndarray                  # int64 [N]: the row's number across all files, in file order
    rating: np.ndarray | None        # float32 [N]
    weight: np.ndarray | None        # float32 [N]
    labels: dict[str, np.ndarray]    # float32 [N] of 0/1 each

    @property
    def num_rows(self) -> int:
        return len(self.time)


def id_families(schema: DatasetSchema) -> dict[str, str]:
    """``{"user_id": "integer" | "string", "item_id": ...}`` from the first interaction file."""
    first = list_files(schema.interactions, "interactions")[0]
    fields = check_interaction_file(first, schema).schema
    return {role: id_family(fields.field(schema.columns[role]).type) for role in ("user_id", "item_id")}


def _whole_numbers(values: pa.Array, path: str, column: str, offset: int, what: str) -> np.ndarray:
    """int64 [N] (exact for integer and timestamp columns; floats must hold whole numbers)."""
    if not pa.types.is_floating(values.type):
        return canonical_numbers(values, path, column, offset, what, np.int64)
    numbers = canonical_numbers(values, path, column, offset, what, np.float64)
    fractional = numbers != np.floor(numbers)
    if fractional.any():
        row = int(np.flatnonzero(fractional)[0])
        raise ValueError(f"{path}: column {column!r} row {offset + row + 1}: {what} {numbers[row].item()!r} is not a "
                         "whole number")
    return numbers.astype(np.int64)


def _label(label: LabelDef, batch: pa.RecordBatch, path: str, offset: int) -> np.ndarray:
    values = canonical_numbers(batch.column(label.column), path, label.column, offset, f"label {label.name!r}",
                               np.float64)
    if label.operator is not None:
        return _OPERATORS[label.operator](values, label.threshold).astype(np.float32)
    bad = (values != 0) & (values != 1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: column {label.column!r} row {offset + row + 1}: label {label.name!r} must be 0 "
                         f"or 1, got {values[row].item()!r}")
    return values.astype(np.float32)


def canonical_rows(schema: DatasetSchema, families: dict[str, str], path: str, offset: int, first_row: int,
                   batch: pa.RecordBatch) -> InteractionRows:
    """``batch`` (rows ``offset..`` of file ``path``, rows ``first_row..`` across all files) in canonical form."""
    columns = schema.columns
    users = canonical_ids(batch.column(columns["user_id"]), path, columns["user_id"], offset, families["user_id"])
    items = canonical_ids(batch.column(columns["item_id"]), path, columns["item_id"], offset, families["item_id"])
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    time = rows if not columns["timestamp"] else _whole_numbers(
        batch.column(columns["timestamp"]), path, columns["timestamp"], offset, "timestamp")
    numbers = {role: None if not columns[role] else canonical_numbers(
        batch.column(columns[role]), path, columns[role], offset, role) for role in ("rating", "weight")}
    labels = {label.name: _label(label, batch, path, offset) for label in schema.labels}
    return InteractionRows(users, items, time, rows, numbers["rating"], numbers["weight"], labels)


def stream_rows(schema: DatasetSchema, families: dict[str, str], batch_rows: int = DEFAULT_BATCH_ROWS):
    """Every interaction as ``InteractionRows`` batches, in file order."""
    first_row = 0
    for path, offset, batch in iter_batches(schema, schema.interaction_columns(), batch_rows):
        yield path, canonical_rows(schema, families, path, offset, first_row, batch)
        first_row += batch.num_rows


def stream_times(schema: DatasetSchema, batch_rows: int = DEFAULT_BATCH_ROWS):
    """The timestamp column alone, int64 batches in file order (for the time split's quantiles)."""
    column = schema.columns["timestamp"]
    for path, offset, batch in iter_batches(schema, [column], batch_rows):
        yield _whole_numbers(batch.column(column), path, column, offset, "timestamp")


@dataclasses.dataclass
class ScanResult:
    """What one pass over the interactions learns: row counts, id counts, the time range."""

    num_rows: int
    rows_per_file: dict[str, int]
    user_counts: pa.Table    # (values, counts)
    item_counts: pa.Table
    time_min: int
    time_max: int
    families: dict[str, str]


def scan(schema: DatasetSchema, batch_rows: int = DEFAULT_BATCH_ROWS) -> ScanResult:
    """Streams every interaction once: validates each row and counts users and items."""
    families = id_families(schema)
    users, items = ValueCounter(), ValueCounter()
    rows_per_file: dict[str, int] = {}
    total, time_min, time_max = 0, np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for path, rows in stream_rows(schema, families, batch_rows):
        users.add(rows.users)
        items.add(rows.items)
        rows_per_file[path] = rows_per_file.get(path, 0) + rows.num_rows
        total += rows.num_rows
        time_min, time_max = min(time_min, int(rows.time.min())), max(time_max, int(rows.time.max()))
    return ScanResult(total, rows_per_file, users.counts(), items.counts(), time_min, time_max, families)
