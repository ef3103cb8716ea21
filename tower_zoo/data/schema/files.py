"""Reading a schema's Parquet / CSV files with pyarrow, one clear error per problem.

Interaction files are only ever streamed (``iter_batches``: record batches, file by file, in sorted
path order); user and item tables are read whole (``read_side_table``), since they grow with the
vocabulary, not with the interactions. Every error is a ``ValueError`` (``FileNotFoundError`` for
a glob that matches nothing) naming the file, the column and, where it applies, the row: rows are
numbered from 1 within their file, not counting a CSV header.

Canonical column types after reading: ids int64 or string (one type across files), timestamps
int64 (Arrow timestamps and dates as their integer value), everything else as stored.
"""

from __future__ import annotations

import glob
import os
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

from tower_zoo.data.schema.dataset_schema import DatasetSchema, TableSpec
from tower_zoo.data.schema.id_values import canonical_ids, check_no_nulls

DEFAULT_BATCH_ROWS = 65_536
_ARROW_ERRORS = (pa.ArrowException, OSError)


def list_files(table: TableSpec, what: str) -> list[str]:
    """The files matching ``table.path`` (sorted); FileNotFoundError naming the pattern if none."""
    paths = sorted(p for p in glob.glob(table.path, recursive=True) if os.path.isfile(p))
    if not paths:
        raise FileNotFoundError(f"{what}: no files match {table.path!r}")
    return paths


def _file_format(table: TableSpec, text_columns: Sequence[str]) -> ds.FileFormat:
    if table.format == "csv":
        convert = pa_csv.ConvertOptions(column_types={column: pa.string() for column in text_columns})
        return ds.CsvFileFormat(parse_options=pa_csv.ParseOptions(delimiter=table.delimiter), convert_options=convert)
    return ds.ParquetFileFormat()


def open_file(path: str, table: TableSpec, text_columns: Sequence[str] = ()) -> ds.Dataset:
    """One file as a pyarrow dataset; ValueError naming it if it cannot be read. A CSV file's
    ``text_columns`` are read as text (ids: "0377" must reach the id checks as written)."""
    try:
        dataset = ds.dataset(path, format=_file_format(table, text_columns))
    except _ARROW_ERRORS as err:
        raise ValueError(f"{path}: unreadable {table.format} file ({type(err).__name__}: {err})") from err
    _check_has_rows(path, dataset, table)
    return dataset


def _check_has_rows(path: str, dataset: ds.Dataset, table: TableSpec) -> None:
    """A CSV file with a header only infers every column as type null: say so, not "type null"."""
    if table.format == "csv" and any(pa.types.is_null(field.type) for field in dataset.schema):
        try:
            empty = dataset.count_rows() == 0
        except _ARROW_ERRORS:
            return  # reported by the reader with its row
        if empty:
            raise ValueError(f"{path}: the file has no data rows (a header only)")


def id_text_columns(table: TableSpec, columns: Sequence[str]) -> tuple[str, ...]:
    """The id ``columns`` a file of ``table`` must be read as text: every one of a CSV file."""
    return tuple(columns) if table.format == "csv" else ()


def require_columns(path: str, available: Sequence[str], needed: dict[str, str]) -> None:
    """``needed`` maps column -> what names it (``"columns.user_id"``); ValueError for the first absent."""
    for column, role in needed.items():
        if column not in available:
            raise ValueError(f"{path}: column {column!r} ({role} in the schema) does not exist; the file has "
                             f"columns {list(available)}")


# ============================================================================= types
def is_id_type(kind: pa.DataType) -> bool:
    """Ids are integers or strings (floats are accepted when every value is a whole number)."""
    return (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or pa.types.is_floating(kind) or pa.types.is_null(kind))


