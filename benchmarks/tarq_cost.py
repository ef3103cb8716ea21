"""TARQ: scoring cost against history length, and quality over seeds, student vs teacher.

    python -m benchmarks.tarq_cost [--seeds 42,43,44] [--epochs 8] [--out benchmarks/results]

Cost: untrained default models on the MovieLens-100K feature spec (cost does not depend on weights); one
user whose history holds T = 10, 50, 200 valid items, against the whole 1,682-item corpus. The item side
(vector and codes; the teacher's item vector and fields) comes from a cache, outside the timer. Timed (the
fastest of 15 calls after a warm-up trace, on this shared 2-core CPU):
  * per request: the user side (the student's attended codebook of L·K vectors; the teacher's history
    embeddings and static vector);
  * per candidate: ``model.logits`` for the user against all candidates, divided by the number of
    candidates (student: gather L codes' rows and add, dot product; teacher: attention over T and MLP).
Quality: the pre-ranking protocol (``benchmarks/seed_stats.py``) for the standalone teacher
(``target_attention``), the student alone (``use_teacher=False``) and TARQ (student co-trained with its
teacher: ``tower_zoo.training.tarq.fit_tarq``), whose teacher head is also scored.
Writes tarq_cost.md, tarq_cost.json and tarq_cost.png to --out.
"""

from __future__ import annotations

import json
import os

import tower_zoo  # noqa: I001  (first: it selects legacy Keras before TensorFlow loads)

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.seed_stats import best_seconds, comparison_lines, formatted, mean_interval, train_and_test
from tower_zoo.data import movielens_100k, time_split
from tower_zoo.evaluation.preranking import PreRankingEvaluator, auc
from tower_zoo.training import Trainer
from tower_zoo.training.tarq import fit_tarq

