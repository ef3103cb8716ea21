"""``tower-zoo prepare``: a schema's files -> a directory of encoded, shuffled training shards.

Passes over the interaction files (streamed as record batches, never loaded whole):

1. scan: validate every row, count user and item ids (``interaction_rows.scan``);
   then the vocabularies (ids from the counts and the side tables; side features from the tables),
   the FeatureSpec, and for a time split the exact timestamp quantiles (a few passes over that
   column alone);
2. partition: encode ids and hash-partition rows by user into bucket files (``external_sort``);
3. per bucket, sorted by (user, time, file row) in memory: split parts, histories, held-out
   queries, and encoded examples written to randomly chosen shards of their part.

Memory: peak RSS ≈ the interpreter with TensorFlow and pyarrow loaded (≈ 0.7 GB) + the vocabularies
and side tables (about 0.3 KB per distinct user or item with a few side features) + the memory
budget (``memory_budget_mb``, default 1024): the sorted bucket (≤ 40% of it), an output chunk
(≤ 15%), the shard writers' row groups (≤ 30%) and the partition buffers (≤ 15%). None of these
grows with the number of interactions: more interactions make more buckets, not bigger ones
(unless a single user has more interactions than a bucket holds).

A prepared directory (written beside ``out`` and renamed into place when complete)::

    manifest.json         format version, schema, sources, rows per part, size + SHA-256 per file
    feature_spec.json     the FeatureSpec (vocabularies included)
    stats.json            rows per part, users, items, vocabulary sizes, coverage, OOV rates
    item_counts.npy       int64 [item vocab size]: training rows per item code (sampler, logQ)
    items.parquet         the item corpus: __id__ (raw id), encoded item features, display columns;
                          row i is item code i + 2 (one row per vocabulary item)
    users.parquet         __id__, encoded static user features (no history)
    train/part-*.parquet  encoded examples: every feature of both towers (history included) and
    valid/, test/         __label__ (first label), __label_<name>__ per label, __sample_weight__
    test_queries/         one row per held-out user: user features (history at the first held-out
    valid_queries/        interaction), __id__ (raw user id), __targets__ / __exclude__ (raw item ids)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tower_zoo.data.dataset import HISTORY_FEATURE
from tower_zoo.data.external_sort import BucketPartitioner, sorted_buckets
from tower_zoo.data.files import DEFAULT_BATCH_ROWS, read_side_table
from tower_zoo.data.interaction_rows import ScanResult, scan, stream_rows, stream_times
from tower_zoo.data.keys import LABEL, SAMPLE_WEIGHT, objective_label
from tower_zoo.data import manifest as layout
from tower_zoo.data.schema import DatasetSchema, load_schema
from tower_zoo.data.sequences import UserRuns, held_out_queries, history_at
from tower_zoo.data.shards import ShardWriter, arrays_to_table
from tower_zoo.data.side_tables import EncodedSideTable, empty_side_table, encode_side_table
from tower_zoo.data.spec import CategoricalFeature, FeatureSpec, SequenceFeature
from tower_zoo.data.split_assign import (PART_NAMES, TEST, TRAIN, VALID, leave_last_out_parts, random_parts,
                                         streamed_quantile, time_parts)
from tower_zoo.data.vocab import ValueCounter, VocabularyEncoder, as_python_vocabulary, select_vocabulary

ROW_GROUP_LIMITS = (1_024, 131_072)


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """``memory_budget_mb`` bounds the memory that would otherwise grow with the interactions (see the
    module docstring); ``max_bucket_rows`` overrides the sort bucket size it implies (tests)."""

    memory_budget_mb: int = 1024
    rows_per_shard: int = 1_000_000
    max_open_shards: int = 16          # per part, see shard_slots
    batch_rows: int = DEFAULT_BATCH_ROWS
    seed: int = 0
    max_bucket_rows: int | None = None


# ============================================================================= vocabularies and spec
@dataclasses.dataclass
class Encoders:
    """What turns raw interactions into codes: id encoders, encoded side tables, the spec."""

    users: VocabularyEncoder
    items: VocabularyEncoder
    user_table: EncodedSideTable
    item_table: EncodedSideTable
    spec: FeatureSpec


def _side(schema: DatasetSchema, side: str, family: str, counts: pa.Table):
    """(id vocabulary, side features, encoded table) of one side."""
    role = f"{side}_id"
    counter = ValueCounter()
    counter.add(counts["values"].combine_chunks(), counts["counts"].to_numpy())
    if schema.table(side) is None:
        specs, table = [], empty_side_table(side, counts["values"].combine_chunks())
    else:
        raw_table, origins = read_side_table(schema, side, family)
        specs, table = encode_side_table(schema, side, raw_table, origins)
        counter.add(table.ids, np.zeros(len(table.ids), np.int64))  # every table id is a candidate
    return select_vocabulary(counter.counts(), schema.id_vocab[role]), specs, table


def build_encoders(schema: DatasetSchema, scanned: ScanResult) -> Encoders:
    """Id vocabularies (interaction counts plus side-table ids), side tables and the FeatureSpec."""
    user_vocab, user_specs, user_table = _side(schema, "user", scanned.families["user_id"], scanned.user_counts)
    item_vocab, item_specs, item_table = _side(schema, "item", scanned.families["item_id"], scanned.item_counts)
    user_options, item_options = schema.id_vocab["user_id"], schema.id_vocab["item_id"]
    item_values = as_python_vocabulary(item_vocab)
    features = [CategoricalFeature("user_id", "user", as_python_vocabulary(user_vocab), user_options.embedding_dim,
                                   user_options.hash_buckets),
                CategoricalFeature("item_id", "item", item_values, item_options.embedding_dim,
                                   item_options.hash_buckets),
                *user_specs, *item_specs]
    if schema.history_length:
        features.append(SequenceFeature(HISTORY_FEATURE, "user", item_values, schema.history_length,
                                        hash_buckets=item_options.hash_buckets))
    return Encoders(VocabularyEncoder(user_vocab, user_options.hash_buckets),
                    VocabularyEncoder(item_vocab, item_options.hash_buckets), user_table, item_table,
                    FeatureSpec(tuple(features)))


def time_cuts(schema: DatasetSchema, scanned: ScanResult) -> tuple[float, float | None]:
    """(test cut, valid cut or None) of a time split: exact quantiles of every timestamp."""
    def quantile(q: float) -> float:
        return streamed_quantile(lambda: stream_times(schema), scanned.num_rows, scanned.time_min,
                                 scanned.time_max, q)
    split = schema.split
    valid = quantile(1 - split.test_fraction - split.valid_fraction) if split.valid_fraction else None
    return quantile(1 - split.test_fraction), valid


# ============================================================================= the memory budget
@dataclasses.dataclass(frozen=True)
class Budget:
    """Row counts that keep each stage within its share of the memory budget."""

    num_buckets: int
    max_bucket_rows: int
    partition_flush_rows: int
    chunk_rows: int
    row_group_rows: int

    @classmethod
    def plan(cls, options: PrepareOptions, num_rows: int, bucket_row_bytes: int, example_row_bytes: int,
             open_shards: int) -> "Budget":
        budget = options.memory_budget_mb * (1 << 20)
        max_bucket_rows = options.max_bucket_rows or max(1_000, int(0.4 * budget / (3 * bucket_row_bytes + 48)))
        num_buckets = max(1, math.ceil(num_rows / (0.8 * max_bucket_rows)))
        low, high = ROW_GROUP_LIMITS
        return cls(num_buckets, max_bucket_rows,
                   partition_flush_rows=max(256, int(0.15 * budget / bucket_row_bytes / num_buckets)),
                   chunk_rows=max(1_024, int(0.15 * budget / (3 * example_row_bytes))),
                   row_group_rows=int(np.clip(0.3 * budget / example_row_bytes / max(1, open_shards), low, high)))


def example_row_bytes(spec: FeatureSpec, num_reserved: int) -> int:
    """Bytes of one encoded example (4 per scalar, 4 per sequence position)."""
    return 4 * (sum(getattr(f, "max_length", 1) for f in spec.features) + num_reserved)


# ============================================================================= partition
def _bucket_schema(families: dict[str, str], schema: DatasetSchema) -> pa.Schema:
    kind = {"integer": pa.int64(), "string": pa.string()}
    fields = [("user", kind[families["user_id"]]), ("time", pa.int64()), ("row", pa.int64()),
              ("item", kind[families["item_id"]]), ("user_code", pa.int32()), ("item_code", pa.int32()),
              ("user_row", pa.int64()), ("item_row", pa.int64())]
    fields += [(column, pa.float32()) for column in _reserved_columns(schema)]
    return pa.schema(fields)


def _reserved_columns(schema: DatasetSchema) -> list[str]:
    columns = [LABEL] if schema.labels else []
    columns += [objective_label(label.name) for label in schema.labels]
    return columns + ([SAMPLE_WEIGHT] if schema.columns["weight"] else [])


def partition(schema: DatasetSchema, scanned: ScanResult, encoders: Encoders, directory: str, budget: Budget,
              batch_rows: int) -> tuple[list, dict[str, int]]:
    """Streams the interactions into user-hashed bucket files; (bucket files, in-vocabulary counts)."""
    bucket_schema = _bucket_schema(scanned.families, schema)
    partitioner = BucketPartitioner(directory, bucket_schema, "user", budget.num_buckets,
                                    budget.partition_flush_rows)
    in_vocabulary = {"user_id": 0, "item_id": 0}
    for _, rows in stream_rows(schema, scanned.families, batch_rows):
        user_codes, users_found = encoders.users.encode(rows.users)
        item_codes, items_found = encoders.items.encode(rows.items)
        in_vocabulary["user_id"] += int(users_found.sum())
        in_vocabulary["item_id"] += int(items_found.sum())
        columns = {"user": rows.users, "time": rows.time, "row": rows.row, "item": rows.items,
                   "user_code": user_codes, "item_code": item_codes,
                   "user_row": encoders.user_table.rows_of(rows.users),
                   "item_row": encoders.item_table.rows_of(rows.items)}
        if schema.labels:
            columns[LABEL] = rows.labels[schema.labels[0].name]
            columns.update({objective_label(name): values for name, values in rows.labels.items()})
        if rows.weight is not None:
            columns[SAMPLE_WEIGHT] = rows.weight
        partitioner.add(pa.record_batch([columns[f.name] for f in bucket_schema], schema=bucket_schema))
    return partitioner.close(), in_vocabulary


# ============================================================================= per sorted bucket
class BucketWriter:
    """Turns sorted buckets into examples and queries, and counts training rows per item."""

    def __init__(self, schema: DatasetSchema, encoders: Encoders, directory: str, budget: Budget,
                 options: PrepareOptions, cuts: tuple[float, float | None], num_rows: int, num_users: int):
        self.schema, self.encoders, self.budget, self.cuts = schema, encoders, budget, cuts
        estimates = _part_estimates(schema, num_rows, num_users)
        self.examples = {part: ShardWriter(os.path.join(directory, PART_NAMES[part]), budget.row_group_rows,
                                           options.rows_per_shard, slots=shard_slots(estimates[part], options),
                                           seed=options.seed * 7 + part)
                         for part in (TRAIN, VALID, TEST)}
        self.queries = {part: ShardWriter(os.path.join(directory, f"{PART_NAMES[part]}_queries"),
                                          budget.row_group_rows, options.rows_per_shard)
                        for part in (VALID, TEST)}
        self.item_counts = np.zeros(encoders.spec.item_id.vocab_size, np.int64)
        self.reserved = _reserved_columns(schema)

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
        for start in range(0, len(parts), self.budget.chunk_rows):
            rows = np.arange(start, min(len(parts), start + self.budget.chunk_rows))
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

    def _write_queries(self, bucket, runs, parts, part, position, item_codes, writer) -> None:
        queries = held_out_queries(runs, parts, bucket["item"], part, (TRAIN,) if part == VALID else (TRAIN, VALID))
        features = self._user_side(bucket, queries.rows, position, item_codes)
        writer.write(arrays_to_table(features, {layout.RAW_ID_COLUMN: bucket["user"].take(pa.array(queries.rows)),
                                                layout.TARGETS_COLUMN: queries.targets,
                                                layout.EXCLUDE_COLUMN: queries.exclude}))

    def close(self) -> dict[str, dict[str, int]]:
        """``{directory name: {file name: rows}}`` of every non-empty part."""
        written = {PART_NAMES[p]: w.close() for p, w in self.examples.items()}
        written.update({f"{PART_NAMES[p]}_queries": w.close() for p, w in self.queries.items()})
        return {name: files for name, files in written.items() if files}


def shard_slots(rows: float, options: PrepareOptions) -> int:
    """Files of a part open at once (rows go to one at random): one per ``rows_per_shard`` rows, at most
    ``max_open_shards``; a file that reaches ``rows_per_shard`` rows is closed and the next one opened."""
    return int(min(options.max_open_shards, max(1, math.ceil(rows / options.rows_per_shard))))


def _part_estimates(schema: DatasetSchema, num_rows: int, num_users: int) -> dict[int, float]:
    split = schema.split
    if split.method == "leave_last_out":
        test, valid = min(num_rows, num_users * split.num_test), min(num_rows, num_users * split.num_valid)
    else:
        test, valid = num_rows * split.test_fraction, num_rows * split.valid_fraction
    return {TRAIN: max(1.0, num_rows - test - valid), VALID: valid, TEST: test}


# ============================================================================= the directory
def _side_file(table: EncodedSideTable, vocabulary: pa.Array, spec: FeatureSpec, side: str) -> pa.Table:
    """items.parquet / users.parquet: one row per vocabulary id, in code order."""
    rows = table.rows_of(vocabulary)
    arrays = {f"{side}_id": np.arange(len(vocabulary), dtype=np.int32) + 2, **table.gather(rows)}
    arrays = {name: arrays[name] for name in spec.names if name in arrays}
    extra = {layout.RAW_ID_COLUMN: vocabulary}
    for column, values in table.display.items():  # the defaults row of a display column is null
        extra[column] = pa.concat_arrays([values, pa.nulls(1, values.type)]).take(pa.array(rows))
    return arrays_to_table(arrays, extra)


def _side_stats(counts: pa.Table, table: EncodedSideTable, vocabulary_size: int, in_vocabulary: int,
                num_rows: int) -> dict[str, Any]:
    ids, id_counts = counts["values"].combine_chunks(), counts["counts"].to_numpy()
    without_row = int(id_counts[table.rows_of(ids) == table.num_rows].sum())
    return {"distinct_in_interactions": len(ids), "vocabulary": vocabulary_size, "table_rows": table.num_rows,
            "coverage": in_vocabulary / num_rows, "interactions_without_table_row": without_row / num_rows}


def _stats(schema: DatasetSchema, scanned: ScanResult, encoders: Encoders, written: dict, in_vocabulary: dict,
           item_counts: np.ndarray, cuts, budget: Budget, seconds: float) -> dict[str, Any]:
    spec, total = encoders.spec, scanned.num_rows
    return {
        "name": schema.name, "interactions": total,
        "rows": {name: sum(files.values()) for name, files in written.items()},
        "users": _side_stats(scanned.user_counts, encoders.user_table, encoders.users.size,
                             in_vocabulary["user_id"], total),
        "items": _side_stats(scanned.item_counts, encoders.item_table, encoders.items.size,
                             in_vocabulary["item_id"], total),
        "items_without_training_rows": int((item_counts[2:2 + encoders.items.size] == 0).sum()),
        "vocab_sizes": {f.name: f.vocab_size for f in spec.features
                        if hasattr(f, "vocabulary") or f.bucketized},
        "oov_rates": {"user_id": 1 - in_vocabulary["user_id"] / total, "item_id": 1 - in_vocabulary["item_id"] / total,
                      **encoders.user_table.oov_rates, **encoders.item_table.oov_rates},
        "time": {"min": scanned.time_min, "max": scanned.time_max, "test_cut": cuts[0], "valid_cut": cuts[1]},
        "buckets": budget.num_buckets, "max_bucket_rows": budget.max_bucket_rows, "seconds": round(seconds, 2)}


def _write_outputs(staging: str, schema: DatasetSchema, encoders: Encoders, item_counts: np.ndarray,
                   stats: dict) -> None:
    spec = encoders.spec
    with open(os.path.join(staging, layout.FEATURE_SPEC_FILE), "w") as handle:
        handle.write(spec.to_json())
    layout.write_json_atomic(os.path.join(staging, layout.STATS_FILE), stats)
    np.save(os.path.join(staging, layout.ITEM_COUNTS_FILE), item_counts)
    for side, encoder, table, name in (("item", encoders.items, encoders.item_table, layout.ITEMS_FILE),
                                       ("user", encoders.users, encoders.user_table, layout.USERS_FILE)):
        pq.write_table(_side_file(table, encoder.values, spec, side), os.path.join(staging, name))


def peak_rss_bytes() -> int:
    """This process's peak resident set size: VmHWM from /proc (exact after a fork + exec, where
    ``ru_maxrss`` still holds the parent's size), else ``getrusage``."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def prepare(schema: DatasetSchema | str, out: str, options: PrepareOptions = PrepareOptions(),
            overwrite: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Prepares ``schema`` (a DatasetSchema or a schema file) into ``out``; returns its stats."""
    schema = load_schema(schema) if isinstance(schema, (str, os.PathLike)) else schema
    started = time.perf_counter()
    def say(message: str) -> None:
        if verbose:
            peak = peak_rss_bytes() / (1 << 30)
            print(f"{message} after {time.perf_counter() - started:.1f} s (peak RSS {peak:.2f} GB)", flush=True)

    layout.check_replaceable(os.path.abspath(out), overwrite)
    scanned = scan(schema, options.batch_rows)
    say(f"scanned {scanned.num_rows:,} interactions")
    encoders = build_encoders(schema, scanned)
    say(f"vocabularies: {encoders.users.size:,} users, {encoders.items.size:,} items")
    cuts = time_cuts(schema, scanned) if schema.split.method == "time" else (None, None)
    reserved = _reserved_columns(schema)
    budget = Budget.plan(options, scanned.num_rows, len(_bucket_schema(scanned.families, schema)) * 8 + 16,
                         example_row_bytes(encoders.spec, len(reserved)),
                         open_shards=shard_slots(scanned.num_rows, options) + 4)
    with layout.staged_directory(out, overwrite) as staging:
        work = os.path.join(staging, "_buckets")
        buckets, in_vocabulary = partition(schema, scanned, encoders, work, budget, options.batch_rows)
        say(f"partitioned into {len(buckets)} buckets")
        writer = BucketWriter(schema, encoders, staging, budget, options, cuts, scanned.num_rows,
                              len(scanned.user_counts))
        for bucket in sorted_buckets(buckets, work, "user", ("user", "time", "row"), budget.max_bucket_rows):
            writer.add(bucket)
        written = writer.close()
        say(f"wrote {sum(sum(files.values()) for files in written.values()):,} rows")
        os.rmdir(work)
        stats = _stats(schema, scanned, encoders, written, in_vocabulary, writer.item_counts, cuts, budget,
                       time.perf_counter() - started)
        _write_outputs(staging, schema, encoders, writer.item_counts, stats)
        layout.write_manifest(staging, {
            "schema": dict(schema.raw), "schema_path": os.path.abspath(schema.path), "schema_base_dir": schema.base_dir,
            "sources": [layout.source_record(path) for path in scanned.rows_per_file],
            "parts": {name: {"rows": sum(files.values()), "files": {f"{name}/{f}": r for f, r in files.items()}}
                      for name, files in written.items()},
            "options": dataclasses.asdict(options)})
    say(f"prepared {out}")
    return stats
