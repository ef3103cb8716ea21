"""The ``tower-zoo`` command line (absl).

    tower-zoo list [--kind retrieval]
    tower-zoo train --model dssm --dataset movielens-100k --epochs 5 --out runs/dssm [--set temperature=0.1]
    tower-zoo evaluate --run runs/dssm [--ks 10,50,100] [--noscann]
    tower-zoo benchmark --models mf,dssm --epochs 5 --out runs/bench
    tower-zoo export --run runs/dssm --export_dir exports/dssm
    tower-zoo query --export_dir exports/dssm --user_id 1,2 --k 10 [--include_seen]
    tower-zoo recommend --export_dir exports/dssm [--users users.parquet] --k 100 --out recs.parquet [--include_seen]
    tower-zoo prepare --data my.yaml --out prepared/my [--memory_budget_mb 1024] [--overwrite]
    tower-zoo describe --data my.yaml [--plot popularity.png]

``train`` evaluates the trained model right away unless ``--noevaluate``: retrieval models by
Recall/NDCG@K over the full corpus, pre-ranking models (and the logistic-regression baseline) by
AUC/GAUC/logloss on the latest 20% of exposures.

Every mistake — a flag absl cannot parse, a value out of range, a value the data cannot satisfy, a file
that cannot be read or written — is one line on stderr, ``tower-zoo[ COMMAND]: error: ...``, naming the
flag or file and the value, with exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import typing
from typing import Any, Callable, Sequence

from absl import app, flags, logging

import tower_zoo
from tower_zoo import registry
from tower_zoo.models.config_checks import parse_text

FLAGS = flags.FLAGS
COMMANDS = ("list", "train", "evaluate", "benchmark", "export", "query", "recommend", "prepare", "describe")
OBJECTIVES = ("click", "like")  # the labels tower_zoo.training.objectives.movielens_objectives derives

flags.DEFINE_string("model", "dssm", "Registered model name (see `tower-zoo list`).")
flags.DEFINE_list("models", ["mf", "dssm"], "Retrieval models for `benchmark`.")
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
flags.DEFINE_enum("optimizer", "rowwise_adam", ["rowwise_adam", "lazy_adam", "adam", "adagrad", "sgd"],
                  "Optimizer; rowwise_adam and lazy_adam update only the embedding rows a batch touches, "
                  "rowwise_adam with one second moment per table row (tables + slots ≈ 2× the tables).")
flags.DEFINE_boolean("logq", None, "logQ correction per negative source (default: on for softmax only).")
flags.DEFINE_float("temperature", None, "Model temperature (shortcut for --set temperature=T).")
flags.DEFINE_boolean("learnable_temperature", None, "Learn the temperature (shortcut for --set).")
flags.DEFINE_float("downsample_threshold", 0.0, "Positive down-sampling threshold t (word2vec); 0 = off.")
flags.DEFINE_list("objective_weights", [], "Fused label weights, e.g. click=1,like=2 (objectives from ratings).")
flags.DEFINE_multi_string("set", [], "Model config override key=value (repeatable), e.g. --set hidden_units=256,64.")
flags.DEFINE_list("ks", ["10", "50", "100"], "Cut-offs K for Recall/HitRate/NDCG@K.")
flags.DEFINE_boolean("scann", True, "Also evaluate with a ScaNN index (exact search always runs).")
flags.DEFINE_boolean("evaluate", True, "Evaluate after `train`.")
flags.DEFINE_boolean("allow_setting_change", False, "train: resume a run with other trainer options (recorded in "
                     "run.json with the epoch it took effect after) instead of refusing.")
flags.DEFINE_boolean("allow_data_change", False, "train / evaluate / export: use data other than the run was "
                     "trained on (its fingerprint differs) instead of refusing; recorded in metrics.json.")
flags.DEFINE_enum("kind", None, ["retrieval", "pre_ranking", "baseline"], "Filter for `list`.")
flags.DEFINE_string("export_dir", None, "Export directory (export writes it, query reads it).")
flags.DEFINE_boolean("overwrite", False, "export, prepare: replace an existing export / prepared directory, only "
                     "a complete one of tower_zoo's that holds nothing else (never the current directory, one "
                     "holding the schema or its sources, or a run); recommend: replace an existing --out file.")
flags.DEFINE_list("user_id", [], "query: raw user ids to recommend for.")
flags.DEFINE_integer("k", 10, "query, recommend: how many items per user.")
flags.DEFINE_string("data", None, "train, prepare, describe: a dataset schema file (YAML/JSON) or a built-in dataset "
                    "name (movielens-100k, movielens-1m, synthetic); train and describe also take a prepared "
                    "directory. train --data streams training and evaluation from prepared shards.")
flags.DEFINE_string("tensorboard", None, "train: write TensorBoard logs (loss, learning rate, examples/s per epoch) here.")
flags.DEFINE_integer("memory_budget_mb", 1024, "prepare: memory for sorting and writing, beyond the vocabularies.")
flags.DEFINE_string("plot", None, "describe: write the item popularity plot (PNG) here.")
flags.DEFINE_string("users", None, "recommend: Parquet or CSV file of raw user rows (one column per user feature, "
                    "optional `exclude` lists); default: the users stored in the export.")
flags.DEFINE_integer("chunk_size", 1024, "recommend: users per chunk (memory bound and resume unit).")
flags.DEFINE_boolean("include_seen", False, "query, recommend: also return the items a user has already seen "
                     "(the export's stored `exclude` items, or the --users file's `exclude` column); by default "
                     "they are left out.")


def _require(name: str, predicate: Callable[[Any], bool], requirement: str) -> None:
    """A parse-time check of flag ``name``: absl reports ``flag --name=value: --name must be ...``."""
    flags.register_validator(name, lambda value: value is None or predicate(value),
                             message=f"--{name} must be {requirement}")


def _finite_at_least(low: float, strictly: bool = False) -> Callable[[float], bool]:
    return lambda value: math.isfinite(value) and (value > low if strictly else value >= low)


_require("seed", lambda v: 0 <= v < 2 ** 32, "an integer in [0, 4294967295]")
for _name in ("epochs", "batch_size", "num_global_negatives", "k", "chunk_size"):
    _require(_name, lambda v: v >= 1, ">= 1")
_require("hard_negatives", lambda v: v >= 0, ">= 0")
_require("learning_rate", _finite_at_least(0, strictly=True), "a finite number > 0")
_require("temperature", _finite_at_least(0, strictly=True), "a finite number > 0")
_require("margin", _finite_at_least(0), "a finite number >= 0")
_require("downsample_threshold", lambda v: math.isfinite(v) and 0 <= v <= 1, "0 (off) or a frequency in (0, 1]")
_require("alpha", lambda v: 0 <= v <= 1, "in [0, 1]")


class UsageError(ValueError):
    """A command-line mistake: printed without a traceback."""


def error_line(err: BaseException) -> str:
    """``err`` as one line: a file-system error names its file, TensorFlow's op prefix is dropped."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        text = f"{err.filename!r}: {err.strerror}"
    else:
        text = getattr(err, "message", None) or str(err) or type(err).__name__
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return " ".join(text.split())


