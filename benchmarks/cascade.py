"""Pre-rankers in their cascade: every pre-ranking model × {exposures only, RankFlow, ARF} on MovieLens.

    python -m benchmarks.cascade [--seeds 3] [--models dssm,int_tower,hit,cold,three_tower,rq_target_attention]
                                 [--num_candidates 200] [--m 10] [--k 5]

Protocol (``tower_zoo.cascade.CascadeSimulation``), per seed: MovieLens-100K split by time (test = latest 20%,
validation the 10% before); a DSSM retrieval model (8 epochs, in-batch softmax + logQ) retrieves each
request's top N of the corpus (the user's earlier items excluded); the ranker is the full target-attention
model trained on the training exposures (label like = rating >= 4); each pre-ranker keeps m of the N and
the ranker picks its top k of those m. Training modes of each pre-ranker:

* exposures: pointwise BCE on the training exposures (4 epochs);
* RankFlow: 2 warm-up epochs on exposures, then 3 on the retrieval-truncated candidate lists of the training
  requests (unexposed candidates negative) with the ranker's guidance (``task="rankflow"``);
* ARF: the same warm-up, then 3 epochs of ARF's uncertainty-weighted Recall@m@k and full-order losses against
  the ranker's order (``task="arf"``).

Metrics on the test requests: Recall@m@k against the ranker, end-to-end recall@k of the engaged (liked)
items, and AUC / GAUC on every test exposure; µs per candidate (one user against the cached item corpus).
Mean ± 95% interval over the seeds; each RankFlow / ARF row says whether it differs from the same model's
exposures-only row beyond noise (paired by seed). Writes cascade.md, cascade.json and cascade.png.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags

from benchmarks.costs import microseconds_per_candidate
from benchmarks.plots import labelled_scatter
from benchmarks.stats import mean_interval, noise_label

flags.DEFINE_integer("seeds", 3, "Seeds.")
flags.DEFINE_list("models", ["dssm", "int_tower", "hit", "cold", "three_tower", "rq_target_attention"],
                  "Pre-rankers.")
flags.DEFINE_list("modes", ["exposures", "rankflow", "arf"], "Training modes.")
flags.DEFINE_integer("num_candidates", 200, "N: candidates retrieval hands to the pre-ranker.")
flags.DEFINE_integer("m", 10, "Candidates the pre-ranker keeps.")
flags.DEFINE_integer("k", 5, "Items the ranker finally shows.")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
FLAGS = flags.FLAGS

METRICS = ("auc", "gauc", "recall@m@k", "end_to_end_recall@k")


def train_pre_ranker(name: str, mode: str, simulation, seed: int):
    """A fresh ``name`` trained in ``mode`` (see the module docstring)."""
    import tower_zoo
    from tower_zoo.training import Trainer

    split = simulation.split
    model = tower_zoo.create_model(name, split.data.feature_spec)
    labels = split.labels("train")
    inputs = {"labels": labels["like"]}
    if getattr(model, "objective_names", None) and hasattr(model, "objective_logits"):
        inputs["objective_labels"] = {o: labels[o] for o in model.objective_names}
    exposure_epochs = 4 if mode == "exposures" else 2
    Trainer(model, task="ranking", epochs=exposure_epochs, seed=seed).fit(split.examples("train"), verbose=False,
                                                                           **inputs)
    if mode != "exposures":
        width = simulation.num_candidates
        options = {"arf_m": FLAGS.m, "arf_k": FLAGS.k} if mode == "arf" else {}
        Trainer(model, task=mode, group_size=width, batch_size=10 * width, epochs=3, seed=seed, **options).fit(
            **simulation.candidate_list_arrays("train"), verbose=False)
    return model


def build_simulation(seed: int):
    import tower_zoo
    from tower_zoo.cascade import CascadeSimulation
    from tower_zoo.data import movielens_100k, time_split
    from tower_zoo.training import Trainer

    split = time_split(movielens_100k(), test_fraction=0.2, valid_fraction=0.1)
    retrieval = tower_zoo.create_model("dssm", split.data.feature_spec)
    Trainer(retrieval, epochs=8, seed=seed).fit(split.examples("train"), verbose=False)
    ranker = tower_zoo.create_model("target_attention", split.data.feature_spec)
    Trainer(ranker, task="ranking", epochs=4, seed=seed).fit(split.examples("train"),
                                                             labels=split.labels("train")["like"], verbose=False)
    return CascadeSimulation(split, retrieval, ranker, FLAGS.num_candidates)


def run() -> tuple[dict, dict, dict]:
    """({label: {metric: [per seed]}}, {label: µs per candidate}, {"ranker": ..., "summary": ...})."""
    rows, costs, reference = {}, {}, {"ranker": {m: [] for m in METRICS}, "summary": None}
    for seed in range(FLAGS.seeds):
        simulation = build_simulation(seed)
        reference["summary"] = simulation.summary("test")
        ranker_metrics = _named(simulation.evaluate(simulation.ranker, FLAGS.m, FLAGS.k))
        for metric in METRICS:
            reference["ranker"][metric].append(ranker_metrics[metric])
        items, _ = simulation.split.candidates()
        one_user = {k: v[:1] for k, v in simulation.split.examples("test").items()}
        for name in FLAGS.models:
            for mode in FLAGS.modes:
                started = time.perf_counter()
                model = train_pre_ranker(name, mode, simulation, seed)
                metrics = _named(simulation.evaluate(model, FLAGS.m, FLAGS.k))
                label = f"{name} ({mode})"
                for metric in METRICS:
                    rows.setdefault(label, {m: [] for m in METRICS})[metric].append(metrics[metric])
                costs.setdefault(label, microseconds_per_candidate(model, one_user, items))
                print(f"seed {seed} {label:34s} " + "  ".join(f"{m} {metrics[m]:.4f}" for m in METRICS)
                      + f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return rows, costs, reference


def _named(metrics: dict) -> dict:
    """The evaluation's keys with m and k generalized (recall@20@10 -> recall@m@k)."""
    return {"auc": metrics["auc"], "gauc": metrics["gauc"],
            "recall@m@k": metrics[f"recall@{FLAGS.m}@{FLAGS.k}"],
            "end_to_end_recall@k": metrics[f"end_to_end_recall@{FLAGS.k}"],
            "oracle_end_to_end_recall@k": metrics[f"oracle_end_to_end_recall@{FLAGS.k}"]}


