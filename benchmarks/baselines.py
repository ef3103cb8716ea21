"""Regression check of benchmark results against ``benchmarks/baselines.json`` (no flags: importable by tests)."""

from __future__ import annotations

import json
import os

BASELINES = os.path.join(os.path.dirname(__file__), "baselines.json")


def regressions(rows, dataset, epochs, path=BASELINES):
    """Lines naming each model whose Recall@50 fell below its baseline minus tolerance."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        baselines = json.load(handle).get(dataset, {}).get(str(epochs), {})
    found = []
    for label, expected in baselines.items():
        if label in rows and rows[label]["recall@50"] < expected["recall@50"] - expected["tolerance"]:
            found.append(f"REGRESSION {label}: Recall@50 {rows[label]['recall@50']:.4f} < baseline "
                         f"{expected['recall@50']:.4f} - {expected['tolerance']}")
    return found