def report_error(prefix: str, err: BaseException) -> int:
    """Prints ``prefix: error: ...`` on one line of stderr; returns the exit status 2."""
    print(f"{prefix}: error: {error_line(err)}", file=sys.stderr)
    return 2


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl's ``flags_parser``: a flag that cannot be parsed or fails its check is one line, exit status 2."""
    try:
        positional = FLAGS(list(argv))
    except flags.Error as err:
        raise SystemExit(report_error("tower-zoo", err)) from None
    if FLAGS["verbosity"].using_default_value:
        # absl.app.run raises an unset --verbosity to INFO, which would put INFO lines (a restored checkpoint,
        # TensorFlow's savers) on stderr beside an error: WARNING unless --verbosity asks for more.
        logging.set_verbosity(logging.WARNING)
    return positional


def parse_overrides(model_name: str, assignments: Sequence[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> typed overrides for ``model_name``'s config (unknown keys are an error)."""
    config_class = registry.model_config_class(model_name)
    annotations = typing.get_type_hints(config_class)
    valid = [f.name for f in dataclasses.fields(config_class)]
    overrides = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise UsageError(f"--set expects key=value, got {assignment!r}")
        key = key.strip()
        if key not in valid:
            raise UsageError(f"--set {key}: unknown config key for model {model_name!r}; "
                             f"valid keys: {', '.join(valid)}")
        try:
            overrides[key] = parse_text(key, text, annotations[key])
        except ValueError as err:
            raise UsageError(f"--set {err}") from None
    return overrides


def _ks() -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in FLAGS.ks}))
    except ValueError as err:
        raise UsageError(f"--ks must be integers, got {','.join(FLAGS.ks)}") from err
    if not ks or ks[0] < 1:
        raise UsageError(f"--ks must be positive, got {','.join(FLAGS.ks)}")
    return ks


