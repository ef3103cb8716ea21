"""The tables and statistics of a prepared directory: items.parquet, users.parquet, feature_spec.json,
stats.json and item_counts.npy (the shards are written by ``bucket_writer``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tower_zoo.data.prepare.encoders import Encoders
from tower_zoo.data.prepare.interaction_rows import ScanResult
from tower_zoo.data.prepare.side_tables import EncodedSideTable
from tower_zoo.data.schema.dataset_schema import DatasetSchema
from tower_zoo.data.schema.spec import NUM_RESERVED, FeatureSpec
from tower_zoo.data.store import manifest as layout
from tower_zoo.data.store.shards import arrays_to_table


def side_file(table: EncodedSideTable, vocabulary: pa.Array, spec: FeatureSpec, side: str) -> pa.Table:
    """items.parquet / users.parquet: one row per vocabulary id, in code order."""
    rows = table.rows_of(vocabulary)
    arrays = {f"{side}_id": np.arange(len(vocabulary), dtype=np.int32) + NUM_RESERVED, **table.gather(rows)}
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


def prepared_stats(schema: DatasetSchema, scanned: ScanResult, encoders: Encoders, written: dict, in_vocabulary: dict,
           item_counts: np.ndarray, cuts, buckets: dict[str, int], seconds: float) -> dict[str, Any]:
    """stats.json: rows per part, users and items (vocabulary, coverage, table rows), OOV rates, time cuts."""
    spec, total = encoders.spec, scanned.num_rows
    return {
        "name": schema.name, "interactions": total,
        "rows": {name: sum(files.values()) for name, files in written.items()},
        "users": _side_stats(scanned.user_counts, encoders.user_table, encoders.users.size,
                             in_vocabulary["user_id"], total),
        "items": _side_stats(scanned.item_counts, encoders.item_table, encoders.items.size,
                             in_vocabulary["item_id"], total),
        "items_without_training_rows": int((item_counts[NUM_RESERVED:NUM_RESERVED + encoders.items.size] == 0).sum()),
        "vocab_sizes": {f.name: f.vocab_size for f in spec.features
                        if hasattr(f, "vocabulary") or f.bucketized},
        "oov_rates": {"user_id": 1 - in_vocabulary["user_id"] / total, "item_id": 1 - in_vocabulary["item_id"] / total,
                      **encoders.user_table.oov_rates, **encoders.item_table.oov_rates},
        "time": {"min": scanned.time_min, "max": scanned.time_max, "test_cut": cuts[0], "valid_cut": cuts[1]},
        **buckets, "seconds": round(seconds, 2)}


def write_outputs(staging: str, encoders: Encoders, item_counts: np.ndarray,
                   stats: dict) -> None:
    """feature_spec.json, stats.json, item_counts.npy, items.parquet and users.parquet into ``staging``."""
    spec = encoders.spec
    with open(os.path.join(staging, layout.FEATURE_SPEC_FILE), "w") as handle:
        handle.write(spec.to_json())
    layout.write_json_atomic(os.path.join(staging, layout.STATS_FILE), stats)
    np.save(os.path.join(staging, layout.ITEM_COUNTS_FILE), item_counts)
    for side, encoder, table, name in (("item", encoders.items, encoders.item_table, layout.ITEMS_FILE),
                                       ("user", encoders.users, encoders.user_table, layout.USERS_FILE)):
        pq.write_table(side_file(table, encoder.values, spec, side), os.path.join(staging, name))
