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
import math
import numbers
import os
import resource
import time
from typing import Any

import numpy as np
import pyarrow as pa

from tower_zoo.data.builtin.resolve import resolve_schema
from tower_zoo.data.prepare.bucket_writer import BucketWriter, ShardLayout, reserved_columns
from tower_zoo.data.prepare.encoders import Encoders, build_encoders
from tower_zoo.data.prepare.external_sort import BucketFile, BucketPartitioner, sorted_buckets
from tower_zoo.data.prepare.interaction_rows import ScanResult, scan, stream_rows, stream_times
from tower_zoo.data.prepare.prepare_outputs import prepared_stats, write_outputs
from tower_zoo.data.prepare.split_assign import TEST, TRAIN, VALID, streamed_quantile
from tower_zoo.data.schema.dataset_schema import DatasetSchema
from tower_zoo.data.schema.files import DEFAULT_BATCH_ROWS, source_files
from tower_zoo.data.schema.keys import LABEL, SAMPLE_WEIGHT, objective_label
from tower_zoo.data.schema.spec import FeatureSpec
from tower_zoo.data.store import manifest as layout
from tower_zoo.data.store import replace
from tower_zoo.data.store.prepared_lock import prepared_lock

ROW_GROUP_LIMITS = (1_024, 131_072)
# The smallest value of each PrepareOptions field (max_bucket_rows may also be None).
OPTION_MINIMUMS = {"memory_budget_mb": 16, "rows_per_shard": 1, "max_open_shards": 1, "batch_rows": 1, "seed": 0,
                   "max_bucket_rows": 1}


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

    def __post_init__(self):
        """TypeError / ValueError naming the field and the value of one that is not an integer in range."""
        for name, minimum in OPTION_MINIMUMS.items():
            value = getattr(self, name)
            if value is None and name == "max_bucket_rows":
                continue
            if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
                raise TypeError(f"PrepareOptions.{name} must be an integer, got {value!r} ({type(value).__name__})")
            if value < minimum:
                raise ValueError(f"PrepareOptions.{name} must be >= {minimum}, got {value}")
            object.__setattr__(self, name, int(value))


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
    fields += [(column, pa.float32()) for column in reserved_columns(schema)]
    return pa.schema(fields)


def partition(schema: DatasetSchema, scanned: ScanResult, encoders: Encoders, directory: str, budget: Budget,
              batch_rows: int) -> tuple[list[BucketFile], dict[str, int]]:
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


def _part_estimates(schema: DatasetSchema, num_rows: int, num_users: int) -> dict[int, float]:
    """Rows each part will have, about (before the split is known)."""
    split = schema.split
    if split.method == "leave_last_out":
        test, valid = min(num_rows, num_users * split.num_test), min(num_rows, num_users * split.num_valid)
    else:
        test, valid = num_rows * split.test_fraction, num_rows * split.valid_fraction
    return {TRAIN: max(1.0, num_rows - test - valid), VALID: valid, TEST: test}


def shard_slots(rows: float, options: PrepareOptions) -> int:
    """Files of a part open at once (rows go to one at random): one per ``rows_per_shard`` rows, at most
    ``max_open_shards``; a file that reaches ``rows_per_shard`` rows is closed and the next one opened."""
    return int(min(options.max_open_shards, max(1, math.ceil(rows / options.rows_per_shard))))


def _check_unchanged(sources: list[dict[str, Any]]) -> None:
    """ValueError naming the first source file that changed while prepare read it (several passes)."""
    for record in sources:
        if not os.path.isfile(record["path"]) or layout.source_record(record["path"]) != record:
            raise ValueError(f"{record['path']}: the file changed while it was being prepared; prepare again")


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


def check_prepare_arguments(schema: Any, out: Any, options: Any) -> None:
    """TypeError naming the argument of ``prepare`` that is not of its type, and the value."""
    for name, value, expected, what in (("schema", schema, (DatasetSchema, str, os.PathLike),
                                         "a DatasetSchema or a schema file path"),
                                        ("out", out, (str, os.PathLike), "a directory path"),
                                        ("options", options, PrepareOptions, "a PrepareOptions")):
        if not isinstance(value, expected):
            raise TypeError(f"prepare: {name} must be {what}, got {value!r} ({type(value).__name__})")


