"""Plot helpers shared by the benchmark scripts."""

from __future__ import annotations

import math


def labelled_scatter(points: dict[str, tuple], path: str, xlabel: str, ylabel: str, title: str,
                     log_x: bool = False) -> None:
    """One labelled dot per entry of ``points`` ({label: (x, y)} or (x, y, y half-width) for a 95% interval
    drawn as an error bar), written as a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, point in points.items():
        x, y = point[0], point[1]
        error = point[2] if len(point) > 2 and math.isfinite(point[2]) else None
        axis.errorbar(x, y, yerr=error, fmt="o", capsize=3, markersize=4)
        axis.annotate(label, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if log_x:
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def grouped_intervals(groups: dict[str, dict[str, tuple[float, float]]], path: str, ylabel: str, title: str) -> None:
    """One marker with a 95% error bar per (group, label): ``groups`` = {group: {label: (mean, half-width)}};
    labels along x, one colour per group, written as a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for rows in groups.values() for label in rows))
    figure, axis = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(groups), 1)
    for g, (group, rows) in enumerate(groups.items()):
        xs = [i + (g - (len(groups) - 1) / 2) * width for i, label in enumerate(labels) if label in rows]
        means = [rows[label][0] for label in labels if label in rows]
        errors = [rows[label][1] if math.isfinite(rows[label][1]) else 0.0 for label in labels if label in rows]
        axis.errorbar(xs, means, yerr=errors, fmt="o", capsize=3, markersize=4, label=group)
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
