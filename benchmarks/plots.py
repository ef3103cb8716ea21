"""Plot helpers shared by the benchmark scripts."""

from __future__ import annotations


def labelled_scatter(points: dict[str, tuple[float, float]], path: str, xlabel: str, ylabel: str, title: str,
                     log_x: bool = False) -> None:
    """One labelled dot per entry of ``points`` ({label: (x, y)}), written as a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, (x, y) in points.items():
        axis.scatter(x, y)
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