def prepare(schema: DatasetSchema | str, out: str, options: PrepareOptions = PrepareOptions(),
            overwrite: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Prepares ``schema`` (a DatasetSchema or a schema file) into ``out``; returns its stats. ``out`` is held
    under its exclusive lock throughout (``tower_zoo.data.store.prepared_lock``); an existing ``out`` is replaced only
    with ``overwrite`` and only when it is a complete prepared dataset (``tower_zoo.data.store.replace``)."""
    check_prepare_arguments(schema, out, options)
    schema = resolve_schema(os.fspath(schema)) if isinstance(schema, (str, os.PathLike)) else schema
    out = os.path.abspath(out)
    replace.check_location(out)
    sources = [layout.source_record(path) for path in source_files(schema)]
    protected = [("the schema file", schema.path), *(("the source file", record["path"]) for record in sources)]
    with prepared_lock(out, exclusive=True):
        replace.repair(out)
        replace.check_replaceable(out, overwrite, protected)
        return _prepare(schema, out, sources, options, overwrite, protected, verbose)


def _prepare(schema: DatasetSchema, out: str, sources: list[dict[str, Any]], options: PrepareOptions,
             overwrite: bool, protected: list[tuple[str, str]], verbose: bool) -> dict[str, Any]:
    """``prepare`` under the lock: the three passes of the module docstring, into a staged directory."""
    started = time.perf_counter()

    def say(message: str) -> None:
        if verbose:
            peak = peak_rss_bytes() / (1 << 30)
            print(f"{message} after {time.perf_counter() - started:.1f} s (peak RSS {peak:.2f} GB)", flush=True)

    scanned = scan(schema, options.batch_rows)
    say(f"scanned {scanned.num_rows:,} interactions")
    encoders = build_encoders(schema, scanned)
    say(f"vocabularies: {encoders.users.size:,} users, {encoders.items.size:,} items")
    cuts = time_cuts(schema, scanned) if schema.split.method == "time" else (None, None)
    slots = {part: shard_slots(rows, options) for part, rows in
             _part_estimates(schema, scanned.num_rows, len(scanned.user_counts)).items()}
    budget = Budget.plan(options, scanned.num_rows, len(_bucket_schema(scanned.families, schema)) * 8 + 16,
                         example_row_bytes(encoders.spec, len(reserved_columns(schema))),
                         open_shards=sum(slots.values()) + 2)
    shard_layout = ShardLayout(budget.chunk_rows, budget.row_group_rows, options.rows_per_shard, slots, options.seed)
    with replace.staged_directory(out, overwrite, protected=protected) as staging:
        work = os.path.join(staging, "_buckets")
        buckets, in_vocabulary = partition(schema, scanned, encoders, work, budget, options.batch_rows)
        say(f"partitioned into {len(buckets)} buckets")
        writer = BucketWriter(schema, encoders, staging, shard_layout, cuts)
        for bucket in sorted_buckets(buckets, work, "user", ("user", "time", "row"), budget.max_bucket_rows):
            writer.add(bucket)
        written = writer.close()
        say(f"wrote {sum(sum(files.values()) for files in written.values()):,} rows")
        os.rmdir(work)
        stats = prepared_stats(schema, scanned, encoders, written, in_vocabulary, writer.item_counts, cuts,
                               {"buckets": len(buckets), "max_bucket_rows": budget.max_bucket_rows},
                               time.perf_counter() - started)
        write_outputs(staging, encoders, writer.item_counts, stats)
        _check_unchanged(sources)
        layout.write_manifest(staging, {
            "schema": dict(schema.raw), "schema_path": os.path.abspath(schema.path), "schema_base_dir": schema.base_dir,
            "sources": sources,
            "parts": {name: {"rows": sum(files.values()), "files": {f"{name}/{f}": r for f, r in files.items()}}
                      for name, files in written.items()},
            "options": dataclasses.asdict(options)})
    say(f"prepared {out}")
    return stats
