"""The ``tower-zoo`` command line (absl).

    tower-zoo list [--kind retrieval]
    tower-zoo train --model dssm --dataset movielens-100k --epochs 5 --out runs/dssm [--set temperature=0.1]
    tower-zoo evaluate --run runs/dssm [--ks 10,50,100] [--noscann]
    tower-zoo benchmark --models mf,dssm --epochs 5 --out runs/bench
    tower-zoo export --run runs/dssm --export_dir exports/dssm
    tower-zoo query --export_dir exports/dssm --user_id 1,2 --k 10
    tower-zoo prepare --data my.yaml --out prepared/my [--memory_budget_mb 1024] [--overwrite]
    tower-zoo describe --data my.yaml [--plot popularity.png]

``train`` evaluates the trained model right away unless ``--noevaluate``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Sequence

from absl import app, flags, logging

import tower_zoo
from tower_zoo import registry

FLAGS = flags.FLAGS
COMMANDS = ("list", "train", "evaluate", "benchmark", "export", "query", "prepare", "describe")

flags.DEFINE_string("model", "dssm", "Registered model name (see `tower-zoo list`).")
flags.DEFINE_list("models", ["mf", "dssm"], "Models for `benchmark`.")
flags.DEFINE_string("dataset", "movielens-100k", "Dataset name: movielens-100k, movielens-1m, synthetic.")
flags.DEFINE_string("data_dir", None, "Directory with GroupLens files (u.data... or ratings.dat...).")
flags.DEFINE_string("out", None, "Run directory to write (train, benchmark).")
flags.DEFINE_string("run", None, "Run directory to read (evaluate).")
flags.DEFINE_integer("epochs", 5, "Training epochs.")
flags.DEFINE_integer("batch_size", 512, "Training batch size (also the number of in-batch negatives).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 42, "Random seed.")
flags.DEFINE_enum("negatives", "in_batch", ["in_batch", "global", "mixed"], "Negative source.")
flags.DEFINE_integer("num_global_negatives", 256, "Global negatives per batch (global / mixed).")
flags.DEFINE_float("alpha", 0.75, "Global sampler: probability proportional to count^alpha.")
flags.DEFINE_integer("hard_negatives", 0, "Hard negatives per example, mined from --hard_negatives_from.")
flags.DEFINE_string("hard_negatives_from", None, "Run directory of the model whose ranking gives hard negatives.")
flags.DEFINE_list("hard_rank_range", ["101", "500"], "Rank band (1-based, inclusive) hard negatives come from.")
flags.DEFINE_enum("loss", "softmax", ["softmax", "bce", "hinge", "bpr", "triplet_logistic"], "Training loss.")
flags.DEFINE_float("margin", 0.1, "Margin of the hinge loss.")
flags.DEFINE_boolean("logq", None, "logQ correction per negative source (default: on for softmax only).")
flags.DEFINE_float("temperature", None, "Model temperature (shortcut for --set temperature=T).")
flags.DEFINE_boolean("learnable_temperature", None, "Learn the temperature (shortcut for --set).")
flags.DEFINE_float("downsample_threshold", 0.0, "Positive down-sampling threshold t (word2vec); 0 = off.")
flags.DEFINE_list("objective_weights", [], "Fused label weights, e.g. click=1,like=2 (objectives from ratings).")
flags.DEFINE_multi_string("set", [], "Model config override key=value (repeatable), e.g. --set hidden_units=256,64.")
flags.DEFINE_list("ks", ["10", "50", "100"], "Cut-offs K for Recall/HitRate/NDCG@K.")
flags.DEFINE_boolean("scann", True, "Also evaluate with a ScaNN index (exact search always runs).")
flags.DEFINE_boolean("evaluate", True, "Evaluate after `train`.")
flags.DEFINE_enum("kind", None, ["retrieval", "pre_ranking", "baseline"], "Filter for `list`.")
flags.DEFINE_string("export_dir", None, "Export directory (export writes it, query reads it).")
flags.DEFINE_boolean("overwrite", False, "export, prepare: replace an existing export / prepared directory.")
flags.DEFINE_list("user_id", [], "query: raw user ids to recommend for.")
flags.DEFINE_integer("k", 10, "query: how many items per user.")
flags.DEFINE_string("data", None, "prepare, describe: a dataset schema file (YAML/JSON) or a built-in dataset name "
                    "(movielens-100k, movielens-1m, synthetic); describe also takes a prepared directory.")
flags.DEFINE_integer("memory_budget_mb", 1024, "prepare: memory for sorting and writing, beyond the vocabularies.")
flags.DEFINE_string("plot", None, "describe: write the item popularity plot (PNG) here.")



class UsageError(ValueError):
    """A command-line mistake: printed without a traceback."""


def parse_value(key: str, text: str, default: Any) -> Any:
    """Parses ``text`` for a config field whose default is ``default`` (its type guides parsing)."""
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple) or default is None:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)
        return text
    except ValueError as err:
        raise UsageError(f"--set {key}={text}: expected a {type(default).__name__}") from err


def parse_overrides(model_name: str, assignments: Sequence[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> typed overrides for ``model_name``'s config (unknown keys are an error)."""
    config_class = registry.model_config_class(model_name)
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None)
                for f in dataclasses.fields(config_class)}
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise UsageError(f"--set expects key=value, got {assignment!r}")
        key = key.strip()
        if key not in defaults:
            raise UsageError(f"--set {key}: unknown config key for model {model_name!r}; "
                             f"valid keys: {', '.join(defaults)}")
        overrides[key] = parse_value(key, text, defaults[key])
    return overrides