flags.DEFINE_string("seeds", "42,43,44", "Comma-separated seeds for the quality runs.")
flags.DEFINE_integer("epochs", 8, "Most epochs per run (early stopping on validation AUC, patience 2).")
flags.DEFINE_string("history_lengths", "10,50,200", "History lengths T for the cost measurement.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
FLAGS = flags.FLAGS


def cost_row(model, items, length: int, rng) -> dict[str, float]:
    """µs per request (user side) and per candidate for one user with a history of ``length`` items."""
    spec = model.feature_spec
    user = model.dummy_features(1)
    user[model.config.history_feature] = rng.integers(2, spec.get(model.config.history_feature).vocab_size,
                                                      [1, length]).astype(np.int32)
    count = len(next(iter(items.values())))
    item_state = model.item_embedding(items)
    user_side = tf.function(model.user_embedding)
    user_state = user_side(user)
    score = tf.function(model.logits)
    return {"us_per_request": 1e6 * best_seconds(lambda: user_side(user)),
            "us_per_candidate": 1e6 * best_seconds(lambda: score(user_state, item_state)) / count}


def _fit_plain(model, train, labels, validate, seed, epochs):
    return Trainer(model, task="ranking", epochs=epochs, seed=seed).fit_with_early_stopping(
        train, validate, labels=labels, verbose=False)


def quality(split, seeds) -> dict[str, list[dict]]:
    spec, corpus = split.data.feature_spec, split.candidates()[0]
    rows: dict[str, list[dict]] = {}

    def fit_tarq_run(model, train, labels, validate, seed, epochs):
        return fit_tarq(model, train, labels, corpus, validate, epochs=epochs, seed=seed)

    for seed in seeds:
        runs = [("target_attention (teacher alone)", "target_attention", {}, _fit_plain),
                ("rq_target_attention (student alone)", "rq_target_attention", {"use_teacher": False}, fit_tarq_run),
                ("rq_target_attention (TARQ: co-trained, distilled)", "rq_target_attention", {}, fit_tarq_run)]
        for label, name, overrides, fit in runs:
            model = tower_zoo.create_model(name, spec, **overrides)
            row = train_and_test(model, split, seed, fit, FLAGS.epochs)
            rows.setdefault(label, []).append(row)
            print(f"seed {seed} {label:52s} AUC {row['auc']:.4f} GAUC {row['gauc']:.4f} epoch {row['best_epoch']}",
                  flush=True)
            if getattr(model, "teacher", None) is not None:
                teacher_logits = PreRankingEvaluator().predict(model.teacher, split.examples("test"))
                head = {"auc": auc(split.labels("test")["like"], teacher_logits), "gauc": float("nan"),
                        "best_epoch": row["best_epoch"]}
                rows.setdefault("TARQ's co-trained teacher head", []).append(head)
                print(f"seed {seed} {'  its teacher head':52s} AUC {head['auc']:.4f}", flush=True)
    return rows


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds.split(",")]
    lengths = [int(t) for t in FLAGS.history_lengths.split(",")]
    split = time_split(movielens_100k(), test_fraction=0.2, valid_fraction=0.1)
    items, _ = split.candidates()
    rng = np.random.default_rng(0)
    cost = {}
    for label, name in (("student (rq_target_attention)", "rq_target_attention"),
                        ("teacher (target_attention)", "target_attention")):
        model = tower_zoo.create_model(name, split.data.feature_spec).build_weights()
        cost[label] = {length: cost_row(model, items, length, rng) for length in lengths}
        print(label, {t: {k: round(v, 2) for k, v in r.items()} for t, r in cost[label].items()}, flush=True)
    rows = quality(split, seeds)
    aucs = {label: [r["auc"] for r in runs] for label, runs in rows.items()}
    lines = [f"TARQ on {split.data.name}: scoring cost against history length T (one user, "
             f"{len(next(iter(items.values()))):,} cached candidates, fastest of 15 calls, shared 2-core CPU), "
             "default configs (D = 32, 4 heads, L = 3 levels of K = 64).", "",
             "| model | " + " | ".join(f"T = {t}: µs / candidate" for t in lengths) + " | "
             + " | ".join(f"T = {t}: µs / request" for t in lengths) + " |",
             "|---|" + "---:|" * (2 * len(lengths))]
    for label, by_length in cost.items():
        lines.append(f"| {label} | " + " | ".join(f"{by_length[t]['us_per_candidate']:.3f}" for t in lengths) + " | "
                     + " | ".join(f"{by_length[t]['us_per_request']:.0f}" for t in lengths) + " |")
    lines += ["", f"Quality: pre-ranking protocol (like = rating >= 4, time split), seeds {seeds}, up to "
              f"{FLAGS.epochs} epochs with early stopping; mean ± 95% interval over seeds.", "",
              "| model | test AUC | test GAUC | best epochs |", "|---|---:|---:|---|"]
    for label, runs in rows.items():
        gauc = [r["gauc"] for r in runs]
        lines.append(f"| {label} | {formatted(aucs[label])} | "
                     f"{formatted(gauc) if not np.isnan(gauc).any() else '–'} | {[r['best_epoch'] for r in runs]} |")
    lines += [""] + comparison_lines(aucs, [
        ("TARQ's co-trained teacher head", "rq_target_attention (TARQ: co-trained, distilled)"),
        ("target_attention (teacher alone)", "rq_target_attention (student alone)"),
        ("rq_target_attention (TARQ: co-trained, distilled)", "rq_target_attention (student alone)"),
        ("rq_target_attention (TARQ: co-trained, distilled)", "target_attention (teacher alone)")])
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "tarq_cost.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    summary = {label: dict(zip(("mean", "half_width"), mean_interval(values))) for label, values in aucs.items()}
    with open(os.path.join(FLAGS.out, "tarq_cost.json"), "w") as handle:
        json.dump({"seeds": seeds, "epochs": FLAGS.epochs, "cost": cost, "runs": rows, "auc": summary}, handle,
                  indent=2)
    plot(cost, lengths, aucs, os.path.join(FLAGS.out, "tarq_cost.png"))
    print("\n".join(lines))


def plot(cost, lengths, aucs, path):
    """Left: µs per candidate against T; right: test AUC mean ± 95% interval per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, by_length in cost.items():
        left.plot(lengths, [by_length[t]["us_per_candidate"] for t in lengths], marker="o", label=label)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("history length T")
    left.set_ylabel("µs per candidate (user side cached)")
    left.set_title("Per-candidate cost")
    left.legend(fontsize=7)
    labels = list(aucs)
    means, halves = zip(*(mean_interval(aucs[label]) for label in labels))
    right.errorbar(means, range(len(labels)), xerr=halves, fmt="o", capsize=3)
    right.set_yticks(range(len(labels)), labels, fontsize=7)
    right.set_xlabel("test AUC (like), mean ± 95%")
    right.set_title("Quality over seeds")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    app.run(main)
