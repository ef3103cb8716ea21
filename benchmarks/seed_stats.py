"""Multi-seed pre-ranking runs on MovieLens-100K and their statistics (mean ± 95% interval, paired differences).

Protocol of ``benchmarks/preranking.py``: every rating is an exposure, label like = rating >= 4, a global
time split (latest 20% test, the 10% before validation); each run trains pointwise up to ``epochs`` epochs
and keeps the epoch with the best validation AUC (patience 2), then reports test AUC and GAUC.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from benchmarks import stats
from tower_zoo.evaluation.preranking import PreRankingEvaluator, auc


def mean_interval(values) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval of the mean); half-width NaN for one value."""
    interval = stats.mean_interval(values)
    return interval.mean, interval.half_width


def paired_difference(a, b) -> dict[str, Any]:
    """Seed-paired difference a - b: mean, 95% half-width, and whether the interval excludes 0."""
    difference = stats.difference_interval(a, b)
    return {"mean": difference.mean, "half_width": difference.half_width,
            "within_noise": not difference.excludes_zero()}


def formatted(values, digits: int = 4) -> str:
    return stats.mean_interval(values).format(f".{digits}f")


def train_and_test(model, split, seed: int, fit: Callable, epochs: int = 8) -> dict[str, Any]:
    """``fit(model, train, labels, validate, seed, epochs) -> early-stopping result``; returns test AUC, GAUC and
    the best epoch."""
    evaluator = PreRankingEvaluator()
    valid, valid_like = split.examples("valid"), split.labels("valid")["like"]
    stopped = fit(model, split.examples("train"), split.labels("train")["like"],
                  lambda m: auc(valid_like, evaluator.predict(m, valid)), seed, epochs)
    metrics = evaluator.evaluate(model, split.examples("test"), split.labels("test")).metrics["like"]
    return {"auc": metrics["auc"], "gauc": metrics["gauc"], "best_epoch": stopped["best_epoch"]}


def comparison_lines(rows: dict[str, list[float]], pairs: list[tuple[str, str]]) -> list[str]:
    """Markdown lines for seed-paired AUC differences, each marked significant or within noise."""
    lines = ["| difference (test AUC, paired by seed) | mean ± 95% | |", "|---|---:|---|"]
    for a, b in pairs:
        diff = paired_difference(rows[a], rows[b])
        verdict = "within noise" if diff["within_noise"] else "significant"
        lines.append(f"| {a} − {b} | {diff['mean']:+.4f} ± {diff['half_width']:.4f} | {verdict} |")
    return lines


def best_seconds(function, repeats: int = 15) -> float:
    """The fastest of ``repeats`` timed calls after a warm-up (the least disturbed by other jobs on the CPU)."""
    function()  # trace / warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), function())
        times.append(time.perf_counter() - started)
    return float(np.min(times))
