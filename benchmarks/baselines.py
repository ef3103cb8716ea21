"""Regression check of benchmark results against ``benchmarks/baselines.json`` (no flags: importable by tests)."""

from __future__ import annotations

import json
import os

BASELINES = os.path.join(os.path.dirname(__file__), "baselines.json")


def regressions(rows, dataset: str, benchmark: str, path: str = BASELINES) -> list[str]:
    """Lines naming each model whose metric fell below its baseline minus tolerance.

    ``rows``: {model label: {metric: value}}; the baselines file names the metric per benchmark.
    """
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        entry = json.load(handle).get(dataset, {}).get(benchmark)
    if not entry:
        return []
    metric, found = entry["metric"], []
    for label, expected in entry["models"].items():
        if label in rows and rows[label][metric] < expected[metric] - expected["tolerance"]:
            found.append(f"REGRESSION {label}: {metric} {rows[label][metric]:.4f} < baseline "
                         f"{expected[metric]:.4f} - {expected['tolerance']}")
    return found