def _ks() -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in FLAGS.ks}))
    except ValueError as err:
        raise UsageError(f"--ks must be integers, got {FLAGS.ks}") from err
    if not ks or ks[0] < 1:
        raise UsageError(f"--ks must be positive, got {FLAGS.ks}")
    return ks


def _trainer_overrides() -> dict[str, Any]:
    return {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate,
            "seed": FLAGS.seed, "logq_correction": FLAGS.logq, "negatives": FLAGS.negatives,
            "num_global_negatives": FLAGS.num_global_negatives, "alpha": FLAGS.alpha,
            "hard_negatives": FLAGS.hard_negatives, "loss": FLAGS.loss, "margin": FLAGS.margin,
            "downsample_threshold": FLAGS.downsample_threshold}


def _model_overrides(model_name: str) -> dict[str, Any]:
    overrides = parse_overrides(model_name, FLAGS.set)
    for key in ("temperature", "learnable_temperature"):
        value = getattr(FLAGS, key)
        if value is not None:
            if key in overrides and overrides[key] != value:
                raise UsageError(f"--{key}={value} contradicts --set {key}={overrides[key]}")
            overrides[key] = value
    return overrides


def _training_extras() -> dict[str, Any]:
    try:
        low, high = (int(x) for x in FLAGS.hard_rank_range)
    except ValueError as err:
        raise UsageError(f"--hard_rank_range needs two integers, got {FLAGS.hard_rank_range}") from err
    weights = {}
    for item in FLAGS.objective_weights:
        name, sep, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError as err:
            raise UsageError(f"--objective_weights expects name=number, got {item!r}") from err
        if not sep:
            raise UsageError(f"--objective_weights expects name=number, got {item!r}")
    if FLAGS.hard_negatives and not FLAGS.hard_negatives_from:
        raise UsageError("--hard_negatives needs --hard_negatives_from RUN_DIR (the model that ranks them)")
    return {"hard_negatives_from": FLAGS.hard_negatives_from, "hard_rank_range": (low, high),
            "objective_weights": weights}


def _summary_columns(ks: Sequence[int]) -> list[str]:
    return [f"recall@{k}" for k in ks] + [f"ndcg@{ks[0]}", f"hit_rate@{ks[0]}", f"mrr@{max(ks)}"]


def _report_rows(name: str, reports: dict[str, Any]) -> dict[str, dict[str, float]]:
    rows = {}
    for method, values in reports["model"].metrics.items():
        rows[f"{name} ({method})"] = values
    if "popularity" in reports:
        rows["most-popular"] = reports["popularity"].metrics["exact"]
    return rows


def _evaluate_and_print(name: str, model, split, run_dir: str) -> dict[str, Any]:
    from tower_zoo.runs import evaluate_split, metrics_table
    from tower_zoo.training.trainer import write_json_atomic

    ks = _ks()
    reports = evaluate_split(model, split, ks=ks, use_scann=FLAGS.scann)
    print()
    print(metrics_table(_report_rows(name, reports), _summary_columns(ks)))
    print()
    print(reports["model"].to_markdown())
    write_json_atomic(os.path.join(run_dir, "metrics.json"),
                      {key: report.to_dict() for key, report in reports.items()})
    print(f"\nmetrics written to {os.path.join(run_dir, 'metrics.json')}")
    return reports


def cmd_list() -> None:
    for name in tower_zoo.list_models(kind=FLAGS.kind):
        model_class = registry._lookup(name)[1]
        doc = (model_class.__doc__ or "").strip().splitlines()[0]
        print(f"{name:22s} {getattr(model_class, 'model_kind', '?'):12s} {doc}")


def cmd_train() -> None:
    from tower_zoo.runs import train_run

    if not FLAGS.out:
        raise UsageError("train needs --out DIR")
    if FLAGS.evaluate:
        _ks()  # a bad --ks is an error before training, not after
    model, split, _ = train_run(FLAGS.out, FLAGS.model, FLAGS.dataset, FLAGS.data_dir,
                                _model_overrides(FLAGS.model), _trainer_overrides(), **_training_extras())
    print(f"run saved to {FLAGS.out}")
    if FLAGS.evaluate:
        _evaluate_and_print(FLAGS.model, model, split, FLAGS.out)


