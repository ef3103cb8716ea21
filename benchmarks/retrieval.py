"""Every registered retrieval model on MovieLens-100K (or ML-1M with --data_dir), one seed, one table.

    python -m benchmarks.retrieval [--epochs 8] [--models dssm,dat] [--out benchmarks/results]

Each model trains with the default Trainer (in-batch softmax + logQ, batch 512, Adam 1e-3) and is evaluated
leave-last-out over the full corpus, exact and ScaNN. DAT also runs its ablations (AMM off, CAL off, both off).
Writes retrieval.md, retrieval.json and retrieval.png (Recall@50 against training seconds per epoch) to --out.

Peer: the TensorFlow Recommenders tutorial retrieval model (``benchmarks/peer_tfrs.py``) trains on the same split
for the same number of epochs; the script prints our DSSM's Recall@50 and training examples/s as ratios to it.
Regressions: each model's Recall@50 is checked against ``benchmarks/baselines.json`` (expected value and
tolerance); a drop beyond the tolerance is printed as REGRESSION, and with --check the script exits 1.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from benchmarks.plots import labelled_scatter

import tower_zoo
from tower_zoo.data import leave_last_out, load_dataset
from tower_zoo.runs import evaluate_split, training_inputs
from tower_zoo.training import Trainer, make_trainer_config

from benchmarks.baselines import regressions

flags.DEFINE_integer("epochs", 8, "Epochs per model.")
flags.DEFINE_integer("seed", 42, "Seed shared by every model.")
flags.DEFINE_list("models", [], "Models to run (default: every registered retrieval model).")
flags.DEFINE_string("dataset", "movielens-100k", "Dataset name.")
flags.DEFINE_string("data_dir", None, "GroupLens files (needed for movielens-1m).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
flags.DEFINE_boolean("peer", True, "Also train the TFRS tutorial model and print ratios against it.")
flags.DEFINE_boolean("check", False, "Exit 1 when a model regresses past its tolerance in baselines.json.")

FLAGS = flags.FLAGS

VARIANTS = {"dat": [("dat (AMM off)", {"use_amm": False}), ("dat (CAL off)", {"use_cal": False}),
                    ("dat (AMM off, CAL off)", {"use_amm": False, "use_cal": False})]}


def run_one(split, name, overrides, epochs, seed):
    prepared = tower_zoo.registry.prepare_data(name, split.data)
    if prepared is not split.data:  # the model derives features of its own (long_retriever: item categories)
        split = leave_last_out(prepared)
    model = tower_zoo.create_model(name, split.data.feature_spec, **overrides)
    config = make_trainer_config({"epochs": epochs, "seed": seed})
    inputs = training_inputs(model, split, config)
    started = time.perf_counter()
    Trainer(model, config).fit(split.examples("train"), verbose=False, **inputs)
    per_epoch = (time.perf_counter() - started) / epochs
    return evaluate_split(model, split, ks=(10, 50, 100)), per_epoch


def plot(rows, path):
    """Recall@50 against training seconds per epoch."""
    labelled_scatter({label: (row["seconds_per_epoch"], row["recall@50"]) for label, row in rows.items()}, path,
                     "training seconds per epoch (2-core CPU)", "Recall@50 (exact, leave-last-out)",
                     "Retrieval models: quality vs training time")


def main(argv):
    del argv
    data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
    split = leave_last_out(data)
    names = FLAGS.models or tower_zoo.list_models(kind="retrieval")
    rows, baseline = {}, None
    for name in names:
        for label, overrides in [(name, {})] + VARIANTS.get(name, []):
            reports, per_epoch = run_one(split, name, overrides, FLAGS.epochs, FLAGS.seed)
            baseline = reports["popularity"].metrics["exact"]
            exact, scann = reports["model"].metrics["exact"], reports["model"].metrics.get("scann", {})
            rows[label] = {**{k: exact[k] for k in ("recall@10", "recall@50", "recall@100", "ndcg@10")},
                           "scann_recall@50": scann.get("recall@50", float("nan")),
                           "ann_recall@50": reports["model"].ann_recall.get("ann_recall@50", float("nan")),
                           "seconds_per_epoch": per_epoch}
            print(f"{label:28s} R@50 {exact['recall@50']:.4f}  N@10 {exact['ndcg@10']:.4f}  "
                  f"{per_epoch:.1f}s/epoch", flush=True)
    peer_lines = []
    if FLAGS.peer:
        from benchmarks.peer_tfrs import train_tutorial_model

        adapter, peer_speed = train_tutorial_model(split, FLAGS.epochs, FLAGS.seed)
        peer = evaluate_split(adapter, split, ks=(10, 50, 100))["model"].metrics["exact"]
        rows["tfrs tutorial (peer)"] = {**{k: peer[k] for k in ("recall@10", "recall@50", "recall@100", "ndcg@10")},
                                        "scann_recall@50": float("nan"), "ann_recall@50": float("nan"),
                                        "seconds_per_epoch": len(split.train) / peer_speed}
        if "dssm" in rows:
            ours_speed = len(split.train) / rows["dssm"]["seconds_per_epoch"]
            peer_lines = ["", f"DSSM vs the TFRS tutorial model (same split, {FLAGS.epochs} epochs): Recall@50 "
                          f"{rows['dssm']['recall@50']:.4f} / {peer['recall@50']:.4f} = "
                          f"{rows['dssm']['recall@50'] / peer['recall@50']:.2f}×; training examples/s "
                          f"{ours_speed:,.0f} / {peer_speed:,.0f} = {ours_speed / peer_speed:.2f}×."]
    lines = [f"{data.name}, leave-last-out, {FLAGS.epochs} epochs, seed {FLAGS.seed}, in-batch softmax + logQ.", "",
             "| model | Recall@10 | Recall@50 | Recall@100 | NDCG@10 | Recall@50 (ScaNN) | ANN recall@50 | s/epoch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| most-popular | {baseline['recall@10']:.4f} | {baseline['recall@50']:.4f} | "
             f"{baseline['recall@100']:.4f} | {baseline['ndcg@10']:.4f} | – | – | – |"]
    lines += [f"| {label} | {r['recall@10']:.4f} | {r['recall@50']:.4f} | {r['recall@100']:.4f} | {r['ndcg@10']:.4f} | "
              f"{r['scann_recall@50']:.4f} | {r['ann_recall@50']:.4f} | {r['seconds_per_epoch']:.1f} |"
              for label, r in rows.items()]
    lines += peer_lines
    flagged = regressions(rows, data.name, "retrieval") if FLAGS.epochs == 8 else []
    lines += [""] + (flagged or ["No regression against benchmarks/baselines.json."])
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "retrieval.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "retrieval.json"), "w") as handle:
        json.dump({"dataset": data.name, "epochs": FLAGS.epochs, "seed": FLAGS.seed, "models": rows,
                   "most_popular": baseline}, handle, indent=2)
    plot(rows, os.path.join(FLAGS.out, "retrieval.png"))
    print("\n".join(lines))
    if FLAGS.check and flagged:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
