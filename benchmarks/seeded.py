"""Benchmark rows measured over several seeds, written as mean ± 95% interval tables (no flags: importable).

``SeededRows`` collects one metrics dict per (row label, seed), then writes the Markdown table (every cell
``mean ± half-width``, see ``benchmarks.stats``), a column comparing each row to a reference row on one
metric (the paired difference over seeds, marked "(noise)" when its interval contains 0), the JSON record
(per metric: mean, ci, n, values per seed) and the points of a plot with error bars.
"""

from __future__ import annotations

from typing import Sequence

from benchmarks.stats import format_difference, format_interval, paired_difference, summarize


class SeededRows:
    """Rows of one benchmark table, each measured once per seed."""

    def __init__(self, seeds: Sequence[int]):
        self.seeds = list(seeds)
        self.runs: dict[str, dict[int, dict[str, float]]] = {}
        self.extras: dict[str, dict] = {}

    @classmethod
    def from_json(cls, seeds: Sequence[int], record: dict) -> "SeededRows":
        """The rows ``to_json`` wrote (each metric's per-seed ``values`` in seed order; other keys are extras),
        so a rerun of some rows can keep the others."""
        rows = cls(seeds)
        for label, entries in record.items():
            for metric, entry in entries.items():
                if isinstance(entry, dict) and "values" in entry:
                    if len(entry["values"]) != len(rows.seeds):
                        raise ValueError(f"row {label!r}, {metric}: {len(entry['values'])} values for seeds "
                                         f"{rows.seeds}")
                    for seed, value in zip(rows.seeds, entry["values"]):
                        rows.runs.setdefault(label, {}).setdefault(seed, {})[metric] = value
                else:
                    rows.extras.setdefault(label, {})[metric] = entry
        return rows

    def add(self, label: str, seed: int, metrics: dict[str, float]) -> None:
        """Records ``metrics`` (metric -> value) of row ``label`` under ``seed``."""
        if seed not in self.seeds:
            raise ValueError(f"seed {seed} is not one of {self.seeds}")
        self.runs.setdefault(label, {})[seed] = dict(metrics)

    def values(self, label: str, metric: str) -> list[float]:
        """The row's values of ``metric``, in seed order (only the seeds it ran)."""
        return [self.runs[label][s][metric] for s in self.seeds if s in self.runs[label]]

    def summary(self, label: str, metric: str) -> dict:
        return summarize(self.values(label, metric))

    def difference(self, label: str, reference: str, metric: str) -> dict | None:
        """Paired difference of ``label`` minus ``reference`` on ``metric`` over their common seeds."""
        common = [s for s in self.seeds if s in self.runs.get(label, {}) and s in self.runs.get(reference, {})]
        if len(common) < 2:
            return None
        return paired_difference([self.runs[label][s][metric] for s in common],
                                 [self.runs[reference][s][metric] for s in common])

    def markdown(self, columns: Sequence[tuple[str, str, int]], reference: str | None = None,
                 compare_metric: str | None = None, first_column: str = "model") -> list[str]:
        """Table lines. ``columns``: (metric key, header, digits). With ``reference``, a last column gives each
        row's paired difference to it on ``compare_metric``."""
        headers = [header for _, header, _ in columns]
        if reference is not None:
            name = next((header for metric, header, _ in columns if metric == compare_metric), compare_metric)
            headers.append(f"Δ {name} vs {reference}")
        lines = [f"| {first_column} | " + " | ".join(headers) + " |", "|---|" + "---:|" * len(headers)]
        for label in self.runs:
            cells = []
            for metric, _, digits in columns:
                cells.append(format_interval(self.summary(label, metric), digits) if self.has(label, metric) else "–")
            if reference is not None:
                difference = None if label == reference else self.difference(label, reference, compare_metric)
                cells.append("reference" if label == reference else
                             format_difference(difference) if difference else "–")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return lines

    def noise_summary(self, reference: str, metric: str) -> list[str]:
        """One sentence each: the rows whose difference to ``reference`` on ``metric`` is within noise, and
        those beyond it."""
        within, beyond = [], []
        for label in self.runs:
            if label == reference:
                continue
            difference = self.difference(label, reference, metric)
            if difference is not None:
                (within if difference["within_noise"] else beyond).append(f"{label} ({difference['mean']:+.4f})")
        return [f"Within noise of {reference} on {metric} (95% interval of the paired difference contains 0): "
                + (", ".join(within) or "none") + ".",
                "Beyond noise: " + (", ".join(beyond) or "none") + "."]

    def to_json(self) -> dict:
        """``{label: {metric: {"mean", "ci", "n", "values"}, ...extras}}``."""
        record = {}
        for label, by_seed in self.runs.items():
            metrics = sorted({m for values in by_seed.values() for m in values})
            record[label] = {m: self.summary(label, m) for m in metrics if self.has(label, m)}
            record[label].update(self.extras.get(label, {}))
        return record

    def means(self, metric: str) -> dict[str, dict[str, float]]:
        """``{label: {metric: mean}}``: what the regression check of ``benchmarks/baselines.py`` reads."""
        return {label: {metric: self.summary(label, metric)["mean"]} for label in self.runs
                if self.has(label, metric)}

    def has(self, label: str, metric: str) -> bool:
        """Whether every run of row ``label`` measured ``metric``."""
        return all(metric in values for values in self.runs[label].values())

    def points(self, x_metric: str, y_metric: str) -> dict[str, tuple[float, float, float]]:
        """``{label: (mean x, mean y, y half-width)}`` for ``benchmarks.plots.labelled_scatter`` (rows that
        measured both metrics)."""
        out = {}
        for label in self.runs:
            if self.has(label, x_metric) and self.has(label, y_metric):
                y = self.summary(label, y_metric)
                out[label] = (self.summary(label, x_metric)["mean"], y["mean"], y["ci"])
        return out
