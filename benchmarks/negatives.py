"""DSSM on MovieLens-100K across negative sources × losses (issue: negative sampling and loss suite).

    python -m benchmarks.negatives [--epochs 8] [--out benchmarks/results]

Rows: in-batch, in-batch + logQ, global (p ∝ count^0.75), mixed (in-batch + global), mixed with the usual shared
unigram logQ (every column log(count/N)), mixed + per-source logQ, and mixed (+ per-source logQ) + hard negatives
(4 per example from ranks 101–500 of the in-batch + logQ softmax model).
logQ is a correction of the sampled softmax, so its rows exist only for that loss. Columns: Recall@50, NDCG@10
(exact full-corpus search, leave-last-out) and the mean training count of the top-10 recommended items (how
strongly the model favours hot items; the most-popular baseline's value is printed for scale).
Writes negatives.md and negatives.json to --out.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

import tower_zoo
from tower_zoo.data import leave_last_out, movielens_100k
from tower_zoo.runs import evaluate_split
from tower_zoo.training import Trainer
from tower_zoo.training.hard_negatives import mine_hard_negatives

flags.DEFINE_integer("epochs", 8, "Epochs per configuration.")
flags.DEFINE_integer("seed", 42, "Seed shared by every configuration.")
flags.DEFINE_string("out", "benchmarks/results", "Directory for negatives.md / negatives.json.")
FLAGS = flags.FLAGS

ROWS = [  # (label, negatives, logQ mode or None, hard)
    ("in-batch", "in_batch", None, False),
    ("in-batch + logQ", "in_batch", "per_source", False),
    ("global", "global", None, False),
    ("mixed", "mixed", None, False),
    ("mixed + shared unigram logQ", "mixed", "shared", False),
    ("mixed + per-source logQ", "mixed", "per_source", False),
    ("mixed + hard", "mixed", None, True),
    ("mixed + per-source logQ + hard", "mixed", "per_source", True),
]
LOSSES = ("softmax", "bce", "hinge", "bpr")
HARD_PER_EXAMPLE = 4


def train_and_score(split, loss, negatives, logq_mode, hard_rows=None, epochs=8, seed=42):
    model = tower_zoo.create_model("dssm", split.data.feature_spec)
    trainer = Trainer(model, epochs=epochs, seed=seed, loss=loss, negatives=negatives,
                      logq_correction=logq_mode is not None, logq_mode=logq_mode or "per_source",
                      hard_negatives=HARD_PER_EXAMPLE if hard_rows is not None else 0)
    started = time.perf_counter()
    trainer.fit(split.examples("train"), item_table=split.candidates()[0], hard_negatives=hard_rows, verbose=False)
    seconds = time.perf_counter() - started
    reports = evaluate_split(model, split, ks=(10, 50), use_scann=False)
    return model, reports, seconds / epochs


def main(argv):
    del argv
    split = leave_last_out(movielens_100k())
    results, hard_rows, baseline = {}, None, None
    for loss in LOSSES:
        for label, negatives, logq, hard in ROWS:
            if logq and loss != "softmax":
                continue
            if hard and hard_rows is None:
                raise RuntimeError("the in-batch + logQ softmax model must run before hard negatives are mined")
            model, reports, per_epoch = train_and_score(split, loss, negatives, logq, hard_rows if hard else None,
                                                        FLAGS.epochs, FLAGS.seed)
            if loss == "softmax" and label == "in-batch + logQ":
                hard_rows = mine_hard_negatives(model, split.examples("train"), split.candidates()[0],
                                                HARD_PER_EXAMPLE, (101, 500), seed=FLAGS.seed)
            exact = reports["model"].metrics["exact"]
            baseline = reports["popularity"].metrics["exact"]
            results[f"{loss} | {label}"] = {"recall@50": exact["recall@50"], "ndcg@10": exact["ndcg@10"],
                                            "mean_popularity@10": exact["mean_popularity@10"],
                                            "seconds_per_epoch": per_epoch}
            print(f"{loss:8s} {label:32s} R@50 {exact['recall@50']:.4f}  N@10 {exact['ndcg@10']:.4f}  "
                  f"pop@10 {exact['mean_popularity@10']:.1f}  {per_epoch:.1f}s/epoch", flush=True)
    lines = [f"DSSM, MovieLens-100K leave-last-out, {FLAGS.epochs} epochs, batch 512, seed {FLAGS.seed}; exact search.",
             "", "| loss | negatives | Recall@50 | NDCG@10 | mean popularity of top-10 | s/epoch |",
             "|---|---|---:|---:|---:|---:|"]
    for key, row in results.items():
        loss, label = key.split(" | ")
        lines.append(f"| {loss} | {label} | {row['recall@50']:.4f} | {row['ndcg@10']:.4f} | "
                     f"{row['mean_popularity@10']:.1f} | {row['seconds_per_epoch']:.1f} |")
    lines += ["", f"most-popular baseline: Recall@50 {baseline['recall@50']:.4f}, NDCG@10 {baseline['ndcg@10']:.4f}, "
              f"mean popularity of top-10 {baseline['mean_popularity@10']:.1f}"]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "negatives.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "negatives.json"), "w") as handle:
        json.dump({"epochs": FLAGS.epochs, "seed": FLAGS.seed, "results": results, "most_popular": baseline},
                  handle, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