def is_number_type(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def is_time_type(kind: pa.DataType) -> bool:
    return is_number_type(kind) or pa.types.is_timestamp(kind) or pa.types.is_date(kind)


def canonical_numbers(values: pa.Array, path: str, column: str, row_offset: int, what: str,
                      kind: type = np.float32) -> np.ndarray:
    """A numeric column as a NumPy array of ``kind``; ValueError for nulls/NaNs (naming the row)."""
    check_no_nulls(values, path, column, row_offset, what)
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        values = values.cast(pa.int64()) if pa.types.is_timestamp(values.type) else values.cast(
            pa.int32()).cast(pa.int64())
    return values.to_numpy(zero_copy_only=False).astype(kind)


def check_column_type(path: str, column: str, kind: pa.DataType, role: str) -> None:
    """ValueError naming the file and column when ``kind`` does not suit ``role``."""
    checks = {"id": (is_id_type, "integers or strings"), "time": (is_time_type, "integers or timestamps"),
              "number": (is_number_type, "numbers")}
    check, expected = checks[role]
    if not check(kind):
        raise ValueError(f"{path}: column {column!r} has type {kind}; expected {expected}")


# ============================================================================= interactions
def interaction_roles(schema: DatasetSchema) -> dict[str, tuple[str, str]]:
    """``{column: (what names it, type role)}`` for every column the interaction files must have."""
    roles = {}
    for role, column in schema.columns.items():
        if column:
            kind = "id" if role in ("user_id", "item_id") else "time" if role == "timestamp" else "number"
            roles[column] = (f"columns.{role}", kind)
    for label in schema.labels:
        roles.setdefault(label.column, (f"labels.{label.name}", "number"))
    return roles


def check_interaction_file(path: str, schema: DatasetSchema, ids_as_text: bool = False) -> ds.Dataset:
    """Opens one interaction file and checks that it has the schema's columns with suitable types
    (with ``ids_as_text``, a CSV file's id columns are read as text)."""
    id_columns = [schema.columns["user_id"], schema.columns["item_id"]]
    dataset = open_file(path, schema.interactions,
                        id_text_columns(schema.interactions, id_columns) if ids_as_text else ())
    roles = interaction_roles(schema)
    require_columns(path, dataset.schema.names, {column: where for column, (where, _) in roles.items()})
    for column, (_, role) in roles.items():
        check_column_type(path, column, dataset.schema.field(column).type, role)
    return dataset


def iter_batches(schema: DatasetSchema, columns: Sequence[str], batch_rows: int = DEFAULT_BATCH_ROWS
                 ) -> Iterator[tuple[str, int, pa.RecordBatch]]:
    """Streams the interaction files: ``(path, rows of that file before this batch, batch)`` with
    ``columns`` only. An empty file, or a file that fails while being read, is a ValueError naming it."""
    for path in list_files(schema.interactions, "interactions"):
        dataset = check_interaction_file(path, schema, ids_as_text=True)
        offset = 0
        try:
            for batch in dataset.to_batches(columns=list(columns), batch_size=batch_rows):
                if batch.num_rows:
                    yield path, offset, batch
                    offset += batch.num_rows
        except _ARROW_ERRORS as err:
            raise ValueError(f"{path}: unreadable {schema.interactions.format} file after row {offset} "
                             f"({type(err).__name__}: {err})") from err
        if offset == 0:
            raise ValueError(f"{path}: the file holds no rows (an empty shard); remove it or fill it")


# ============================================================================= side tables
def side_table_columns(schema: DatasetSchema, side: str) -> dict[str, str]:
    """``{column: what names it}`` for the ``side`` table: its id, features and display columns."""
    table = schema.table(side)
    needed = {table.id: f"{side}s.id"}
    for feature in schema.side_features(side):
        needed.setdefault(feature.column, f"features.{side}.{feature.name}")
    for column in table.display:
        needed.setdefault(column, f"{side}s.display")
    return needed


def read_side_table(schema: DatasetSchema, side: str, id_family_name: str) -> tuple[pa.Table, "FileRows"]:
    """The whole ``side`` table (its id column as canonical ids, checked for nulls and duplicates)
    and where its rows come from. Raises ValueError naming file, column and row."""
    table_spec = schema.table(side)
    needed = side_table_columns(schema, side)
    declared = schema.id_types.get(f"{side}_id") is not None
    parts, origins = [], FileRows()
    for path in list_files(table_spec, f"{side}s"):
        dataset = open_file(path, table_spec, id_text_columns(table_spec, [table_spec.id]))
        require_columns(path, dataset.schema.names, needed)
        check_column_type(path, table_spec.id, dataset.schema.field(table_spec.id).type, "id")
        try:
            part = dataset.to_table(columns=list(needed))
        except _ARROW_ERRORS as err:
            raise ValueError(f"{path}: unreadable {table_spec.format} file ({type(err).__name__}: {err})") from err
        if part.num_rows == 0:
            raise ValueError(f"{path}: the {side}s table file holds no rows (an empty shard)")
        ids = canonical_ids(part.column(table_spec.id).combine_chunks(), path, table_spec.id, 0, id_family_name,
                            declared, text=table_spec.format == "csv")
        parts.append(part.set_column(part.schema.get_field_index(table_spec.id), table_spec.id, ids))
        origins.add(path, part.num_rows)
    table = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    _check_unique_ids(table.column(table_spec.id), table_spec.id, origins, side)
    return table, origins


class FileRows:
    """Which file each row of a concatenated table came from."""

    def __init__(self):
        self.paths: list[str] = []
        self.starts: list[int] = [0]

    def add(self, path: str, rows: int) -> None:
        self.paths.append(path)
        self.starts.append(self.starts[-1] + rows)

    def locate(self, row: int) -> str:
        """``"<file> row <n>"`` for a 0-based row of the concatenated table (n 1-based in its file)."""
        index = int(np.searchsorted(self.starts, row, side="right")) - 1
        return f"{self.paths[index]} row {row - self.starts[index] + 1}"


def _check_unique_ids(ids: pa.ChunkedArray, column: str, origins: FileRows, side: str) -> None:
    counts = pc.value_counts(ids.combine_chunks())
    duplicated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(duplicated):
        value = duplicated[0].as_py()
        rows = np.flatnonzero(pc.equal(ids, value).to_numpy(zero_copy_only=False))[:2]
        where = " and ".join(origins.locate(int(r)) for r in rows)
        raise ValueError(f"{side}s table: duplicate id {value!r} in column {column!r} ({where}); each "
                         f"{side} must appear once")


def source_files(schema: DatasetSchema) -> list[str]:
    """Every file the schema reads: interaction shards, then the user and item tables."""
    paths = list_files(schema.interactions, "interactions")
    for side in ("user", "item"):
        if schema.table(side) is not None:
            paths += list_files(schema.table(side), f"{side}s")
    return paths


def check_schema_files(schema: DatasetSchema) -> None:
    """Every column the schema names exists, with a suitable type, in every file (reads headers only)."""
    for path in list_files(schema.interactions, "interactions"):
        check_interaction_file(path, schema)
    for side in ("user", "item"):
        table_spec = schema.table(side)
        if table_spec is None:
            continue
        needed = side_table_columns(schema, side)
        for path in list_files(table_spec, f"{side}s"):
            dataset = open_file(path, table_spec)
            require_columns(path, dataset.schema.names, needed)
            check_column_type(path, table_spec.id, dataset.schema.field(table_spec.id).type, "id")
