"""Batch recommendation: stream users through a retrieval export's top-k SavedModel into one Parquet file.

``recommend(export_dir, out, k, users=None)`` reads raw user rows in chunks (``users``: a Parquet or CSV file
with one column per user feature and optionally ``exclude``; None: the users stored in the export), runs each
chunk through ``retrieval/`` (signature ``exclude`` when rows carry their seen items, the default; with
``include_seen`` they are not excluded) and writes ``user_id, rank, item_id, score`` rows (rank 1 = best; a user
with fewer than k eligible items gets fewer rows).

Memory is bounded by one chunk. Each finished chunk is a file in ``.NAME.parts/`` beside ``out``, written
under a temporary name and renamed; a rerun with the same export, input file content (its SHA-256), k, chunk
size and ``include_seen`` skips the chunks already there (anything else starts over). The parts are merged into
``out`` through a temporary file and one rename, then removed. In CSV, a sequence cell holds its values
separated by spaces. Errors name the users file and the row (data rows counted from 1, the header not counted,
as in every file error of tower_zoo), or the file that could not be written.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tower_zoo.fileio import apply_umask, file_sha256, is_regular_file, write_json_atomic
from tower_zoo.serving.directory import MANIFEST
from tower_zoo.serving.export import USERS_FILE, padding_of, read_export_manifest
from tower_zoo.serving.requests import call_signature, id_matrix, request_arrays
from tower_zoo.serving.retriever import EXCLUDE_COLUMN
from tower_zoo.serving.scorer import signature_inputs

PROGRESS_FILE = "progress.json"


def _reason(err: BaseException) -> str:
    """What went wrong, without the file name the caller adds."""
    return (err.strerror if isinstance(err, OSError) and err.strerror else str(err)) or type(err).__name__


def _csv_chunks(path: str, raw_inputs: dict[str, dict], chunk_size: int) -> Iterator[pd.DataFrame]:
    strings = {name for name, entry in raw_inputs.items() if entry["dtype"] == "string" or "padding" in entry}
    sequences = {name for name, entry in raw_inputs.items() if "padding" in entry} | {EXCLUDE_COLUMN}
    reader = pd.read_csv(path, chunksize=chunk_size, dtype={name: str for name in strings | {EXCLUDE_COLUMN}})
    for frame in reader:
        for name in sequences & set(frame.columns):
            integer = name == EXCLUDE_COLUMN or raw_inputs[name]["dtype"] == "int64"
            frame[name] = [_split_cell(cell, integer, name, row) for row, cell in zip(frame.index, frame[name])]
        yield frame


def _split_cell(cell: Any, integer: bool, name: str, row: int) -> list:
    if not isinstance(cell, str):  # an empty cell
        return []
    values = cell.split()
    if not integer:
        return values
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"feature {name!r}: row {row + 1} holds {cell!r}, not integer ids separated by spaces") \
            from None


def _file_chunks(path: str, raw_inputs: dict[str, dict], chunk_size: int) -> Iterator[pd.DataFrame]:
    if path.endswith(".csv"):
        yield from (frame for frame in _csv_chunks(path, raw_inputs, chunk_size) if len(frame))
        return
    handle = pq.ParquetFile(path)
    wanted = [c for c in handle.schema_arrow.names if c in raw_inputs or c == EXCLUDE_COLUMN]
    for batch in handle.iter_batches(batch_size=chunk_size, columns=wanted):
        if batch.num_rows:
            yield batch.to_pandas()


def user_chunks(path: str, raw_inputs: dict[str, dict], chunk_size: int) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_size`` raw user rows from a Parquet or CSV file; a file that cannot be
    read, or a cell that cannot be parsed, is one ValueError naming the file (and the row)."""
    try:
        yield from _file_chunks(path, raw_inputs, chunk_size)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise ValueError(f"users file {path!r}: {_reason(err)}") from None


