"""The papers' published protocol on MovieLens: IntTower's (CIKM'22), on which it compares two-tower, DAT and
COLD, and on which HIT reports its MovieLens number. ML-100K by default; ML-1M (the papers' dataset) with
``--data_dir`` pointing at the GroupLens files (ratings.dat, users.dat, movies.dat).

    python -m benchmarks.paper_protocols [--seeds 1,2,3] [--data_dir ~/ml-1m] [--out benchmarks/results]

Protocol, as IntTower's ``train_movielens_IntTower.py`` runs it: every rating is an exposure; ratings of 3 are
dropped; label = rating > 3; a random 80/20 split of the exposures (here drawn from the seed, so the interval
covers the split too); validation = a random 20% of the training rows; features: user id, gender, age,
occupation and the user's label rate; movie id, genres and the movie's label rate; batch 2048, Adam at 1e-3,
up to 10 epochs, early stopping on validation AUC with patience 5 and the best epoch's weights restored.
Models, with the hyper-parameters of the official scripts where our harness has them (embedding 32, towers
300-300-128): two-tower = ``dssm``; ``dat``; a COLD-style DNN (``benchmarks/dnn_baseline.py``: an MLP over
both sides' fields; the zoo's ``cold`` is still to come); ``int_tower`` with 32 heads of 64 and dropout 0.3
(its official MovieLens script); ``hit`` with its registered defaults (the HIT paper's settings are not
available to us). What the harness does not reproduce: batch normalization in the towers (IntTower, DSSM and
DAT scripts use it), the L2 penalty of 1e-5 on embeddings, the log loss summed (not averaged) over a batch,
and the official two-tower's score cos · γ with γ = 1 (``dssm`` divides the cosine by T = 0.05).

Leaky features, reported beside their leak-free form (``benchmarks/protocol_features.py``): the official
label rates are computed within each split, so a test row's rate contains its own label and every other test
label of its user and movie ("as released"); the leak-free rates come from training labels only, leave-one-out
on training rows. HIT also runs with a history of the user's positively rated movies: as such a history is
built in the released scripts (it holds the row's own movie exactly when the row is positive) and leak-free
(the user's other positive training movies).

Every cell is mean ± 95% t-interval over the seeds; the Δ column is the paired AUC difference to the
two-tower, "(noise)" when its interval contains 0. The verdict lines test the IntTower paper's ordering
(IntTower and HIT above two-tower and DAT) beyond the intervals. Writes paper_protocols.md / .json / .png.
"""

from __future__ import annotations

import json
import os
import time

import tower_zoo  # noqa: I001  (first: it selects legacy Keras before TensorFlow loads)

from absl import app, flags

from benchmarks.dnn_baseline import ConcatDNN, ConcatDNNConfig
from benchmarks.plots import grouped_intervals
from benchmarks.protocol_features import with_label_rates, with_positive_history
from benchmarks.seeded import SeededRows
from benchmarks.stats import parse_seeds
from tower_zoo.data import movielens_100k, movielens_1m, random_exposure_split
from tower_zoo.evaluation.preranking import PreRankingEvaluator, auc
from tower_zoo.training import Trainer

