"""A synthetic dataset with the shape of a real catalogue, written as Parquet shards in bounded memory.

* Items: Zipf popularity with exponent ``item_exponent`` (≈ 1) over the warm items; the last
  ``cold_item_fraction`` of the catalogue never appears in an interaction (cold items, present in the
  item table only). Each user belongs to one of ``num_clusters`` taste clusters; with probability
  ``signal`` an interaction's item is drawn from the cluster's own popularity order (an affine
  permutation of the popularity ranks, so no per-cluster table is stored), else from the global one.
* Users: power-law activity, P(user of rank r) ∝ r^-``user_exponent`` (most users have few
  interactions, a few have thousands; many of the table's users have none).
* Timestamps: uniform over ``time_span_seconds``; rows are written in random order (not sorted).
* Side features: users ``age`` (bucketized by quantiles), ``country``, ``device``; items
  ``category``, ``price`` (standardized), ``tags`` (multi-valued, "|"-separated), ``title`` (display).
* Rating 1-5, higher for in-cluster items; label ``like`` = rating >= 4.

Everything is generated ``chunk_rows`` rows at a time (interaction files ``rows_per_file`` rows each),
so memory does not grow with ``num_interactions``; the only full-size arrays are the two popularity
CDFs (8 bytes per user and per item).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

COUNTRIES = 60
CATEGORIES = 300
TAGS = 2_000
DEVICES = ("ios", "android", "web", "tv")


@dataclasses.dataclass(frozen=True)
class ScaleConfig:
    num_interactions: int = 1_000_000
    num_users: int = 1_000_000
    num_items: int = 1_000_000
    rows_per_file: int = 1_000_000
    chunk_rows: int = 500_000
    item_exponent: float = 1.0
    user_exponent: float = 0.5
    cold_item_fraction: float = 0.02
    num_clusters: int = 16
    signal: float = 0.5
    history_length: int = 50
    time_span_seconds: int = 365 * 86_400
    seed: int = 0


def zipf_cdf(size: int, exponent: float) -> np.ndarray:
    """float64 [size]: the CDF of P(rank r) ∝ (r + 1)^-exponent."""
    weights = np.arange(1, size + 1, dtype=np.float64) ** -exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _affine_permutation(ranks: np.ndarray, size: int, cluster: np.ndarray) -> np.ndarray:
    """A bijection of [0, size) per cluster: (rank * a + b_c) mod size, with a prime a coprime with size
    (it scatters neighbouring ranks) and a per-cluster offset b_c (each cluster's own popular items)."""
    multiplier = next(p for p in (1_000_003, 998_244_353, 1_000_000_007) if math.gcd(p, size) == 1) % size
    offset = (cluster.astype(np.int64) * 7_777_777) % size
    return (ranks.astype(np.int64) * multiplier + offset) % size


def _interactions(config: ScaleConfig, rng: np.random.Generator, user_cdf: np.ndarray, item_cdf: np.ndarray,
                  rows: int) -> pa.Table:
    user_rank = np.minimum(np.searchsorted(user_cdf, rng.random(rows)), config.num_users - 1)
    users = _affine_permutation(user_rank, config.num_users, np.zeros(rows, np.int64)) + 1  # spread heavy users
    clusters = (users * 2_654_435_761) % config.num_clusters
    in_cluster = rng.random(rows) < config.signal
    warm = len(item_cdf)
    item_rank = np.minimum(np.searchsorted(item_cdf, rng.random(rows)), warm - 1)
    items = _affine_permutation(item_rank, warm, np.where(in_cluster, clusters + 1, 0)) + 1
    rating = np.where(in_cluster, rng.integers(3, 6, rows), rng.integers(1, 6, rows)).astype(np.float32)
    times = 1_600_000_000 + rng.integers(0, config.time_span_seconds, rows)
    return pa.table({"user_id": users, "item_id": items, "timestamp": times, "rating": rating})


def _users(config: ScaleConfig, rng: np.random.Generator, first: int, count: int) -> pa.Table:
    ids = np.arange(first, first + count, dtype=np.int64)
    country = np.minimum(rng.zipf(1.5, count), COUNTRIES)
    return pa.table({"user_id": ids, "age": rng.integers(15, 75, count),
                     "country": pa.array([f"c{c:02d}" for c in country]),
                     "device": pa.array(np.asarray(DEVICES, dtype=object)[rng.integers(0, len(DEVICES), count)])})


def _items(config: ScaleConfig, rng: np.random.Generator, first: int, count: int) -> pa.Table:
    ids = np.arange(first, first + count, dtype=np.int64)
    tag_counts = rng.integers(1, 5, count)
    tags = rng.zipf(1.3, tag_counts.sum()) % TAGS
    bounds = np.cumsum(tag_counts)[:-1]
    joined = ["|".join(f"t{t}" for t in chunk) for chunk in np.split(tags, bounds)]
    return pa.table({"item_id": ids, "category": pa.array([f"k{c}" for c in ids % CATEGORIES]),
                     "price": np.round(rng.lognormal(3.0, 1.0, count), 2), "tags": pa.array(joined),
                     "title": pa.array([f"item {i}" for i in ids])})


def _write_table_in_chunks(path: str, make_chunk, total: int, chunk_rows: int) -> None:
    writer = None
    for first in range(0, total, chunk_rows):
        table = make_chunk(first + 1, min(chunk_rows, total - first))
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def scale_schema(config: ScaleConfig) -> dict:
    """The schema (as a mapping) of a directory written by ``write_scale_dataset``."""
    return {"name": f"synthetic-scale-{config.num_interactions}",
            "interactions": "interactions/*.parquet",
            "users": {"path": "users.parquet", "id": "user_id"},
            "items": {"path": "items.parquet", "id": "item_id", "display": ["title"]},
            "columns": {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp", "rating": "rating"},
            "labels": {"like": "rating >= 4"},
            "features": {"user": {"age": {"kind": "numeric", "num_buckets": 8},
                                  "country": {"kind": "categorical"}, "device": {"kind": "categorical"}},
                         "item": {"category": {"kind": "categorical"}, "price": {"kind": "numeric"},
                                  "tags": {"kind": "multi_valued", "separator": "|", "max_length": 4,
                                           "min_count": 2}}},
            "history_length": config.history_length,
            "split": {"method": "leave_last_out", "num_test": 1, "num_valid": 0}}


def write_scale_dataset(directory: str | os.PathLike, config: ScaleConfig = ScaleConfig()) -> str:
    """Writes interactions (Parquet shards), users.parquet, items.parquet and schema.yaml into
    ``directory``; returns the schema file's path."""
    directory = os.fspath(directory)
    os.makedirs(os.path.join(directory, "interactions"), exist_ok=True)
    rng = np.random.default_rng(config.seed)
    user_cdf = zipf_cdf(config.num_users, config.user_exponent)
    warm_items = max(1, int(config.num_items * (1 - config.cold_item_fraction)))
    item_cdf = zipf_cdf(warm_items, config.item_exponent)
    for file_index, first in enumerate(range(0, config.num_interactions, config.rows_per_file)):
        rows_in_file = min(config.rows_per_file, config.num_interactions - first)
        path = os.path.join(directory, "interactions", f"part-{file_index:05d}.parquet")
        _write_table_in_chunks(path, lambda _, count: _interactions(config, rng, user_cdf, item_cdf, count),
                               rows_in_file, config.chunk_rows)
    _write_table_in_chunks(os.path.join(directory, "users.parquet"),
                           lambda first, count: _users(config, rng, first, count), config.num_users, config.chunk_rows)
    _write_table_in_chunks(os.path.join(directory, "items.parquet"),
                           lambda first, count: _items(config, rng, first, count), config.num_items, config.chunk_rows)
    schema_path = os.path.join(directory, "schema.yaml")
    with open(schema_path, "w") as handle:
        yaml.safe_dump(scale_schema(config), handle, sort_keys=False)
    return schema_path