def cmd_evaluate() -> None:
    from tower_zoo.runs import load_run

    if not FLAGS.run:
        raise UsageError("evaluate needs --run DIR (a directory written by `tower-zoo train`)")
    model, split, record = load_run(FLAGS.run)
    _evaluate_and_print(record["model"], model, split, FLAGS.run)


def cmd_benchmark() -> None:
    from tower_zoo.data.catalog import load_dataset
    from tower_zoo.runs import evaluate_split, metrics_table, train_run

    if not FLAGS.out:
        raise UsageError("benchmark needs --out DIR")
    for name in FLAGS.models:
        registry.model_config_class(name)  # fail fast on a typo, before any training
    data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
    ks = _ks()
    rows, timings = {}, {}
    for name in FLAGS.models:
        model, split, history = train_run(os.path.join(FLAGS.out, name), name, FLAGS.dataset, FLAGS.data_dir,
                                          {}, _trainer_overrides(), data=data, **_training_extras())
        reports = evaluate_split(model, split, ks=ks, use_scann=FLAGS.scann, with_popularity=not rows)
        rows.update(_report_rows(name, reports))
        timings[name] = sum(h["seconds"] for h in history) / len(history)
    print()
    print(metrics_table(rows, _summary_columns(ks)))
    print("\nseconds per epoch: " + ", ".join(f"{n} {s:.1f}" for n, s in timings.items()))
    with open(os.path.join(FLAGS.out, "benchmark.json"), "w") as handle:
        json.dump({"metrics": rows, "seconds_per_epoch": timings}, handle, indent=2)


def cmd_export() -> None:
    from tower_zoo.runs import export_run

    if not FLAGS.run or not FLAGS.export_dir:
        raise UsageError("export needs --run DIR (a trained run) and --export_dir DIR")
    export_run(FLAGS.run, FLAGS.export_dir, overwrite=FLAGS.overwrite)
    print(f"exported {FLAGS.run} to {FLAGS.export_dir}")


def cmd_query() -> None:
    from tower_zoo import serving

    if not FLAGS.export_dir or not FLAGS.user_id:
        raise UsageError("query needs --export_dir DIR and --user_id ID[,ID...]")
    try:
        user_ids = [int(u) for u in FLAGS.user_id]
    except ValueError as err:
        raise UsageError(f"--user_id must be integers, got {FLAGS.user_id}") from err
    retriever = serving.load(FLAGS.export_dir)
    ids, scores = retriever.search_users(user_ids, FLAGS.k)
    for user, row, row_scores in zip(user_ids, ids, scores):
        print(f"user {user}:")
        for rank, (item, score) in enumerate(zip(row, row_scores), start=1):
            if item >= 0:
                print(f"  {rank:3d}. {retriever.titles.get(int(item), item)}  ({score:.3f})")


def cmd_prepare() -> None:
    from tower_zoo.data.builtin import resolve_schema
    from tower_zoo.data.prepare import PrepareOptions, prepare

    if not FLAGS.data or not FLAGS.out:
        raise UsageError("prepare needs --data SCHEMA (a schema file or built-in dataset) and --out DIR")
    if FLAGS.memory_budget_mb < 16:
        raise UsageError(f"--memory_budget_mb must be >= 16, got {FLAGS.memory_budget_mb}")
    prepare(resolve_schema(FLAGS.data, FLAGS.data_dir), FLAGS.out,
            PrepareOptions(memory_budget_mb=FLAGS.memory_budget_mb, seed=FLAGS.seed), overwrite=FLAGS.overwrite,
            verbose=True)


def cmd_describe() -> None:
    from tower_zoo.data.describe import describe

    if not FLAGS.data:
        raise UsageError("describe needs --data SCHEMA (a schema file, built-in dataset or prepared directory)")
    print(describe(FLAGS.data, plot=FLAGS.plot, data_dir=FLAGS.data_dir))
    if FLAGS.plot:
        print(f"popularity plot written to {FLAGS.plot}")


def main(argv: Sequence[str]) -> int:
    commands = {"list": cmd_list, "train": cmd_train, "evaluate": cmd_evaluate, "benchmark": cmd_benchmark,
                "export": cmd_export, "query": cmd_query, "prepare": cmd_prepare, "describe": cmd_describe}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"usage: tower-zoo {{{'|'.join(COMMANDS)}}} [flags]; got {' '.join(argv[1:]) or 'no command'}",
              file=sys.stderr)
        return 2
    import tensorflow as tf

    if FLAGS["verbosity"].using_default_value:  # after absl's flag parsing, which resets logging levels
        tf.get_logger().setLevel("WARNING")
        logging.set_verbosity(logging.WARNING)  # TensorFlow's savers log each checkpoint at INFO
    try:
        commands[argv[1]]()
    except (UsageError, ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"tower-zoo {argv[1]}: error: {err}", file=sys.stderr)
        return 2
    return 0


def run() -> None:
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run()