def _trainer_overrides() -> dict[str, Any]:
    return {"epochs": FLAGS.epochs, "batch_size": FLAGS.batch_size, "learning_rate": FLAGS.learning_rate,
            "seed": FLAGS.seed, "logq_correction": FLAGS.logq, "negatives": FLAGS.negatives,
            "num_global_negatives": FLAGS.num_global_negatives, "alpha": FLAGS.alpha,
            "hard_negatives": FLAGS.hard_negatives, "loss": FLAGS.loss, "margin": FLAGS.margin,
            "downsample_threshold": FLAGS.downsample_threshold, "optimizer": FLAGS.optimizer,
            "tensorboard_dir": FLAGS.tensorboard}


def _model_overrides(model_name: str) -> dict[str, Any]:
    overrides = parse_overrides(model_name, FLAGS.set)
    for key in ("temperature", "learnable_temperature"):
        value = getattr(FLAGS, key)
        if value is not None:
            if key in overrides and overrides[key] != value:
                raise UsageError(f"--{key}={value} contradicts --set {key}={overrides[key]}")
            overrides[key] = value
    return overrides


def _objective_weights() -> dict[str, float]:
    """``--objective_weights name=number,...``: known objectives, finite non-negative weights, not all zero."""
    weights = {}
    for item in FLAGS.objective_weights:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise UsageError(f"--objective_weights expects name=number, got {item!r}")
        if name not in OBJECTIVES:
            raise UsageError(f"--objective_weights {item}: unknown objective {name!r}; objectives are "
                             f"{', '.join(OBJECTIVES)}")
        try:
            weights[name] = float(value)
        except ValueError:
            weights[name] = math.nan
        if not math.isfinite(weights[name]) or weights[name] < 0:
            raise UsageError(f"--objective_weights {item}: the weight must be a finite number >= 0")
    if weights and not any(weights.values()):
        raise UsageError(f"--objective_weights {','.join(FLAGS.objective_weights)}: all weights are 0, "
                         "so every example would weigh nothing")
    return weights


def _training_extras() -> dict[str, Any]:
    try:
        low, high = (int(x) for x in FLAGS.hard_rank_range)
    except ValueError as err:
        raise UsageError(f"--hard_rank_range needs two integers, got {','.join(FLAGS.hard_rank_range)}") from err
    if not 1 <= low <= high:
        raise UsageError(f"--hard_rank_range {low},{high}: need 1 <= low <= high")
    if FLAGS.hard_negatives and not FLAGS.hard_negatives_from:
        raise UsageError("--hard_negatives needs --hard_negatives_from RUN_DIR (the model that ranks them)")
    return {"hard_negatives_from": FLAGS.hard_negatives_from, "hard_rank_range": (low, high),
            "objective_weights": _objective_weights(), "allow_data_change": FLAGS.allow_data_change}


