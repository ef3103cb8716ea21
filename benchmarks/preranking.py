"""Pre-ranking models on MovieLens-100K exposures: AUC, GAUC, logloss and per-candidate scoring cost.

    python -m benchmarks.preranking [--seeds 42,43,44] [--epochs 8] [--out benchmarks/results]

Protocol: every rating is an exposure; label like = rating >= 4 (second objective love = rating 5); a global
time split puts the latest 20% of exposures in the test set (20,001 impressions) and the 10% before them in a
validation set. Every model trains pointwise (BCE on like) once per seed, one epoch at a time up to --epochs,
keeping the epoch with the best validation AUC (patience 2); the TARQ student (rq_target_attention) is trained by
its recipe (``tower_zoo.training.tarq.fit_tarq``: k-means codebooks, then one fit in which the target-attention
teacher is co-trained and distilled into the student), and once without a teacher. COLD and the three-tower
model score each pair with an MLP over cross features (not decomposable into one dot product). The fused row
adds an int_tower trained on love and fuses the two probabilities (like + 0.5 · love) at scoring time. The split
is the same for every seed (a time split), so the interval measures training noise. Every cell is mean ± 95%
t-interval over the seeds (``benchmarks/stats.py``); the last column is each row's paired AUC difference to
DSSM, marked "(noise)" when its interval contains 0 (with 20,001 test impressions, AUC gaps of a few
thousandths usually are).

Scoring cost: for one user and the whole 1,682-item corpus, the user side computed once, the item side
taken from a cache (both outside the timer), then all candidates scored in one batch; microseconds per
candidate on this 2-core CPU (median of 5).
Writes preranking.md, preranking.json and preranking.png to --out; mean AUC is checked against
benchmarks/baselines.json (--check exits 1 on a regression).
"""

from __future__ import annotations

import json
import os
import time

import tower_zoo  # noqa: I001  (first: it selects legacy Keras before TensorFlow loads)

from absl import app, flags

from benchmarks.baselines import regressions
from benchmarks.costs import microseconds_per_candidate
from benchmarks.plots import labelled_scatter
from benchmarks.seeded import SeededRows
from benchmarks.stats import parse_seeds
from tower_zoo.data import load_dataset, time_split
from tower_zoo.evaluation.preranking import PreRankingEvaluator, auc, gauc
from tower_zoo.training import Trainer
from tower_zoo.training.tarq import fit_tarq
from tower_zoo.training.objectives import fuse_objective_scores

flags.DEFINE_integer("epochs", 8, "Most epochs per model (early stopping on validation AUC, patience 2).")
flags.DEFINE_list("seeds", ["42", "43", "44"], "Seeds; every row runs once per seed (>= 3 for an interval).")
flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
flags.DEFINE_string("dataset", "movielens-100k", "Dataset name (movielens-1m needs --data_dir).")
flags.DEFINE_string("data_dir", None, "GroupLens files.")
flags.DEFINE_boolean("check", False, "Exit 1 when a model's AUC regresses past its tolerance in baselines.json.")
FLAGS = flags.FLAGS

MODELS = [("logistic_regression", "logistic_regression", {}), ("dssm", "dssm", {}), ("dat", "dat", {}),
          ("int_tower", "int_tower", {}),
          ("int_tower (no Light-SE, FE-Block, CIR)", "int_tower",
           {"use_light_se": False, "use_fe_block": False, "use_cir": False}),
          ("hit", "hit", {}), ("hit (no generators)", "hit", {"use_generators": False}),
          ("target_attention (teacher)", "target_attention", {}),
          ("rq_target_attention (no teacher)", "rq_target_attention", {"use_teacher": False}),
          ("rq_target_attention (co-trained teacher, distilled)", "rq_target_attention", {}),
          ("cold", "cold", {}), ("three_tower", "three_tower", {})]


def scoring_cost_us(model, split) -> float:
    """Microseconds per candidate: one user against the cached item corpus (``benchmarks.costs``)."""
    one_user = {k: v[:1] for k, v in split.examples("test").items()}
    return microseconds_per_candidate(model, one_user, split.candidates()[0])


COLUMNS = [("auc", "AUC", 4), ("gauc", "GAUC", 4), ("logloss", "logloss", 4),
           ("auc_love", "AUC (love = 5 stars)", 4), ("us_per_candidate", "µs / candidate", 2),
           ("seconds_per_epoch", "s/epoch", 1), ("best_epoch", "best epoch", 1)]
REFERENCE = "dssm"


