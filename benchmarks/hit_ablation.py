"""HIT ablations on MovieLens-100K exposures over seeds: generators and the multi-head MaxSim representer.

    python -m benchmarks.hit_ablation [--seeds 42,43,44] [--epochs 8] [--out benchmarks/results]

Protocol: ``benchmarks/seed_stats.py`` (that of ``benchmarks/preranking.py``, repeated per seed). Variants:
HIT as configured by default (4 user and 4 item heads of 16, target and non-target generators); without
generators; with only the target generator; with one head per side of width 64 (a single dot product of the
same width instead of MaxSim). Scoring cost per candidate: for one user against the cached 1,682-item
corpus (fastest of 15 calls, shared 2-core CPU). Writes hit_ablation.md, .json and .png to --out.
"""

from __future__ import annotations

import json
import os

import tower_zoo  # noqa: I001  (first: it selects legacy Keras before TensorFlow loads)

import tensorflow as tf
from absl import app, flags

from benchmarks.plots import labelled_scatter
from benchmarks.seed_stats import best_seconds, comparison_lines, formatted, mean_interval, train_and_test
from tower_zoo.data import movielens_100k, time_split
from tower_zoo.training import Trainer

flags.DEFINE_string("seeds", "42,43,44", "Comma-separated seeds.")
flags.DEFINE_integer("epochs", 8, "Most epochs per run (early stopping on validation AUC, patience 2).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
FLAGS = flags.FLAGS

VARIANTS = {"hit (4 x 4 heads, both generators)": {},
            "hit (no generators)": {"use_generators": False},
            "hit (target generator only)": {"use_non_target_generator": False},
            "hit (1 x 1 head of 64: one dot product)": {"user_heads": 1, "item_heads": 1, "head_dim": 64}}


def us_per_candidate(model, split) -> float:
    items, _ = split.candidates()
    one_user = {k: v[:1] for k, v in split.examples("test").items()}
    user, cached = model.user_embedding(one_user), model.item_embedding(items)
    score = tf.function(model.logits)
    return 1e6 * best_seconds(lambda: score(user, cached)) / len(next(iter(items.values())))


def _fit(model, train, labels, validate, seed, epochs):
    return Trainer(model, task="ranking", epochs=epochs, seed=seed).fit_with_early_stopping(
        train, validate, labels=labels, verbose=False)


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds.split(",")]
    split = time_split(movielens_100k(), test_fraction=0.2, valid_fraction=0.1)
    rows, cost = {}, {}
    for label, overrides in VARIANTS.items():
        for seed in seeds:
            model = tower_zoo.create_model("hit", split.data.feature_spec, **overrides)
            row = train_and_test(model, split, seed, _fit, FLAGS.epochs)
            rows.setdefault(label, []).append(row)
            print(f"seed {seed} {label:42s} AUC {row['auc']:.4f} GAUC {row['gauc']:.4f} epoch {row['best_epoch']}",
                  flush=True)
        cost[label] = us_per_candidate(model, split)
    aucs = {label: [r["auc"] for r in runs] for label, runs in rows.items()}
    lines = [f"HIT ablations on {split.data.name} (like = rating >= 4, time split), seeds {seeds}, up to "
             f"{FLAGS.epochs} epochs with early stopping; mean ± 95% interval over seeds.", "",
             "| variant | test AUC | test GAUC | µs / candidate | best epochs |", "|---|---:|---:|---:|---|"]
    for label, runs in rows.items():
        lines.append(f"| {label} | {formatted(aucs[label])} | {formatted([r['gauc'] for r in runs])} | "
                     f"{cost[label]:.3f} | {[r['best_epoch'] for r in runs]} |")
    full = next(iter(VARIANTS))
    lines += [""] + comparison_lines(aucs, [(full, other) for other in list(VARIANTS)[1:]])
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "hit_ablation.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "hit_ablation.json"), "w") as handle:
        json.dump({"seeds": seeds, "epochs": FLAGS.epochs, "runs": rows, "us_per_candidate": cost,
                   "auc": {k: dict(zip(("mean", "half_width"), mean_interval(v))) for k, v in aucs.items()}},
                  handle, indent=2)
    labelled_scatter({label: (cost[label], mean_interval(aucs[label])[0]) for label in rows},
                     os.path.join(FLAGS.out, "hit_ablation.png"), "µs per candidate (user side cached)",
                     "test AUC (like), mean over seeds", "HIT ablations: quality vs scoring cost")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