def _print_evaluation(result: dict[str, Any]) -> None:
    print()
    print(result["table"])
    if result.get("warning"):
        print(f"tower-zoo: warning: {result['warning']}", file=sys.stderr)
    print(f"\nmetrics written to {result['path']}")


def cmd_list() -> None:
    for name in tower_zoo.list_models(kind=FLAGS.kind):
        model_class = registry.lookup_model(name)[1]
        doc = (model_class.__doc__ or "").strip().splitlines()[0]
        print(f"{name:22s} {registry.model_kind(name):12s} {doc}")


def cmd_train() -> None:
    from tower_zoo.runs import evaluate_and_record, run_lock, train_run

    if not FLAGS.out:
        raise UsageError("train needs --out DIR")
    ks = _ks()  # a bad --ks is an error before training, not after
    registry.model_config_class(FLAGS.model)
    options = {"model_overrides": _model_overrides(FLAGS.model), "trainer_overrides": _trainer_overrides(),
               "allow_setting_change": FLAGS.allow_setting_change, **_training_extras()}
    with run_lock(FLAGS.out):
        if FLAGS.data:
            _train_on_prepared_data(ks, options)
            return
        model, split, _ = train_run(FLAGS.out, FLAGS.model, FLAGS.dataset, FLAGS.data_dir,
                                    ks=ks if FLAGS.evaluate else None, **options)
        print(f"run saved to {FLAGS.out}")
        if FLAGS.evaluate:
            _print_evaluation(evaluate_and_record(FLAGS.out, FLAGS.model, model, split, ks, FLAGS.scann))


def _train_on_prepared_data(ks, options) -> None:
    """``train --data``: a schema, built-in dataset or prepared directory, trained and evaluated streaming."""
    from tower_zoo.data.builtin.resolve import check_data_dir
    from tower_zoo.prepared_runs import evaluate_prepared_run, train_prepared_run

    check_data_dir(FLAGS.data, FLAGS.data_dir)
    extras = _training_extras()
    unsupported = [f"--{name}" for name, value in extras.items() if value and name not in ("hard_rank_range",
                                                                                           "allow_data_change")]
    if unsupported or not FLAGS["dataset"].using_default_value:
        raise UsageError(f"--data trains on prepared data; {', '.join(unsupported) or '--dataset'} apply to "
                         "--dataset runs only")
    model, prepared, _ = train_prepared_run(FLAGS.out, FLAGS.model, FLAGS.data, FLAGS.data_dir,
                                            options["model_overrides"], options["trainer_overrides"],
                                            ks=ks if FLAGS.evaluate else None,
                                            allow_setting_change=FLAGS.allow_setting_change,
                                            allow_data_change=FLAGS.allow_data_change,
                                            memory_budget_mb=FLAGS.memory_budget_mb)
    print(f"run saved to {FLAGS.out}")
    if FLAGS.evaluate:
        _print_evaluation(evaluate_prepared_run(FLAGS.out, FLAGS.model, model, prepared, ks, FLAGS.scann))


def cmd_evaluate() -> None:
    from tower_zoo.runs import evaluate_run

    if not FLAGS.run:
        raise UsageError("evaluate needs --run DIR (a directory written by `tower-zoo train`)")
    from tower_zoo.prepared_runs import DATASET_NAME, evaluate_prepared_run, load_prepared_run
    from tower_zoo.run_record import read_run, run_lock

    ks = _ks()  # a bad --ks is an error before the checkpoint is restored
    if read_run(FLAGS.run)["dataset"] == DATASET_NAME:
        with run_lock(FLAGS.run):
            model, prepared, record, warning = load_prepared_run(FLAGS.run, allow_data_change=FLAGS.allow_data_change)
            _print_evaluation(evaluate_prepared_run(FLAGS.run, record["model"], model, prepared, ks, FLAGS.scann,
                                                    warning))
        return
    _print_evaluation(evaluate_run(FLAGS.run, ks=ks, use_scann=FLAGS.scann,
                                   allow_data_change=FLAGS.allow_data_change))


