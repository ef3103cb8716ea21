"""``tower-zoo describe``: what a dataset holds, from one streaming pass over its files.

Counts (interactions, distinct users and items, per-user activity), vocabulary sizes after the
schema's min_count / max_size, coverage (the share of interactions whose id is in the vocabulary),
OOV rates of the side features, the item popularity curve (optionally plotted, log-log, with
matplotlib), and how concentrated it is (the share of interactions on the top 1% of items).
For a prepared directory, its recorded stats are shown instead.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from tower_zoo.data.prepare.encoders import build_encoders
from tower_zoo.data.prepare.interaction_rows import scan
from tower_zoo.data.schema.dataset_schema import DatasetSchema
from tower_zoo.data.store.manifest import MANIFEST_FILE
from tower_zoo.fileio import write_bytes_atomic


def _in_vocabulary(counts, encoder) -> int:
    """Interactions whose id is in the vocabulary, from (values, counts)."""
    found = encoder.positions(counts["values"].combine_chunks()) >= 0
    return int(counts["counts"].to_numpy()[found].sum())


def _activity(counts: np.ndarray) -> dict[str, float]:
    quantiles = np.quantile(counts, [0.5, 0.9, 0.99]) if len(counts) else np.zeros(3)
    return {"min": int(counts.min(initial=0)), "median": float(quantiles[0]), "p90": float(quantiles[1]),
            "p99": float(quantiles[2]), "max": int(counts.max(initial=0))}


def describe_schema(schema: DatasetSchema) -> dict[str, Any]:
    """Statistics of the dataset ``schema`` describes (one pass over the interactions)."""
    scanned = scan(schema)
    encoders = build_encoders(schema, scanned)
    item_counts = np.sort(scanned.item_counts["counts"].to_numpy())[::-1]
    user_counts = scanned.user_counts["counts"].to_numpy()
    top = max(1, len(item_counts) // 100)
    description = {
        "name": schema.name, "interactions": scanned.num_rows, "files": len(scanned.rows_per_file),
        "users": {"distinct": len(user_counts), "vocabulary": encoders.users.size,
                  "table_rows": encoders.user_table.num_rows,
                  "coverage": _in_vocabulary(scanned.user_counts, encoders.users) / scanned.num_rows,
                  "interactions_per_user": _activity(user_counts)},
        "items": {"distinct": len(item_counts), "vocabulary": encoders.items.size,
                  "table_rows": encoders.item_table.num_rows,
                  "coverage": _in_vocabulary(scanned.item_counts, encoders.items) / scanned.num_rows,
                  "interactions_per_item": _activity(item_counts),
                  "share_of_top_1_percent": float(item_counts[:top].sum() / scanned.num_rows)},
        "vocab_sizes": {f.name: f.vocab_size for f in encoders.spec.features
                        if hasattr(f, "vocabulary") or f.bucketized},
        "oov_rates": {**encoders.user_table.oov_rates, **encoders.item_table.oov_rates},
        "time": {"min": scanned.time_min, "max": scanned.time_max},
    }
    description["item_popularity"] = item_counts  # int64 [distinct items]: interactions per item, descending
    return description


def format_description(description: dict[str, Any]) -> str:
    """The description as a few readable lines."""
    lines = [f"{description['name']}: {description['interactions']:,} interactions in {description['files']} file(s)"]
    for side in ("users", "items"):
        info = description[side]
        activity = info.get(f"interactions_per_{side[:-1]}", {})
        lines.append(f"{side}: {info['distinct']:,} distinct, vocabulary {info['vocabulary']:,}, table rows "
                     f"{info['table_rows']:,}, coverage {info['coverage']:.2%}; interactions per {side[:-1]}: median "
                     f"{activity.get('median', 0):g}, p90 {activity.get('p90', 0):g}, max {activity.get('max', 0):,}")
    if "share_of_top_1_percent" in description["items"]:
        lines.append(f"the top 1% of items hold {description['items']['share_of_top_1_percent']:.1%} of the "
                     "interactions")
    lines.append("vocabulary sizes: " + ", ".join(f"{k} {v:,}" for k, v in description["vocab_sizes"].items()))
    oov = {k: v for k, v in description["oov_rates"].items() if v}
    lines.append("OOV rates: " + (", ".join(f"{k} {v:.2%}" for k, v in oov.items()) if oov else "none"))
    return "\n".join(lines)


def check_plot_path(path: str) -> None:
    """ValueError naming ``--plot path`` unless it is a .png file in an existing directory (checked before the
    scan, so a bad path costs no pass over the data)."""
    if not path.lower().endswith(".png"):
        raise ValueError(f"--plot {path!r}: the plot is a PNG image; give a file name ending in .png")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"--plot {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"--plot {path!r} is a directory; give a file name ending in .png")


def plot_popularity(item_counts: np.ndarray, path: str, title: str) -> None:
    """Interactions per item against popularity rank (log-log), as a PNG written atomically to exactly
    ``path``; needs matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ValueError("--plot needs matplotlib (pip install matplotlib)") from err
    check_plot_path(path)
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    ranks = np.arange(1, len(item_counts) + 1)
    axes.loglog(ranks, np.maximum(item_counts, 1e-1), linewidth=1)
    axes.set_xlabel("item popularity rank")
    axes.set_ylabel("interactions")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    write_bytes_atomic(path, image.getvalue())


def describe(data: str, plot: str | None = None, data_dir: str | None = None) -> str:
    """``tower-zoo describe --data``: a schema file, a built-in dataset name, or a prepared directory."""
    from tower_zoo.data.builtin.resolve import check_data_dir, resolve_schema

    check_data_dir(data, data_dir)
    if os.path.isfile(os.path.join(data, MANIFEST_FILE)):
        from tower_zoo.data.read.prepared import PreparedDataset
        if plot:
            raise ValueError("--plot needs the source data (a schema), not a prepared directory")
        return PreparedDataset.open(data).describe()
    if plot:
        check_plot_path(plot)
    description = describe_schema(resolve_schema(data, data_dir))
    if plot:
        plot_popularity(description["item_popularity"], plot, f"{description['name']}: item popularity")
    return format_description(description)
