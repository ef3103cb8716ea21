"""Every registered retrieval model on MovieLens-100K (or ML-1M with --data_dir), over seeds, one table.

    python -m benchmarks.retrieval [--seeds 42,43,44] [--epochs 8] [--models dssm,dat] [--out benchmarks/results]

Each model trains once per seed with the default Trainer (in-batch softmax + logQ, batch 512, row-wise Adam 1e-3) and is
evaluated leave-last-out over the full corpus, exact and ScaNN. DAT also runs its ablations (AMM off, CAL off,
both off). The seed fixes initialization, batch order and sampling; the split is the same for every seed
(leave-last-out is deterministic), so the interval measures training noise. Every cell is mean ± 95%
t-interval over the seeds (``benchmarks/stats.py``); the last column is each row's paired difference in
Recall@50 to DSSM, marked "(noise)" when its interval contains 0.
Writes retrieval.md, retrieval.json and retrieval.png (Recall@50 with its interval against training seconds
per epoch) to --out.

Peer: the TensorFlow Recommenders tutorial retrieval model (``benchmarks/peer_tfrs.py``) trains on the same split
for the same number of epochs and seeds; the script prints our DSSM's Recall@50 and training examples/s as
ratios to it. Regressions: each model's mean Recall@50 is checked against ``benchmarks/baselines.json``
(expected mean and tolerance); a drop beyond the tolerance is printed as REGRESSION, and with --check the script
exits 1.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

import tower_zoo
from benchmarks.baselines import regressions
from benchmarks.plots import labelled_scatter
from benchmarks.seeded import SeededRows
from benchmarks.stats import format_interval, parse_seeds
from tower_zoo.data import leave_last_out, load_dataset
from tower_zoo.runs import evaluate_split, training_inputs
from tower_zoo.training import Trainer, make_trainer_config

flags.DEFINE_integer("epochs", 8, "Epochs per model.")
flags.DEFINE_list("seeds", ["42", "43", "44"], "Seeds; every row runs once per seed (>= 3 for an interval).")
flags.DEFINE_list("models", [], "Models to run (default: every registered retrieval model).")
flags.DEFINE_string("dataset", "movielens-100k", "Dataset name.")
flags.DEFINE_string("data_dir", None, "GroupLens files (needed for movielens-1m).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
flags.DEFINE_boolean("peer", True, "Also train the TFRS tutorial model and print ratios against it.")
flags.DEFINE_boolean("check", False, "Exit 1 when a model regresses past its tolerance in baselines.json.")

FLAGS = flags.FLAGS

VARIANTS = {"dat": [("dat (AMM off)", {"use_amm": False}), ("dat (CAL off)", {"use_cal": False}),
                    ("dat (AMM off, CAL off)", {"use_amm": False, "use_cal": False})]}
EXACT_METRICS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
COLUMNS = [("recall@10", "Recall@10", 4), ("recall@50", "Recall@50", 4), ("recall@100", "Recall@100", 4),
           ("ndcg@10", "NDCG@10", 4), ("scann_recall@50", "Recall@50 (ScaNN)", 4),
           ("ann_recall@50", "ANN recall@50", 4), ("seconds_per_epoch", "s/epoch", 1)]
REFERENCE = "dssm"


def run_one(split, name, overrides, epochs, seed):
    """One model, one seed: ({metric: value}, the most-popular baseline's exact metrics)."""
    prepared = tower_zoo.registry.prepare_data(name, split.data)
    if prepared is not split.data:  # the model derives features of its own (long_retriever: item categories)
        split = leave_last_out(prepared)
    model = tower_zoo.create_model(name, split.data.feature_spec, **overrides)
    config = make_trainer_config({"epochs": epochs, "seed": seed})
    inputs = training_inputs(model, split, config)
    started = time.perf_counter()
    Trainer(model, config).fit(split.examples("train"), verbose=False, **inputs)
    per_epoch = (time.perf_counter() - started) / epochs
    reports = evaluate_split(model, split, ks=(10, 50, 100))
    exact, scann = reports["model"].metrics["exact"], reports["model"].metrics.get("scann", {})
    row = {**{k: exact[k] for k in EXACT_METRICS}, "scann_recall@50": scann.get("recall@50"),
           "ann_recall@50": reports["model"].ann_recall.get("ann_recall@50"), "seconds_per_epoch": per_epoch}
    return {k: v for k, v in row.items() if v is not None}, reports["popularity"].metrics["exact"]


def run_peer(split, rows, epochs, seed):
    from benchmarks.peer_tfrs import train_tutorial_model

    adapter, peer_speed = train_tutorial_model(split, epochs, seed)
    peer = evaluate_split(adapter, split, ks=(10, 50, 100), with_popularity=False)["model"].metrics["exact"]
    rows.add("tfrs tutorial (peer)", seed, {**{k: peer[k] for k in EXACT_METRICS},
                                            "seconds_per_epoch": len(split.train) / peer_speed})


def peer_lines(rows, split, epochs):
    if "dssm" not in rows.runs or "tfrs tutorial (peer)" not in rows.runs:
        return []
    ours, peer = rows.summary("dssm", "recall@50"), rows.summary("tfrs tutorial (peer)", "recall@50")
    ours_speed = len(split.train) / rows.summary("dssm", "seconds_per_epoch")["mean"]
    peer_speed = len(split.train) / rows.summary("tfrs tutorial (peer)", "seconds_per_epoch")["mean"]
    return ["", f"DSSM vs the TFRS tutorial model (same split, {epochs} epochs, same seeds): Recall@50 "
            f"{format_interval(ours)} / {format_interval(peer)} = {ours['mean'] / peer['mean']:.2f}×. The tutorial "
            f"model is a quality reference only: it is a smaller model (id embeddings, no side features or history), "
            f"so its speed ({peer_speed:,.0f} examples/s vs DSSM's {ours_speed:,.0f}) says nothing about the harness; "
            "the same-model speed comparison is benchmarks/harness.py."]


def main(argv):
    del argv
    seeds = parse_seeds(FLAGS.seeds)
    data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
    split = leave_last_out(data)
    names = FLAGS.models or tower_zoo.list_models(kind="retrieval")
    rows, popular = SeededRows(seeds), None
    started = time.perf_counter()
    for name in names:
        for label, overrides in [(name, {})] + VARIANTS.get(name, []):
            for seed in seeds:
                metrics, popular = run_one(split, name, overrides, FLAGS.epochs, seed)
                rows.add(label, seed, metrics)
                print(f"{label:28s} seed {seed} R@50 {metrics['recall@50']:.4f}  N@10 {metrics['ndcg@10']:.4f}  "
                      f"{metrics['seconds_per_epoch']:.1f}s/epoch", flush=True)
    if FLAGS.peer:
        for seed in seeds:
            run_peer(split, rows, FLAGS.epochs, seed)
    minutes = (time.perf_counter() - started) / 60
    lines = [f"{data.name}, leave-last-out, {FLAGS.epochs} epochs, in-batch softmax + logQ; mean ± 95% t-interval "
             f"over {len(seeds)} seeds ({', '.join(map(str, seeds))}); {minutes:.0f} min on this 2-core machine.", ""]
    table = rows.markdown(COLUMNS, REFERENCE if REFERENCE in rows.runs else None, "recall@50")
    width = len(COLUMNS) + (1 if REFERENCE in rows.runs else 0)
    popular_cells = [f"{popular[k]:.4f}" for k in EXACT_METRICS] + ["–"] * (width - len(EXACT_METRICS))
    lines += table[:2] + ["| most-popular (deterministic) | " + " | ".join(popular_cells) + " |"] + table[2:]
    if REFERENCE in rows.runs:
        lines += [""] + rows.noise_summary(REFERENCE, "recall@50")
    lines += peer_lines(rows, split, FLAGS.epochs)
    flagged = regressions(rows.means("recall@50"), data.name, "retrieval") if FLAGS.epochs == 8 else []
    lines += [""] + (flagged or ["No regression of mean Recall@50 against benchmarks/baselines.json."])
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "retrieval.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "retrieval.json"), "w") as handle:
        json.dump({"dataset": data.name, "epochs": FLAGS.epochs, "seeds": seeds, "models": rows.to_json(),
                   "most_popular": popular, "minutes": minutes}, handle, indent=2)
    labelled_scatter(rows.points("seconds_per_epoch", "recall@50"),
                     os.path.join(FLAGS.out, "retrieval.png"), "training seconds per epoch (2-core CPU)",
                     "Recall@50 (exact, leave-last-out), mean ± 95% CI", "Retrieval models: quality vs training time")
    print("\n".join(lines))
    if FLAGS.check and flagged:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