def cmd_benchmark() -> None:
    from tower_zoo.data.builtin.catalog import load_dataset
    from tower_zoo.fileio import write_json_atomic
    from tower_zoo.runs import evaluate_split, metrics_table, report_rows, run_lock, summary_columns, train_run

    if not FLAGS.out:
        raise UsageError("benchmark needs --out DIR")
    if not FLAGS.models:
        raise UsageError("--models is empty: benchmark needs at least one retrieval model, e.g. --models=mf,dssm")
    repeated = sorted({name for name in FLAGS.models if FLAGS.models.count(name) > 1})
    if repeated:
        raise UsageError(f"--models {','.join(FLAGS.models)} names {', '.join(repeated)} more than once")
    for name in FLAGS.models:
        if registry.model_kind(name) != "retrieval":  # also fails fast on a typo, before any training
            raise UsageError(f"--models {name}: benchmark compares retrieval models, and {name!r} is "
                             f"{registry.model_kind(name)} (see benchmarks/preranking.py)")
    ks = _ks()
    with run_lock(FLAGS.out):
        data = load_dataset(FLAGS.dataset, FLAGS.data_dir)
        rows, timings = {}, {}
        for name in FLAGS.models:
            model, split, history = train_run(os.path.join(FLAGS.out, name), name, FLAGS.dataset, FLAGS.data_dir,
                                              {}, _trainer_overrides(), data=data, ks=ks, **_training_extras())
            reports = evaluate_split(model, split, ks=ks, use_scann=FLAGS.scann, with_popularity=not rows)
            rows.update(report_rows(name, reports))
            seconds = [h["seconds"] for h in history if "seconds" in h]
            timings[name] = sum(seconds) / len(seconds) if seconds else None
        print()
        print(metrics_table(rows, summary_columns(ks)))
        print("\nseconds per epoch: " + ", ".join(f"{n} {'n/a' if s is None else f'{s:.1f}'}"
                                                  for n, s in timings.items()))
        write_json_atomic(os.path.join(FLAGS.out, "benchmark.json"), {"metrics": rows, "seconds_per_epoch": timings})


def cmd_export() -> None:
    from tower_zoo.runs import export_run

    if not FLAGS.run or not FLAGS.export_dir:
        raise UsageError("export needs --run DIR (a trained run) and --export_dir DIR")
    from tower_zoo.prepared_runs import DATASET_NAME, export_prepared_run
    from tower_zoo.run_record import read_run

    export = export_prepared_run if read_run(FLAGS.run)["dataset"] == DATASET_NAME else export_run
    export(FLAGS.run, FLAGS.export_dir, overwrite=FLAGS.overwrite, allow_data_change=FLAGS.allow_data_change)
    print(f"exported {FLAGS.run} to {FLAGS.export_dir}")


def _user_ids() -> list[int]:
    try:
        user_ids = [int(u) for u in FLAGS.user_id]
    except ValueError as err:
        raise UsageError(f"--user_id must be integers, got {','.join(FLAGS.user_id)}") from err
    outside = [u for u in user_ids if not -2 ** 63 <= u < 2 ** 63]
    if outside:
        raise UsageError(f"--user_id {outside[0]} is outside the int64 range of ids")
    return user_ids