flags.DEFINE_list("seeds", ["1", "2", "3"], "Seeds: each draws its own split and initialization (>= 3).")
flags.DEFINE_string("data_dir", None, "GroupLens ML-1M files; default: MovieLens-100K.")
flags.DEFINE_integer("epochs", 10, "Most epochs (official: 10), early stopping on validation AUC.")
flags.DEFINE_integer("patience", 5, "Early-stopping patience in epochs (official: 5).")
flags.DEFINE_list("models", [], "Row labels to run (default: all).")
flags.DEFINE_boolean("history", True, "Also run HIT with a positive-item history (leaky and leak-free).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
flags.DEFINE_boolean("update", False, "Keep the rows of an existing paper_protocols.json that --models does not rerun "
                     "(same seeds).")
FLAGS = flags.FLAGS

FEATURES = ("gender", "age", "occupation", "genres")     # + ids and the two label rates
TOWERS = {"embedding_dim": 32, "hidden_units": (300, 300, 128)}
MODELS = {
    "two-tower (dssm)": lambda spec: tower_zoo.create_model("dssm", spec, **TOWERS),
    "DAT": lambda spec: tower_zoo.create_model("dat", spec, **TOWERS),
    "COLD-style DNN": lambda spec: ConcatDNN(spec, ConcatDNNConfig(**TOWERS)),
    "IntTower": lambda spec: tower_zoo.create_model("int_tower", spec, **TOWERS, num_heads=32, head_dim=64,
                                                    dropout=0.3),
    "HIT": lambda spec: tower_zoo.create_model("hit", spec),
}
HISTORY_ROW = "HIT + positive-item history"
VARIANTS = {"as released (leaky)": True, "leak-free": False}
REFERENCE = "two-tower (dssm)"
PAPER_AUC = {"two-tower (dssm)": 0.8697, "DAT": 0.8712, "COLD-style DNN": 0.8836, "IntTower": 0.8974, "HIT": 0.9048}
ORDERING = [("IntTower", REFERENCE), ("IntTower", "DAT"), ("HIT", REFERENCE), ("HIT", "DAT")]
COLUMNS = [("auc", "AUC", 4), ("gauc", "GAUC", 4), ("logloss", "logloss", 4), ("best_epoch", "best epoch", 1),
           ("seconds_per_epoch", "s/epoch", 1)]


def train_and_test(model, split, seed: int) -> dict[str, float]:
    """Trains ``model`` on ``split`` by the protocol; test AUC, GAUC and logloss of the best validation epoch."""
    evaluator = PreRankingEvaluator()
    valid, valid_labels = split.examples("valid"), split.labels("valid")["like"]
    started = time.perf_counter()
    stopped = Trainer(model, task="ranking", epochs=FLAGS.epochs, batch_size=2048, learning_rate=1e-3,
                      seed=seed).fit_with_early_stopping(
        split.examples("train"), lambda m: auc(valid_labels, evaluator.predict(m, valid)), patience=FLAGS.patience,
        labels=split.labels("train")["like"], verbose=False)
    seconds = (time.perf_counter() - started) / len(stopped["values"])
    metrics = evaluator.evaluate(model, split.examples("test"), split.labels("test")).metrics["like"]
    return {"auc": metrics["auc"], "gauc": metrics["gauc"], "logloss": metrics["logloss"],
            "best_epoch": stopped["best_epoch"], "seconds_per_epoch": seconds}


def run_seed(data, seed: int, tables: dict[str, SeededRows]) -> dict[str, int]:
    """Every row of both tables for one seed; returns the number of exposures per part."""
    base = random_exposure_split(data, seed).select(FEATURES)
    for variant, leaky in VARIANTS.items():
        split = with_label_rates(base, leaky)
        for label, build in MODELS.items():
            if FLAGS.models and label not in FLAGS.models:
                continue
            metrics = train_and_test(build(split.feature_spec), split, seed)
            tables[variant].add(label, seed, metrics)
            print(f"{variant:20s} {label:28s} seed {seed} AUC {metrics['auc']:.4f} GAUC {metrics['gauc']:.4f} "
                  f"logloss {metrics['logloss']:.4f} best epoch {metrics['best_epoch']}", flush=True)
        if FLAGS.history and (not FLAGS.models or HISTORY_ROW in FLAGS.models):
            with_history = with_positive_history(split, leaky)
            metrics = train_and_test(MODELS["HIT"](with_history.feature_spec), with_history, seed)
            tables[variant].add(HISTORY_ROW, seed, metrics)
            print(f"{variant:20s} {HISTORY_ROW:28s} seed {seed} AUC {metrics['auc']:.4f}", flush=True)
    return {part: len(frame) for part, frame in base.parts.items()}


def verdict(rows: SeededRows) -> list[str]:
    """Whether IntTower and HIT are above two-tower and DAT beyond the intervals, pair by pair."""
    lines, held = [], True
    for better, worse in ORDERING:
        difference = rows.difference(better, worse, "auc")
        if difference is None:
            continue
        above = difference["mean"] > 0 and not difference["within_noise"]
        held &= above
        state = ("above, beyond noise" if above else "within noise" if difference["within_noise"]
                 else "below, beyond noise")
        lines.append(f"- {better} − {worse}: AUC {difference['mean']:+.4f} ± {difference['ci']:.4f} ({state})")
    return lines + [f"- The paper's ordering {'holds' if held else 'does not hold'} beyond the seed intervals."]


def main(argv):
    del argv
    seeds = parse_seeds(FLAGS.seeds)
    data = movielens_1m(FLAGS.data_dir) if FLAGS.data_dir else movielens_100k()
    tables = {variant: SeededRows(seeds) for variant in VARIANTS}
    previous_path = os.path.join(FLAGS.out, "paper_protocols.json")
    if FLAGS.update and os.path.exists(previous_path):
        with open(previous_path) as handle:
            previous = json.load(handle)
        if previous["seeds"] != seeds:
            raise SystemExit(f"--update: {previous_path} has seeds {previous['seeds']}, not {seeds}")
        tables = {variant: SeededRows.from_json(seeds, previous["variants"].get(variant, {})) for variant in VARIANTS}
    started = time.perf_counter()
    sizes = [run_seed(data, seed, tables) for seed in seeds][0]
    minutes = (time.perf_counter() - started) / 60
    lines = [f"IntTower protocol on {data.name}: rating 3 dropped, label = rating > 3, random 80/20 split per seed "
             f"({sizes['train']:,} train / {sizes['valid']:,} validation / {sizes['test']:,} test exposures), "
             f"batch 2048, Adam 1e-3, up to {FLAGS.epochs} epochs, early stopping on validation AUC (patience "
             f"{FLAGS.patience}). Mean ± 95% t-interval over {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
             f"{minutes:.0f} min on this 2-core machine."]
    if FLAGS.update:
        lines += ["", f"This run reran {', '.join(FLAGS.models) or 'every row'} ({minutes:.0f} min); the other rows are "
                  "kept from the previous paper_protocols.json (same seeds)."]
    for variant, rows in tables.items():
        lines += ["", f"### Label-rate features {variant}", ""]
        lines += rows.markdown(COLUMNS, REFERENCE if REFERENCE in rows.runs else None, "auc")
        lines += ["", "IntTower paper's ordering (IntTower, HIT > two-tower, DAT):"] + verdict(rows)
    lines += ["", "Published ML-1M AUC under this protocol (IntTower paper; HIT from its own paper): "
              + ", ".join(f"{label} {value}" for label, value in PAPER_AUC.items()) + "."]
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "paper_protocols.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "paper_protocols.json"), "w") as handle:
        json.dump({"dataset": data.name, "seeds": seeds, "epochs": FLAGS.epochs, "minutes": minutes,
                   "variants": {variant: rows.to_json() for variant, rows in tables.items()},
                   "paper_auc_ml1m": PAPER_AUC}, handle, indent=2)
    grouped_intervals({variant: {label: (rows.summary(label, "auc")["mean"], rows.summary(label, "auc")["ci"])
                                 for label in rows.runs} for variant, rows in tables.items()},
                      os.path.join(FLAGS.out, "paper_protocols.png"), "test AUC, mean ± 95% CI",
                      f"IntTower protocol on {data.name}")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
