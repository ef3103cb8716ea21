"""Incremental updates vs full retraining, replaying MovieLens-100K by time.

    python -m benchmarks.incremental [--out benchmarks/results]

The ratings are ordered by time. The first half trains a base DSSM (from scratch, --full_epochs). The second
half is cut into --steps periods of equal size. After each period the model is updated in three ways and
evaluated on the *next* period (users active then; targets: what they rated in it; their earlier items
excluded; full corpus, exact search, Recall@50):

* incremental: warm-start from the previous step's checkpoint, --incremental_epochs on the new period only;
* periodic: incremental, but every --full_every steps a full retrain from scratch on everything so far;
* full: retrain from scratch on everything so far at every step (the quality ceiling, the costliest).

A fourth number shows what incremental-only forgets: Recall@50 on the base period's own last-week
interactions (long-term interests) for the incremental and full models at the end.
New users and items: the feature spec comes from the user and item tables, so every id of ML-100K has its
own embedding row from the start; an id absent from the tables would land in the OOV bucket (index 1).
Writes incremental.md / .json.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import tower_zoo  # noqa: I001  (legacy Keras first)

import numpy as np
from absl import app, flags

from tower_zoo.data import movielens_100k
from tower_zoo.data.memory.splits import _ordered_with_history, _split_parts
from tower_zoo.evaluation import RetrievalEvaluator
from tower_zoo.training import Trainer

flags.DEFINE_integer("steps", 5, "Periods after the base half.")
flags.DEFINE_integer("full_epochs", 6, "Epochs of a training from scratch.")
flags.DEFINE_integer("incremental_epochs", 2, "Epochs of an incremental update on one period.")
flags.DEFINE_integer("full_every", 3, "Periodic mode: full retrain every this many steps.")
flags.DEFINE_integer("seed", 42, "Seed.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
FLAGS = flags.FLAGS


def window_split(data, ordered, history, train_mask, eval_mask):
    empty = np.zeros(len(ordered), bool)
    return _split_parts(data, ordered, history, (train_mask, empty, eval_mask))


def recall_at_50(model, split):
    queries, targets, exclude = split.queries("test")
    items, ids = split.candidates()
    report = RetrievalEvaluator(ks=(50,), use_scann=False).evaluate(model, queries, items, ids, targets, exclude)
    return report.metrics["exact"]["recall@50"]


def train(data, examples, epochs, seed, checkpoint_dir=None, warm_from=None):
    model = tower_zoo.create_model("dssm", data.feature_spec)
    trainer = Trainer(model, epochs=epochs, seed=seed, checkpoint_dir=checkpoint_dir)
    if warm_from:
        trainer.warm_start(warm_from)
    started = time.perf_counter()
    trainer.fit(examples, verbose=False)
    return model, time.perf_counter() - started


def main(argv):
    del argv
    data = movielens_100k()
    ordered, history = _ordered_with_history(data)
    times = ordered["timestamp"].to_numpy()
    cuts = np.quantile(times, np.linspace(0.5, 1.0, FLAGS.steps + 2))
    work = tempfile.mkdtemp(prefix="tower_zoo_incremental_")
    rows = []
    models = {}
    for step in range(FLAGS.steps):
        seen = times < cuts[step + 1]
        new = (times >= cuts[step]) & seen
        upcoming = (times >= cuts[step + 1]) & (times < cuts[step + 2])
        evaluation = window_split(data, ordered, history, seen, upcoming)
        if step == 0:
            base = window_split(data, ordered, history, times < cuts[0], new)
            for mode in ("incremental", "periodic"):
                directory = os.path.join(work, mode, "0")
                models[mode], _ = train(data, base.examples("train"), FLAGS.full_epochs, FLAGS.seed, directory)
                models[mode + "_dir"] = directory
        row = {"step": step + 1, "train_interactions": int(seen.sum()), "new_interactions": int(new.sum()),
               "eval_users": int(evaluation.test["user_id"].nunique())}
        new_examples = window_split(data, ordered, history, new, upcoming).examples("train")
        for mode in ("incremental", "periodic"):
            directory = os.path.join(work, mode, str(step + 1))
            if mode == "periodic" and (step + 1) % FLAGS.full_every == 0:
                models[mode], seconds = train(data, evaluation.examples("train"), FLAGS.full_epochs, FLAGS.seed,
                                              directory)
            else:
                models[mode], seconds = train(data, new_examples, FLAGS.incremental_epochs, FLAGS.seed + step + 1,
                                              directory, warm_from=models[mode + "_dir"])
            models[mode + "_dir"] = directory
            row[f"{mode}_recall@50"], row[f"{mode}_seconds"] = recall_at_50(models[mode], evaluation), seconds
        models["full"], seconds = train(data, evaluation.examples("train"), FLAGS.full_epochs, FLAGS.seed)
        row["full_recall@50"], row["full_seconds"] = recall_at_50(models["full"], evaluation), seconds
        rows.append(row)
        print(row, flush=True)
    early = (times >= np.quantile(times, 0.45)) & (times < cuts[0])
    long_term = window_split(data, ordered, history, times < np.quantile(times, 0.45), early)
    memory = {mode: recall_at_50(models[mode], long_term) for mode in ("incremental", "periodic", "full")}
    lines = [f"DSSM on MovieLens-100K replayed by time: base = first half ({FLAGS.full_epochs} epochs), then "
             f"{FLAGS.steps} periods; incremental = {FLAGS.incremental_epochs} epochs on the new period from the last "
             f"checkpoint; periodic = incremental with a full retrain every {FLAGS.full_every} steps; "
             "full = retrain from scratch each step. Recall@50 on the next period.", "",
             "| step | interactions so far | new | users next period | incremental | periodic | full | "
             "incremental s | full s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['step']} | {r['train_interactions']:,} | {r['new_interactions']:,} | {r['eval_users']} | "
              f"{r['incremental_recall@50']:.4f} | {r['periodic_recall@50']:.4f} | {r['full_recall@50']:.4f} | "
              f"{r['incremental_seconds']:.1f} | {r['full_seconds']:.1f} |" for r in rows]
    lines += ["", "Long-term interests at the end (Recall@50 on the interactions just before the base cut, "
              "ranked from the history before them): " + ", ".join(f"{k} {v:.4f}" for k, v in memory.items())]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "incremental.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "incremental.json"), "w") as handle:
        json.dump({"rows": rows, "long_term": memory}, handle, indent=2)
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