def cmd_query() -> None:
    from tower_zoo import serving

    if not FLAGS.export_dir or not FLAGS.user_id:
        raise UsageError("query needs --export_dir DIR and --user_id ID[,ID...]")
    user_ids = _user_ids()
    retriever = serving.load(FLAGS.export_dir)
    if not isinstance(retriever, serving.Retriever):
        raise UsageError(f"--export_dir {FLAGS.export_dir}: query serves retrieval exports, and this one is a "
                         "pre-ranking candidate scorer (its scorer/ SavedModel scores given candidate ids)")
    if FLAGS.k > len(retriever.item_ids):
        raise UsageError(f"--k {FLAGS.k} exceeds the {len(retriever.item_ids)} items of export {FLAGS.export_dir!r}")
    ids, scores = retriever.search_users(user_ids, FLAGS.k, include_seen=FLAGS.include_seen)
    for user, row, row_scores in zip(user_ids, ids, scores):
        print(f"user {user}:")
        for rank, (item, score) in enumerate(zip(row, row_scores), start=1):
            if item >= 0:
                print(f"  {rank:3d}. {retriever.titles.get(int(item), item)}  ({score:.3f})")


def cmd_recommend() -> None:
    from tower_zoo.serving.batch import recommend

    if not FLAGS.export_dir or not FLAGS.out:
        raise UsageError("recommend needs --export_dir DIR (a retrieval export) and --out FILE (Parquet)")
    summary = recommend(FLAGS.export_dir, FLAGS.out, FLAGS.k, FLAGS.users, FLAGS.chunk_size, FLAGS.overwrite,
                        include_seen=FLAGS.include_seen)
    resumed = f", {summary['resumed']} chunk(s) resumed" if summary["resumed"] else ""
    print(f"top-{FLAGS.k} for {summary['users']:,} users written to {FLAGS.out} ({summary['chunks']} chunk(s)"
          f"{resumed})")


def cmd_prepare() -> None:
    from tower_zoo.data.builtin.resolve import resolve_schema
    from tower_zoo.data.prepare.run import PrepareOptions, prepare

    if not FLAGS.data or not FLAGS.out:
        raise UsageError("prepare needs --data SCHEMA (a schema file or built-in dataset) and --out DIR")
    if FLAGS.memory_budget_mb < 16:
        raise UsageError(f"--memory_budget_mb must be >= 16, got {FLAGS.memory_budget_mb}")
    prepare(resolve_schema(FLAGS.data, FLAGS.data_dir), FLAGS.out,
            PrepareOptions(memory_budget_mb=FLAGS.memory_budget_mb, seed=FLAGS.seed), overwrite=FLAGS.overwrite,
            verbose=True)


def cmd_describe() -> None:
    from tower_zoo.data.read.describe import describe

    if not FLAGS.data:
        raise UsageError("describe needs --data SCHEMA (a schema file, built-in dataset or prepared directory)")
    print(describe(FLAGS.data, plot=FLAGS.plot, data_dir=FLAGS.data_dir))
    if FLAGS.plot:
        print(f"popularity plot written to {FLAGS.plot}")


def main(argv: Sequence[str]) -> int:
    commands = {"list": cmd_list, "train": cmd_train, "evaluate": cmd_evaluate, "benchmark": cmd_benchmark,
                "export": cmd_export, "query": cmd_query, "recommend": cmd_recommend, "prepare": cmd_prepare,
                "describe": cmd_describe}
    if len(argv) != 2 or argv[1] not in commands:
        print(f"tower-zoo: error: usage: tower-zoo {{{'|'.join(COMMANDS)}}} [flags]; "
              f"got {' '.join(argv[1:]) or 'no command'}", file=sys.stderr)
        return 2
    import tensorflow as tf

    if logging.get_verbosity() <= logging.WARNING:  # see parse_flags
        tf.get_logger().setLevel("WARNING")  # TensorFlow's savers log each checkpoint at INFO
    # File-system failures inside TensorFlow (a full disk while saving a checkpoint, a read-only directory).
    io_errors = (tf.errors.ResourceExhaustedError, tf.errors.PermissionDeniedError, tf.errors.DataLossError,
                 tf.errors.UnavailableError)
    try:
        commands[argv[1]]()
    except (ValueError, OSError, FloatingPointError, *io_errors) as err:
        return report_error(f"tower-zoo {argv[1]}", err)
    return 0


def run() -> None:
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