class TopKModel:
    """The ``retrieval/`` SavedModel of an export, called with raw user rows (``ids``, ``scores`` [B, k])."""

    def __init__(self, export_dir: pathlib.Path, manifest: dict[str, Any]):
        loaded = tf.saved_model.load(str(export_dir / "retrieval"))
        self._plain, self._excluding = loaded.signatures["serving_default"], loaded.signatures["exclude"]
        self.inputs = signature_inputs(self._plain)
        self.padding, self.padding_id = padding_of(manifest), manifest["padding_id"]

    def __call__(self, rows: pd.DataFrame, include_seen: bool = False,
                 first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of ``rows``, their ``exclude`` items left out unless ``include_seen``; errors number the rows
        from ``first_row``."""
        arrays = request_arrays(self.inputs, rows, self.padding, first_row)
        if EXCLUDE_COLUMN in rows and not include_seen:
            excluded = id_matrix(list(rows[EXCLUDE_COLUMN]), self.padding_id, EXCLUDE_COLUMN, first_row)
            found = call_signature(self._excluding, {**arrays, "exclude_ids": excluded})
        else:
            found = call_signature(self._plain, arrays)
        return found["ids"], found["scores"]


def _fingerprint(export_dir: pathlib.Path, source: str, k: int, chunk_size: int,
                 include_seen: bool) -> dict[str, Any]:
    """What finished chunks were computed from: the export, the users file's content (not its size and time,
    which a replaced file can share), k, the chunk size and whether seen items were excluded."""
    try:
        users_sha256 = file_sha256(source)
    except OSError as err:
        raise ValueError(f"users file {source!r}: {_reason(err)}") from None
    return {"export_manifest": file_sha256(export_dir / MANIFEST), "users": os.path.abspath(source),
            "users_sha256": users_sha256, "k": k, "chunk_size": chunk_size, "include_seen": include_seen}


def _parts_dir(out: pathlib.Path, fingerprint: dict[str, Any]) -> pathlib.Path:
    """``.NAME.parts`` beside ``out``, kept when its progress record matches ``fingerprint``, else emptied."""
    parts = out.parent / f".{out.name}.parts"
    record = parts / PROGRESS_FILE
    if parts.is_dir():
        try:
            same = json.loads(record.read_text()) == fingerprint
        except (OSError, ValueError):
            same = False
        if same:
            return parts
        if not record.is_file():
            raise ValueError(f"{str(parts)!r} exists but is not a recommend progress directory; remove it")
        shutil.rmtree(parts)  # another export, input, k or chunk size: those chunks do not apply
    parts.mkdir(parents=True)
    apply_umask(str(parts), directory=True)
    write_json_atomic(str(record), fingerprint)
    return parts


def _chunk_table(rows: pd.DataFrame, user_column: str, ids: np.ndarray, scores: np.ndarray, k: int) -> pa.Table:
    ids, scores = ids[:, :k], scores[:, :k]
    found = ids >= 0
    users = np.repeat(rows[user_column].to_numpy(), found.sum(axis=1))
    ranks = np.broadcast_to(np.arange(1, ids.shape[1] + 1, dtype=np.int32), ids.shape)[found]
    return pa.table({"user_id": users, "rank": ranks, "item_id": ids[found].astype(np.int64),
                     "score": scores[found].astype(np.float32)})


def _write_parquet(table_or_parts, temporary: pathlib.Path) -> None:
    """A table, or the rows of Parquet part files (at least one) in order, as the Parquet file ``temporary``."""
    if isinstance(table_or_parts, pa.Table):
        pq.write_table(table_or_parts, temporary)
        return
    writer = None
    for part in table_or_parts:
        table = pq.read_table(part)
        writer = writer or pq.ParquetWriter(temporary, table.schema)
        writer.write_table(table)
    if writer is not None:
        writer.close()


def _write_atomic(table_or_parts, path: pathlib.Path) -> None:
    """Writes a table (or the concatenation of Parquet parts) to ``path`` through a temporary file and a
    rename; an OSError (a full disk, a read-only directory) names ``path``."""
    temporary = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        _write_parquet(table_or_parts, temporary)
        apply_umask(str(temporary))
        os.replace(temporary, path)
    except OSError as err:
        raise OSError(err.errno, f"cannot write it: {_reason(err)}", str(path)) from err
    finally:
        if temporary.exists():
            temporary.unlink()


def recommend(export_dir: str, out: str, k: int, users: str | None = None, chunk_size: int = 1024,
              overwrite: bool = False, progress=None, include_seen: bool = False) -> dict[str, Any]:
    """See the module docstring. Returns {"users": rows read, "chunks": total, "resumed": chunks skipped}."""
    root = pathlib.Path(export_dir).resolve()
    manifest = read_export_manifest(root)
    if manifest["kind"] != "retrieval":
        raise ValueError(f"export {str(root)!r} is a {manifest['kind']} export ({manifest['model_name']}): recommend "
                         "needs a retrieval export's top-k model; score candidates with its scorer instead")
    if not 1 <= k <= manifest["k"]:
        raise ValueError(f"--k {k}: the top-k model of export {str(root)!r} returns at most {manifest['k']} items")
    if chunk_size < 1:
        raise ValueError(f"--chunk_size must be >= 1, got {chunk_size}")
    source = users or str(root / USERS_FILE)
    if not is_regular_file(source, "users file"):
        raise FileNotFoundError(f"{source!r}: no such users file" if users else
                                f"export {str(root)!r} stores no users; pass --users FILE")
    target = pathlib.Path(out).resolve()
    parts_name = target.parent / f".{target.name}.parts"
    if target.exists() and not overwrite and not parts_name.is_dir():
        raise FileExistsError(f"{str(target)!r} exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    parts = _parts_dir(target, _fingerprint(root, source, k, chunk_size, include_seen))
    model, user_column = TopKModel(root, manifest), manifest["feature_spec"]["user_id_feature"]
    done, count, rows_read, skipped = [], 0, 0, 0
    for count, rows in enumerate(user_chunks(source, manifest["raw_inputs"], chunk_size), start=1):
        part = parts / f"chunk-{count:06d}.parquet"
        done.append(part)
        if part.is_file():
            skipped += 1
        else:
            try:
                ids, scores = model(rows, include_seen, first_row=rows_read + 1)
            except ValueError as err:
                raise ValueError(f"users file {source!r}, rows {rows_read + 1}-{rows_read + len(rows)}: {err}") \
                    from None
            _write_atomic(_chunk_table(rows, user_column, ids, scores, k), part)
        rows_read += len(rows)
        if progress:
            progress(count, rows_read)
    if not rows_read:
        raise ValueError(f"users file {source!r} holds no user rows")
    _write_atomic(done, target)
    shutil.rmtree(parts)
    return {"users": rows_read, "chunks": count, "resumed": skipped}
