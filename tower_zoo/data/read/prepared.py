"""PreparedDataset: read a directory written by ``tower-zoo prepare`` (layout: ``tower_zoo.data.prepare``).

``PreparedDataset.open`` checks the manifest first (format version, every file present with its
recorded size, SHA-256 of every non-shard file; of the shards too with ``verify_shards``), so a
partial, truncated or foreign directory is refused with a ``PreparedDataError`` naming it. The shards
of a part are checked against their SHA-256 when the part is first read (``part_files``), so a shard
changed in place, even to the same size, is refused by name before training or evaluation reads it.

``open`` reads under the directory's shared lock, and ``locked`` holds it for a longer read (a train,
evaluate or export), so that ``prepare`` cannot replace the directory meanwhile
(``tower_zoo.data.store.prepared_lock``). ``open`` also finishes a replace a kill interrupted
(``tower_zoo.data.store.replace.repair``).

Only the item corpus (and, on request, the user table) is materialized; training examples stream
through ``example_source``, retrieval queries through ``query_chunks`` and exposures through
``exposure_chunks``, each in bounded memory.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tower_zoo.data.read.shard_source import ShardExampleSource
from tower_zoo.data.schema.dataset_schema import DatasetSchema, parse_schema
from tower_zoo.data.schema.files import source_files
from tower_zoo.data.schema.keys import objective_label
from tower_zoo.data.schema.spec import FeatureSpec
from tower_zoo.data.store import manifest as layout
from tower_zoo.data.store import replace
from tower_zoo.data.store.prepared_lock import prepared_lock
from tower_zoo.data.store.shards import table_to_arrays

QUERY_PARTS = ("valid", "test")


def _raw_ids(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Raw ids as int64, or as an object array of strings."""
    values = column.to_numpy(zero_copy_only=False)
    return values.astype(np.int64) if pa.types.is_integer(column.type) else values


