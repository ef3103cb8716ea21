"""Refresh ``benchmarks/baselines.json`` from the seeded results of ``retrieval.py`` and ``preranking.py``.

    python -m benchmarks.update_baselines [--benchmarks retrieval,preranking] [--results benchmarks/results]

Each model's expected value is its mean over the run's seeds; its tolerance is the larger of a floor
(--floor: 0.02 for Recall@50, 0.01 for AUC by default) and the half-width of that mean's 95% interval, so a later
run is flagged only when its mean falls below by more than the seeds' own noise.
"""

from __future__ import annotations

import json
import math
import os

from absl import app, flags

from benchmarks.baselines import BASELINES
from tower_zoo.fileio import write_json_atomic

flags.DEFINE_list("benchmarks", ["retrieval", "preranking"], "Which results to take.")
flags.DEFINE_string("results", "benchmarks/results", "Where retrieval.json / preranking.json are.")
FLAGS = flags.FLAGS

METRIC = {"retrieval": ("recall@50", 0.02), "preranking": ("auc", 0.01)}


def baseline_entry(results: dict, metric: str, floor: float) -> dict:
    """``{"epochs", "metric", "models": {label: {metric: mean, "tolerance": ...}}}`` from a results JSON."""
    models = {}
    for label, record in results["models"].items():
        if metric not in record:
            continue
        summary = record[metric]
        spread = summary["ci"] if math.isfinite(summary["ci"]) else 0.0
        models[label] = {metric: round(summary["mean"], 4), "tolerance": round(max(floor, spread), 4)}
    if not models:
        raise ValueError(f"no row of the results has {metric!r}")
    return {"epochs": results["epochs"], "metric": metric, "seeds": results["seeds"], "models": models}


def main(argv):
    del argv
    with open(BASELINES) as handle:
        baselines = json.load(handle)
    for name in FLAGS.benchmarks:
        with open(os.path.join(FLAGS.results, f"{name}.json")) as handle:
            results = json.load(handle)
        dataset = results.get("dataset", "movielens-100k")
        metric, floor = METRIC[name]
        baselines.setdefault(dataset, {})[name] = baseline_entry(results, metric, floor)
    baselines["_about"] = ("Expected mean over seeds and tolerance per model for each benchmark script on this machine "
                           "(python -m benchmarks.update_baselines); a run whose mean falls more than `tolerance` "
                           "below is flagged as a regression.")
    write_json_atomic(BASELINES, baselines)


if __name__ == "__main__":
    app.run(main)
