"""Sorted buckets -> encoded examples and held-out queries, written to their parts' shards.

A bucket holds every interaction of its users sorted by (user, time, file row). ``BucketWriter.add`` assigns
each row its part (``split_assign``), builds both towers' encoded features (the user's static features and
history, the item's features, from the encoded side tables) ``chunk_rows`` rows at a time, writes each part's
rows to that part's ``ShardWriter`` (random shards), one query per held-out user to the queries' writer, and
counts training rows per item code. Reserved columns (labels, weight) are copied from the bucket.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pyarrow as pa

from tower_zoo.data.prepare.encoders import Encoders
from tower_zoo.data.prepare.sequences import UserRuns, held_out_queries, history_at
from tower_zoo.data.prepare.split_assign import (PART_NAMES, TEST, TRAIN, VALID, leave_last_out_parts,
                                                 random_parts, time_parts)
from tower_zoo.data.schema.dataset_schema import DatasetSchema
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.keys import LABEL, SAMPLE_WEIGHT, objective_label
from tower_zoo.data.store import manifest as files
from tower_zoo.data.store.shards import ShardWriter, arrays_to_table


def reserved_columns(schema: DatasetSchema) -> list[str]:
    """The reserved (non-feature) columns of an example: __label__, __label_<name>__ per label, the weight."""
    columns = [LABEL] if schema.labels else []
    columns += [objective_label(label.name) for label in schema.labels]
    return columns + ([SAMPLE_WEIGHT] if schema.columns["weight"] else [])


@dataclasses.dataclass(frozen=True)
class ShardLayout:
    """How examples are cut into files: rows per encoded chunk, per row group, per file; open files per part."""

    chunk_rows: int
    row_group_rows: int
    rows_per_shard: int
    slots: dict[int, int]   # part -> files open at once
    seed: int


class BucketWriter:
    """Turns sorted buckets into examples and queries, and counts training rows per item."""

    def __init__(self, schema: DatasetSchema, encoders: Encoders, directory: str, layout: ShardLayout,
                 cuts: tuple[float | None, float | None]):
        self.schema, self.encoders, self.cuts, self.chunk_rows = schema, encoders, cuts, layout.chunk_rows
        self.examples = {part: ShardWriter(os.path.join(directory, PART_NAMES[part]), layout.row_group_rows,
                                           layout.rows_per_shard, slots=layout.slots[part], seed=layout.seed * 7 + part)
                         for part in (TRAIN, VALID, TEST)}
        self.queries = {part: ShardWriter(os.path.join(directory, f"{PART_NAMES[part]}_queries"),
                                          layout.row_group_rows, layout.rows_per_shard)
                        for part in (VALID, TEST)}
        self.item_counts = np.zeros(encoders.spec.item_id.vocab_size, np.int64)
        self.reserved = reserved_columns(schema)

    def _parts(self, bucket: dict[str, pa.Array], runs: UserRuns) -> np.ndarray:
        split = self.schema.split
        if split.method == "leave_last_out":
            return leave_last_out_parts(runs.position(), runs.user_count(), split.num_test, split.num_valid)
        if split.method == "time":
            return time_parts(bucket["time"].to_numpy(), *self.cuts)
        return random_parts(bucket["row"].to_numpy(), split.seed, split.test_fraction, split.valid_fraction)

    def _user_side(self, bucket: dict[str, pa.Array], rows: np.ndarray, position: np.ndarray,
                   item_codes: np.ndarray) -> dict[str, np.ndarray]:
        features = {"user_id": bucket["user_code"].to_numpy()[rows]}
        features.update(self.encoders.user_table.gather(bucket["user_row"].to_numpy()[rows]))
        if self.schema.history_length:
            features[HISTORY_FEATURE] = history_at(rows, position, item_codes, self.schema.history_length)
        return features

    def add(self, sorted_rows: pa.Table) -> None:
        """Writes the examples and queries of one bucket sorted by (user, time, row)."""
        bucket = {name: sorted_rows[name].combine_chunks() for name in sorted_rows.schema.names}
        runs = UserRuns.of(bucket["user"])
        parts, position = self._parts(bucket, runs), runs.position()
        item_codes = bucket["item_code"].to_numpy()
        item_rows = bucket["item_row"].to_numpy()
        self.item_counts += np.bincount(item_codes[parts == TRAIN], minlength=len(self.item_counts))
        for start in range(0, len(parts), self.chunk_rows):
            rows = np.arange(start, min(len(parts), start + self.chunk_rows))
            arrays = {**self._user_side(bucket, rows, position, item_codes), "item_id": item_codes[rows],
                      **self.encoders.item_table.gather(item_rows[rows])}
            arrays = {name: arrays[name] for name in self.encoders.spec.names}
            arrays.update({column: bucket[column].to_numpy()[rows] for column in self.reserved})
            chunk_parts = parts[rows]
            for part, writer in self.examples.items():
                mask = chunk_parts == part
                if mask.any():
                    writer.write(arrays_to_table({name: values[mask] for name, values in arrays.items()}))
        for part, writer in self.queries.items():
            if (parts == part).any():
                self._write_queries(bucket, runs, parts, part, position, item_codes, writer)

    def _write_queries(self, bucket: dict[str, pa.Array], runs: UserRuns, parts: np.ndarray, part: int,
                       position: np.ndarray, item_codes: np.ndarray, writer: ShardWriter) -> None:
        queries = held_out_queries(runs, parts, bucket["item"], part, (TRAIN,) if part == VALID else (TRAIN, VALID))
        features = self._user_side(bucket, queries.rows, position, item_codes)
        writer.write(arrays_to_table(features, {files.RAW_ID_COLUMN: bucket["user"].take(pa.array(queries.rows)),
                                                files.TARGETS_COLUMN: queries.targets,
                                                files.EXCLUDE_COLUMN: queries.exclude}))

    def close(self) -> dict[str, dict[str, int]]:
        """``{directory name: {file name: rows}}`` of every non-empty part."""
        written = {PART_NAMES[p]: w.close() for p, w in self.examples.items()}
        written.update({f"{PART_NAMES[p]}_queries": w.close() for p, w in self.queries.items()})
        return {name: files for name, files in written.items() if files}
