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

from tower_zoo.data.prepare.vocab import ValueCounter
from tower_zoo.data.schema.dataset_schema import DatasetSchema, LabelDef
from tower_zoo.data.schema.files import (DEFAULT_BATCH_ROWS, canonical_numbers, check_interaction_file,
                                         iter_batches, list_files)
from tower_zoo.data.schema.id_values import INT64_MAX, canonical_ids, id_family

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
    """``{"user_id": "integer" | "string", "item_id": ...}``: the schema's declared ``type``, else the
    type of the column in the first interaction file."""
    first = list_files(schema.interactions, "interactions")[0]
    fields = check_interaction_file(first, schema).schema
    return {role: schema.id_types.get(role) or id_family(fields.field(schema.columns[role]).type)
            for role in ("user_id", "item_id")}


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _whole_numbers(values: pa.Array, path: str, column: str, offset: int, what: str) -> np.ndarray:
    """int64 [N] (exact for integer and timestamp columns; floats must hold finite whole numbers and
    every value must fit int64: ``inf`` or 2^63 would wrap to INT64_MIN)."""
    if pa.types.is_unsigned_integer(values.type):
        numbers = canonical_numbers(values, path, column, offset, what, np.uint64)
        if (numbers > INT64_MAX).any():
            row = _first_row(numbers > INT64_MAX)
            raise ValueError(f"{path}: column {column!r} row {offset + row + 1}: {what} {int(numbers[row])} is "
                             "outside the int64 range")
    if not pa.types.is_floating(values.type):
        return canonical_numbers(values, path, column, offset, what, np.int64)
    numbers = canonical_numbers(values, path, column, offset, what, np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (numbers != np.floor(numbers)) | (np.abs(numbers) >= 2.0 ** 63)
    if bad.any():
        row = _first_row(bad)
        reason = "is not a whole number" if not np.isfinite(numbers[row]) or numbers[row] != np.floor(
            numbers[row]) else "is outside the int64 range"
        raise ValueError(f"{path}: column {column!r} row {offset + row + 1}: {what} {numbers[row].item()!r} "
                         f"{reason}")
    return numbers.astype(np.int64)


def _finite_numbers(values: pa.Array, path: str, column: str, offset: int, role: str) -> np.ndarray:
    """float32 [N] of a rating or weight column: finite, and for a weight >= 0."""
    numbers = canonical_numbers(values, path, column, offset, role, np.float64)
    bad = ~np.isfinite(numbers) | ((numbers < 0) if role == "weight" else False)
    if np.any(bad):
        row = _first_row(bad)
        expected = "a finite number >= 0" if role == "weight" else "a finite number"
        raise ValueError(f"{path}: column {column!r} row {offset + row + 1}: {role} {numbers[row].item()!r}; "
                         f"expected {expected}")
    return numbers.astype(np.float32)


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
    text = schema.interactions.format == "csv"  # iter_batches reads a CSV file's id columns as text
    users, items = (canonical_ids(batch.column(columns[role]), path, columns[role], offset, families[role],
                                  schema.id_types.get(role) is not None, text) for role in ("user_id", "item_id"))
    rows = np.arange(first_row, first_row + batch.num_rows, dtype=np.int64)
    time = rows if not columns["timestamp"] else _whole_numbers(
        batch.column(columns["timestamp"]), path, columns["timestamp"], offset, "timestamp")
    numbers = {role: None if not columns[role] else _finite_numbers(
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
    weighted = False
    for path, rows in stream_rows(schema, families, batch_rows):
        users.add(rows.users)
        items.add(rows.items)
        rows_per_file[path] = rows_per_file.get(path, 0) + rows.num_rows
        total += rows.num_rows
        time_min, time_max = min(time_min, int(rows.time.min())), max(time_max, int(rows.time.max()))
        weighted = weighted or (rows.weight is not None and bool(rows.weight.any()))
    if schema.columns["weight"] and not weighted:
        raise ValueError(f"column {schema.columns['weight']!r} (columns.weight) is 0 on every row of "
                         f"{', '.join(rows_per_file)}: every example would weigh nothing")
    return ScanResult(total, rows_per_file, users.counts(), items.counts(), time_min, time_max, families)
