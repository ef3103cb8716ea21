"""Per-candidate scoring cost of every pre-ranking model, measured alone (no training, nothing else running).

    python -m benchmarks.scoring_cost [--candidates 1682,20000] [--repeats 21] [--history 50]

What a pre-ranker pays per candidate does not depend on its trained weights, so each registered pre-ranking
model is built (untrained) for MovieLens-100K's feature spec and scores one user against C cached candidates
(the item corpus tiled to C): the user side computed once and the item side precomputed (what each model
caches offline, outside the timer), then ``pair_logits`` over all C in one compiled call; microseconds per
candidate, median of --repeats calls after a warm-up, with the interquartile range. Runs of
this file (run alone) are the quiet numbers the README quotes beside the per-seed column of ``preranking.py`` (which is
measured right after training, possibly beside other jobs). Writes scoring_cost.md / .json / .png.
"""

from __future__ import annotations

import json
import os

import tower_zoo  # noqa: I001  (legacy Keras before TensorFlow)

import numpy as np
from absl import app, flags

from benchmarks.costs import scoring_times_us
from tower_zoo.data import load_dataset, time_split

flags.DEFINE_list("candidates", ["1682", "20000"], "Candidates per request (the corpus tiled to this many).")
flags.DEFINE_integer("repeats", 21, "Timed calls per model and size (median reported).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
FLAGS = flags.FLAGS


def tiled(items: dict, count: int) -> dict:
    """The item feature arrays repeated (and cut) to ``count`` rows."""
    size = len(next(iter(items.values())))
    index = np.arange(count) % size
    return {name: np.asarray(values)[index] for name, values in items.items()}


def time_scoring(model, one_user: dict, items: dict, repeats: int) -> tuple[float, float, float]:
    """(median, first quartile, third quartile) microseconds per candidate over ``repeats`` calls."""
    q1, median, q3 = np.percentile(scoring_times_us(model, one_user, items, repeats), [25, 50, 75])
    return float(median), float(q1), float(q3)


def main(argv):
    del argv
    split = time_split(load_dataset("movielens-100k"), test_fraction=0.2, valid_fraction=0.1)
    one_user = {k: v[:1] for k, v in split.examples("test").items()}
    corpus = split.candidates()[0]
    sizes = [int(c) for c in FLAGS.candidates]
    names = tower_zoo.list_models(kind="pre_ranking") + ["dssm"]
    results = {}
    for name in names:
        model = tower_zoo.create_model(name, split.data.feature_spec)
        model.build_weights()
        results[name] = {}
        for size in sizes:
            median, q1, q3 = time_scoring(model, one_user, tiled(corpus, size), FLAGS.repeats)
            results[name][size] = {"median_us": median, "q1_us": q1, "q3_us": q3}
            print(f"{name:22s} {size:>7,} candidates: {median:.3f} µs/candidate (IQR {q1:.3f}–{q3:.3f})", flush=True)
    reference = {size: results["dssm"][size]["median_us"] for size in sizes}
    lines = [f"Per-candidate scoring cost, one user against C cached candidates (untrained models at their registered "
             f"defaults, MovieLens-100K features, history 50), median of {FLAGS.repeats} calls (IQR), this 2-core CPU, "
             "nothing else running; the last columns divide by DSSM's one dot product.", "",
             "| model | " + " | ".join(f"µs / candidate, C = {s:,}" for s in sizes) + " | "
             + " | ".join(f"× dssm, C = {s:,}" for s in sizes) + " |",
             "|---|" + "---:|" * (2 * len(sizes))]
    for name in names:
        cells = [f"{results[name][s]['median_us']:.3f} ({results[name][s]['q1_us']:.3f}–{results[name][s]['q3_us']:.3f})"
                 for s in sizes]
        cells += [f"{results[name][s]['median_us'] / reference[s]:.1f}×" for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "scoring_cost.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "scoring_cost.json"), "w") as handle:
        json.dump({"repeats": FLAGS.repeats, "candidates": sizes, "models": results}, handle, indent=2)
    plot(results, sizes[-1], os.path.join(FLAGS.out, "scoring_cost.png"))
    print("\n".join(lines))


def plot(results: dict, size: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(results, key=lambda n: results[n][size]["median_us"])
    medians = [results[n][size]["median_us"] for n in names]
    errors = [[m - results[n][size]["q1_us"] for n, m in zip(names, medians)],
              [results[n][size]["q3_us"] - m for n, m in zip(names, medians)]]
    figure, axis = plt.subplots(figsize=(7, 0.45 * len(names) + 1.2))
    axis.barh(names, medians, xerr=errors, color="#4c72b0")
    axis.set_xscale("log")
    axis.set_xlabel(f"µs per candidate, C = {size:,} (median, IQR; log scale)")
    axis.set_title("Pre-ranking scoring cost per candidate")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    app.run(main)