def run_seed(split, seed, rows: SeededRows) -> None:
    """Every row of the table for one seed."""
    valid = split.examples("valid")
    train, labels, test = split.examples("train"), split.labels("train"), split.examples("test")
    test_labels = split.labels("test")
    evaluator = PreRankingEvaluator()
    like_logits = {}

    def run(label, name, overrides, objective="like"):
        model = tower_zoo.create_model(name, split.data.feature_spec, **overrides)
        started = time.perf_counter()
        valid_labels = split.labels("valid")[objective]
        validate = lambda m: auc(valid_labels, evaluator.predict(m, valid))  # noqa: E731
        if name == "rq_target_attention":   # the TARQ recipe: k-means codebooks, teacher co-trained in the same fit
            stopped = fit_tarq(model, train, labels[objective], split.candidates()[0], validate,
                               epochs=FLAGS.epochs, seed=seed)
        else:
            heads = getattr(model, "objective_names", None)   # three_tower: one head per objective
            stopped = Trainer(model, task="ranking", epochs=FLAGS.epochs, seed=seed).fit_with_early_stopping(
                train, validate, labels=labels[objective], verbose=False,
                objective_labels={o: labels[o] for o in heads} if heads else None)
        seconds = (time.perf_counter() - started) / len(stopped["values"])
        report = evaluator.evaluate(model, test, test_labels)
        row = {"auc": report.metrics["like"]["auc"], "gauc": report.metrics["like"]["gauc"],
               "logloss": report.metrics["like"]["logloss"], "auc_love": report.metrics["love"]["auc"],
               "seconds_per_epoch": seconds, "us_per_candidate": scoring_cost_us(model, split),
               "best_epoch": stopped["best_epoch"]}
        if name == "rq_target_attention":
            rows.extras.setdefault(label, {}).setdefault("codebook_usage", {})[seed] = model.codebook_usage(
                split.candidates()[0])
        rows.add(label, seed, row)
        print(f"{label:42s} seed {seed} AUC {row['auc']:.4f} GAUC {row['gauc']:.4f} logloss {row['logloss']:.4f} "
              f"{row['us_per_candidate']:.2f}us/cand {seconds:.1f}s/epoch best epoch {stopped['best_epoch']}",
              flush=True)
        return model

    for label, name, overrides in MODELS:
        model = run(label, name, overrides)
        if label == "int_tower":
            like_logits["like"] = evaluator.predict(model, test)
    love_model = run("int_tower (trained on love)", "int_tower", {}, objective="love")
    like_logits["love"] = evaluator.predict(love_model, test)
    fused = fuse_objective_scores(like_logits, {"like": 1.0, "love": 0.5})
    users = test[split.data.feature_spec.user_id_feature]
    rows.add("int_tower like + 0.5 · love (two models, fused)", seed,
             {"auc": auc(test_labels["like"], fused), "gauc": gauc(test_labels["like"], fused, users)[0],
              "auc_love": auc(test_labels["love"], fused)})


def codebook_lines(rows: SeededRows) -> list[str]:
    lines = []
    for label, extras in rows.extras.items():
        for seed, usage in extras.get("codebook_usage", {}).items():
            lines.append(f"{label}, seed {seed}: codewords used per level {usage['used']} of 64, perplexity "
                         f"{[round(p, 1) for p in usage['perplexity']]}, relative reconstruction error "
                         f"{usage['relative_reconstruction_error']:.4f}")
    return lines


def main(argv):
    del argv
    seeds = parse_seeds(FLAGS.seeds)
    split = time_split(load_dataset(FLAGS.dataset, FLAGS.data_dir), test_fraction=0.2, valid_fraction=0.1)
    rows = SeededRows(seeds)
    started = time.perf_counter()
    for seed in seeds:
        run_seed(split, seed, rows)
    minutes = (time.perf_counter() - started) / 60
    impressions = len(split.test)
    lines = [f"{split.data.name} exposures, global time split (test = latest 20%: {impressions:,} impressions), up "
             f"to {FLAGS.epochs} epochs (best validation AUC kept). Label like = rating >= 4. Mean ± 95% t-interval "
             f"over {len(seeds)} seeds ({', '.join(map(str, seeds))}); {minutes:.0f} min on this 2-core machine.", ""]
    lines += rows.markdown(COLUMNS, REFERENCE, "auc")
    lines += [""] + rows.noise_summary(REFERENCE, "auc") + [""] + codebook_lines(rows)
    flagged = regressions(rows.means("auc"), split.data.name, "preranking") if FLAGS.epochs == 8 else []
    lines += [""] + (flagged or ["No regression of mean AUC against benchmarks/baselines.json."])
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "preranking.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(FLAGS.out, "preranking.json"), "w") as handle:
        json.dump({"epochs": FLAGS.epochs, "seeds": seeds, "test_impressions": impressions,
                   "models": rows.to_json(), "minutes": minutes}, handle, indent=2)
    plot(rows, os.path.join(FLAGS.out, "preranking.png"))
    print("\n".join(lines))
    if FLAGS.check and flagged:
        raise SystemExit(1)


def plot(rows: SeededRows, path):
    """Mean test AUC (with its interval) against measured scoring cost per candidate."""
    labelled_scatter(rows.points("us_per_candidate", "auc"), path, "µs per candidate (user side cached, 2-core CPU)",
                     "test AUC (like), mean ± 95% CI", "Pre-ranking: quality vs scoring cost", log_x=True)


if __name__ == "__main__":
    app.run(main)