def _split_lists(column: pa.ListArray) -> list[np.ndarray]:
    """A list column -> one array of raw ids per row."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    offsets = column.offsets.to_numpy()
    values = _raw_ids(column.values.slice(offsets[0], offsets[-1] - offsets[0]))
    return np.split(values, offsets[1:-1] - offsets[0])


class PreparedDataset:
    """A verified prepared directory (see the module docstring)."""

    def __init__(self, path: str, manifest: dict[str, Any]):
        self.path = os.path.abspath(path)
        self.manifest = manifest
        self._verified_parts: set[str] = set()
        with open(self._file(layout.FEATURE_SPEC_FILE)) as handle:
            self.feature_spec = FeatureSpec.from_json(handle.read())
        with open(self._file(layout.STATS_FILE)) as handle:
            self.stats = json.load(handle)

    @classmethod
    def open(cls, path: str | os.PathLike, verify_shards: bool = False) -> "PreparedDataset":
        path = os.fspath(path)
        if replace.interrupted(path):
            with prepared_lock(path, exclusive=True):
                replace.repair(path)
        with prepared_lock(path):
            dataset = cls(path, layout.read_manifest(path, verify_shards=verify_shards))
        if verify_shards:
            dataset._verified_parts.update(dataset.parts)
        return dataset

    @contextlib.contextmanager
    def locked(self) -> Iterator["PreparedDataset"]:
        """Holds the directory's shared lock for the block, after checking that it still holds the data this
        object was opened on (a prepare may have replaced it since)."""
        with prepared_lock(self.path):
            if layout.parse_manifest(os.path.join(self.path, layout.MANIFEST_FILE)) != self.manifest:
                raise layout.PreparedDataError(f"{self.path} was replaced (by `tower-zoo prepare`) after it was "
                                               "opened; run the command again")
            yield self

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def schema(self) -> DatasetSchema:
        """The schema the directory was prepared from (its files are not re-checked)."""
        return parse_schema(self.manifest["schema"], self.manifest["schema_path"], self.manifest["schema_base_dir"])

    def stale_sources(self) -> list[str]:
        """Source files that changed (size, mtime or fingerprint) or disappeared since prepare, and files the
        schema's globs match now that it did not read: the prepared data no longer matches them."""
        stale = []
        for record in self.manifest["sources"]:
            path = record["path"]
            if not os.path.isfile(path):
                stale.append(f"{path} (missing)")
                continue
            if layout.source_record(path) != record:
                stale.append(f"{path} (changed)")
        recorded = {record["path"] for record in self.manifest["sources"]}
        try:
            matched = source_files(self.schema)
        except FileNotFoundError:  # a glob matches nothing now: its files are listed as missing above
            matched = []
        return stale + [f"{os.path.abspath(path)} (new)" for path in matched if os.path.abspath(path) not in recorded]

    @property
    def label_names(self) -> list[str]:
        return list(self.manifest["schema"].get("labels") or {})

    @property
    def parts(self) -> list[str]:
        """Names of the non-empty parts: train, valid, test, valid_queries, test_queries."""
        return list(self.manifest["parts"])

    def _part(self, part: str) -> dict[str, Any]:
        if part not in self.manifest["parts"]:
            raise ValueError(f"{self.path}: part {part!r} is empty or absent; this directory has "
                             f"{', '.join(self.parts)}")
        return self.manifest["parts"][part]

    def part_files(self, part: str) -> list[tuple[str, int]]:
        """(absolute path, rows) of every shard of ``part``, in manifest order; the first time, each shard is
        checked against its SHA-256 in the manifest (PreparedDataError naming the first that differs)."""
        files = self._part(part)["files"]
        if part not in self._verified_parts:
            for name in files:
                layout.verify_file(self._file(name), self.manifest["files"][name])
            self._verified_parts.add(part)
        return [(self._file(name), rows) for name, rows in files.items()]

    def num_rows(self, part: str) -> int:
        return int(self._part(part)["rows"])

    # ------------------------------------------------------------------------- tables
    def item_counts(self) -> np.ndarray:
        """int64 [item vocab size]: training rows per item code (before any down-sampling)."""
        return np.load(self._file(layout.ITEM_COUNTS_FILE))

    def items_table(self) -> pa.Table:
        """items.parquet as is: raw ids, encoded features, display columns; row i = item code i + 2."""
        return pq.read_table(self._file(layout.ITEMS_FILE))

    def item_corpus(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(encoded item features {name: [I] or [I, L]}, raw item ids [I]) of every vocabulary item."""
        table = self.items_table()
        names = [f.name for f in self.feature_spec.item_features]
        return table_to_arrays(table, names), _raw_ids(table.column(layout.RAW_ID_COLUMN))

    def user_table(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(encoded static user features [U], raw user ids [U]) of every vocabulary user."""
        table = pq.read_table(self._file(layout.USERS_FILE))
        names = [n for n in table.schema.names if not n.startswith("__")]
        return table_to_arrays(table, names), _raw_ids(table.column(layout.RAW_ID_COLUMN))

    # ------------------------------------------------------------------------- streams
    def example_source(self, part: str = "train", **reader_options: Any) -> ShardExampleSource:
        """The examples of ``part`` as an ExampleSource (options: shuffle_rows, read_rows, cycle_length)."""
        files = self.part_files(part)
        counts = self.item_counts() if part == "train" else self._count_items(files)
        return ShardExampleSource([f for f, _ in files], [r for _, r in files], self.feature_spec, counts,
                                  **reader_options)

    def _count_items(self, files: list[tuple[str, int]]) -> np.ndarray:
        counts = np.zeros(self.feature_spec.item_id.vocab_size, np.int64)
        name = self.feature_spec.item_id_feature
        for path, _ in files:
            for batch in pq.ParquetFile(path).iter_batches(columns=[name]):
                counts += np.bincount(batch.column(0).to_numpy(), minlength=len(counts))
        return counts

    def _batches(self, part: str, chunk_size: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        for path, _ in self.part_files(part):
            yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_size, columns=columns)

    def query_chunks(self, part: str = "test", chunk_size: int = 4_096, with_user_ids: bool = False):
        """Retrieval queries of held-out ``part`` ("test" or "valid") in chunks of at most ``chunk_size``
        users: (user features {name: [Q] or [Q, L]}, targets, exclude), plus the raw user ids [Q] as a
        fourth element with ``with_user_ids``. ``targets[q]`` are the user's held-out raw item ids,
        ``exclude[q]`` the raw ids of the items the user interacted with before them."""
        if part not in QUERY_PARTS:
            raise ValueError(f"query_chunks: part must be one of {QUERY_PARTS}, got {part!r}")
        names = [f.name for f in self.feature_spec.user_features]
        columns = names + [layout.RAW_ID_COLUMN, layout.TARGETS_COLUMN, layout.EXCLUDE_COLUMN]
        for batch in self._batches(f"{part}_queries", chunk_size, columns):
            chunk = (table_to_arrays(batch, names), _split_lists(batch.column(layout.TARGETS_COLUMN)),
                     _split_lists(batch.column(layout.EXCLUDE_COLUMN)))
            yield (*chunk, _raw_ids(batch.column(layout.RAW_ID_COLUMN))) if with_user_ids else chunk

    def exposure_chunks(self, part: str = "test", chunk_size: int = 65_536):
        """Exposures of ``part`` in chunks: (features {name: [N] or [N, L]}, labels {name: float32 [N]})."""
        labels = {name: objective_label(name) for name in self.label_names}
        columns = list(self.feature_spec.names) + list(labels.values())
        for batch in self._batches(part, chunk_size, columns):
            yield (table_to_arrays(batch, list(self.feature_spec.names)),
                   {name: batch.column(key).to_numpy() for name, key in labels.items()})

    def describe(self) -> str:
        """A few lines: rows per part, users, items, vocabulary sizes."""
        stats = self.stats
        lines = [f"{stats['name']}: {stats['interactions']:,} interactions prepared in {self.path}",
                 "rows: " + ", ".join(f"{part} {rows:,}" for part, rows in stats["rows"].items())]
        for side in ("users", "items"):
            info = stats[side]
            lines.append(f"{side}: {info['vocabulary']:,} in the vocabulary, coverage {info['coverage']:.2%}")
        stale = self.stale_sources()
        if stale:
            lines.append(f"the sources changed since prepare: {', '.join(stale)}")
        return "\n".join(lines)