def report(rows: dict, costs: dict, reference: dict) -> list[str]:
    m, k, n = FLAGS.m, FLAGS.k, FLAGS.num_candidates
    summary = reference["summary"]
    lines = [f"MovieLens-100K by time, {summary['requests']} test requests, N = {n} retrieved candidates "
             f"(retrieval put {summary['retrieval_recall_of_engaged']:.1%} of the engaged items among them), the "
             f"pre-ranker keeps m = {m}, the ranker shows k = {k}; {FLAGS.seeds} seeds, mean ± 95% interval.", "",
             f"| pre-ranker | training | AUC | GAUC | Recall@{m}@{k} vs ranker | end-to-end recall@{k} | "
             "vs exposures-only (Recall@m@k) | µs / candidate |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for label, values in rows.items():
        name, mode = label[:-1].split(" (")
        base = rows.get(f"{name} (exposures)")
        versus = "–" if mode == "exposures" or base is None else noise_label(values["recall@m@k"], base["recall@m@k"])
        cells = [mean_interval(values[metric]).format() for metric in METRICS]
        lines.append(f"| {name} | {mode} | " + " | ".join(cells) + f" | {versus} | {costs[label]:.2f} |")
    ranker = reference["ranker"]
    lines += ["", f"The ranker itself as pre-ranker (keeps its own top {m}): end-to-end recall@{k} "
                  f"{mean_interval(ranker['end_to_end_recall@k']).format()} — what perfect agreement with the ranker delivers "
                  "(not a ceiling: the ranker is imperfect, and a pre-ranker that disagrees with it can deliver more)."]
    return lines


def main(argv):
    del argv
    started = time.perf_counter()
    rows, costs, reference = run()
    lines = report(rows, costs, reference)
    lines += ["", f"`python -m benchmarks.cascade --seeds {FLAGS.seeds}`: {(time.perf_counter() - started) / 60:.0f} "
                  "min on this 2-core machine."]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "cascade.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "cascade.json"), "w") as handle:
        json.dump({"rows": rows, "us_per_candidate": costs, "reference": reference, "m": FLAGS.m, "k": FLAGS.k,
                   "num_candidates": FLAGS.num_candidates, "seeds": FLAGS.seeds}, handle, indent=2)
    labelled_scatter({label: (costs[label], mean_interval(values["recall@m@k"]).mean) for label, values in rows.items()},
                     os.path.join(FLAGS.out, "cascade.png"), "µs per candidate (user side cached, 2-core CPU)",
                     f"Recall@{FLAGS.m}@{FLAGS.k} against the ranker", "Pre-rankers in the cascade: quality vs cost",
                     log_x=True)
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
