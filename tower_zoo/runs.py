"""Run directories: train a registered model on a named dataset, evaluate it later from disk.

A run directory holds ``run.json`` (model name and config overrides, dataset and the fingerprint of its
data, the split, trainer options, the feature spec, per-epoch history, recorded setting changes; see
``tower_zoo.run_record``), ``checkpoints/`` (the Trainer's checkpoints and manifest) and ``metrics.json``.

Each model is trained and evaluated the way its kind needs: retrieval models on the leave-last-out split,
ranked against the full item corpus (Recall/NDCG@K, exact and ScaNN); pre-ranking models and the
logistic-regression baseline pointwise on every exposure of a global time split (label like = rating >= 4),
scored by AUC/GAUC/logloss. Values the data cannot satisfy (K beyond the corpus, a batch larger than the
training set, more hard negatives than the rank band holds, a down-sampling threshold that keeps nothing)
are refused before any training.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from tower_zoo.data.builtin.catalog import load_dataset
from tower_zoo.data.memory.dataset import InteractionData
from tower_zoo.data.memory.splits import RetrievalSplit, leave_last_out, time_split
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import FeatureSpec
from tower_zoo.evaluation import RetrievalEvaluator
from tower_zoo.evaluation.preranking import PreRankingEvaluator
from tower_zoo.fileio import write_json_atomic
from tower_zoo.registry import create_model, model_kind, prepare_data
from tower_zoo.run_record import (RUN_FILE, RunInUseError, check_data, check_fixed_settings, data_fingerprint,
                                  describe_changes, merge_history, read_run, run_lock, setting_changes)
from tower_zoo.tasks.samplers import keep_probability
from tower_zoo.training.checkpoints import restore_latest_weights
from tower_zoo.training.hard_negatives import mine_hard_negatives
from tower_zoo.training.memory_checks import check_tables_fit
from tower_zoo.training.objectives import fuse_label_weights, movielens_objectives
from tower_zoo.training.trainer import Trainer, make_trainer_config

CHECKPOINT_SUBDIR = "checkpoints"
METRICS_FILE = "metrics.json"
DEFAULT_KS = (10, 50, 100)
SPLITS = {"leave_last_out": leave_last_out, "time_split": time_split}
RANKING_LABEL = "like"

__all__ = ["RUN_FILE", "RunInUseError", "data_fingerprint", "evaluate_run", "evaluate_split", "export_run",
           "load_run", "raw_user_rows", "read_run", "run_lock", "train_run", "training_inputs"]


def is_ranking(model_name: str) -> bool:
    """Pre-ranking models and the baseline train pointwise on exposures; retrieval models on positives."""
    return model_kind(model_name) != "retrieval"


def split_settings(model_name: str) -> dict[str, Any]:
    """How a run of ``model_name`` splits its data (recorded in run.json, replayed by ``load_run``)."""
    if is_ranking(model_name):
        return {"method": "time_split", "test_fraction": 0.2}
    return {"method": "leave_last_out", "num_test": 1}


def make_split(data: InteractionData, settings: Mapping[str, Any]) -> RetrievalSplit:
    """The split a run record names."""
    options = dict(settings)
    method = options.pop("method", None)
    if method not in SPLITS:
        raise ValueError(f"unknown split method {method!r} in the run record; known: {', '.join(SPLITS)}")
    return SPLITS[method](data, **options)


def _normalize(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def _trainer_settings(trainer_config) -> dict[str, Any]:
    """The trainer options a run records: every option's effective value (the checkpoint path aside)."""
    return _normalize({k: v for k, v in dataclasses.asdict(trainer_config).items() if k != "checkpoint_dir"})


def _effective_trainer_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded trainer dict in effective form (older records hold only the options that were given)."""
    try:
        return _trainer_settings(make_trainer_config({k: v for k, v in options.items() if k != "checkpoint_dir"}))
    except (TypeError, ValueError):
        return dict(options)


def run_settings(model_name: str, dataset: str, data_dir: str | None, model_overrides: Mapping[str, Any],
                 trainer_config, training: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a run records (model, data, split, trainer, training options), normalized for comparison
    with an existing run's."""
    trainer = _trainer_settings(trainer_config)
    return _normalize({"model": model_name, "model_overrides": dict(model_overrides), "dataset": dataset,
                       "data_dir": os.path.abspath(data_dir) if data_dir else None,
                       "split": split_settings(model_name), "trainer": trainer, **training})


def training_inputs(model, split: RetrievalSplit, trainer_config, hard_negatives_from: str | None = None,
                    hard_rank_range: tuple[int, int] = (101, 500),
                    objective_weights: Mapping[str, float] | None = None,
                    allow_data_change: bool = False, dataset: str | None = None) -> dict[str, Any]:
    """The keyword arguments of ``Trainer.fit`` beyond the examples: the item table, hard negatives
    mined with the model of run ``hard_negatives_from`` (trained on the same ``dataset``, when it is given;
    read as a reader, so a run still training there is not disturbed), and multi-objective labels or weights
    (objectives from ratings: click = any rating, like = rating >= 4, love = the top rating); for task="ranking", the
    like labels of every exposure."""
    examples = split.examples("train")
    item_table, _ = split.candidates()
    inputs: dict[str, Any] = {"item_table": item_table}
    if trainer_config.resolved_task(model) == "ranking":
        labels = split.labels("train")
        inputs["labels"] = labels[RANKING_LABEL]
        if getattr(model, "objective_names", None):  # one head per objective (three_tower): like, love
            inputs["objective_labels"] = {name: labels[name] for name in model.objective_names}
        return inputs
    if trainer_config.hard_negatives:
        if not hard_negatives_from:
            raise ValueError("hard_negatives > 0 needs a previous run to mine them from (--hard_negatives_from DIR)")
        miner_record = read_run(hard_negatives_from)
        check_same_dataset(miner_record, dataset, hard_negatives_from)
        miner = miner_record["model"]
        if is_ranking(miner):
            raise ValueError(f"--hard_negatives_from {hard_negatives_from}: {miner!r} is {model_kind(miner)}: hard "
                             "negatives are mined from the full-corpus ranking of a retrieval model")
        previous, _, _ = load_run(hard_negatives_from, data=split.data, allow_data_change=allow_data_change)
        inputs["hard_negatives"] = mine_hard_negatives(previous, examples, item_table, trainer_config.hard_negatives,
                                                       hard_rank_range, seed=trainer_config.seed)
    labels = {**movielens_objectives(split.train["rating"].to_numpy()), "love": split.labels("train")["love"]}
    if getattr(model, "objective_names", None):
        inputs["objective_labels"] = labels
    elif objective_weights:
        inputs["sample_weight"] = fuse_label_weights(labels, objective_weights)
    return inputs


def check_same_dataset(miner_record: Mapping[str, Any], dataset: str | None, miner_dir: str) -> None:
    """ValueError naming both datasets when run ``miner_dir`` was trained on another dataset than ``dataset``."""
    theirs = miner_record["dataset"]
    if dataset is None or theirs == dataset:
        return
    where = f" ({miner_record['data']})" if miner_record.get("data") else ""
    raise ValueError(f"--hard_negatives_from {miner_dir}: that run was trained on another dataset, {theirs!r}{where}, "
                     f"and this run trains on {dataset!r}; mine hard negatives from a run on the same dataset")


def hard_band_width(split: RetrievalSplit, rank_range: tuple[int, int]) -> int:
    """How many items the rank band ``rank_range`` holds for this corpus (the band ends where the corpus,
    less an example's own item and history, ends; see ``mine_hard_negatives``)."""
    spec = split.data.feature_spec
    history = spec.get(HISTORY_FEATURE).max_length if HISTORY_FEATURE in spec.names else 0
    low, high = rank_range
    return max(0, min(high, split.data.num_items - 1 - history) - low + 1)


def check_ks(ks: Sequence[int] | None, data: InteractionData) -> None:
    """ValueError when a retrieval cut-off K exceeds the item corpus."""
    if ks and max(ks) > data.num_items:
        raise ValueError(f"--ks {max(ks)} exceeds the {data.num_items} items of the {data.name} corpus")


def check_against_data(split: RetrievalSplit, trainer_config, ks: Sequence[int] | None = None,
                       hard_rank_range: tuple[int, int] = (101, 500)) -> None:
    """ValueError naming the flag and its value for what this data cannot satisfy; runs before any training."""
    corpus, rows = split.data.num_items, len(split.train)
    if trainer_config.task != "ranking":  # train_run names the ranking task explicitly
        check_ks(ks, split.data)
    if trainer_config.batch_size > rows:
        raise ValueError(f"--batch_size {trainer_config.batch_size} exceeds the {rows} training interactions")
    if trainer_config.hard_negatives:
        width = hard_band_width(split, hard_rank_range)
        if trainer_config.hard_negatives > width:
            raise ValueError(f"--hard_negatives {trainer_config.hard_negatives} exceeds the {width} items of the "
                             f"rank band {hard_rank_range[0]}-{hard_rank_range[1]} in a corpus of {corpus} items")
    if trainer_config.downsample_threshold:
        codes = split.examples("train")[split.data.feature_spec.item_id_feature]
        kept = keep_probability(np.bincount(codes), trainer_config.downsample_threshold)[codes].sum()
        if kept < min(trainer_config.batch_size, rows):
            raise ValueError(f"--downsample_threshold {trainer_config.downsample_threshold:g} keeps about "
                             f"{kept:.0f} of {rows} training interactions per epoch, less than one batch "
                             f"({trainer_config.batch_size}); word2vec uses 1e-5 to 1e-3")


def start_record(out_dir: str, settings: dict[str, Any], fingerprint: Mapping[str, Any], spec_record: Mapping[str, Any],
                 source: str, allow_setting_change: bool, allow_data_change: bool) -> dict[str, Any]:
    """The run record to train under: a new one, or the existing run's with any allowed change recorded.

    ``fingerprint``: the data's (see ``data_fingerprint``); ``spec_record``: what run.json keeps of the
    feature spec; ``source``: where the data came from."""
    record = {**settings, "feature_spec": dict(spec_record), "data_source": source,
              "data_fingerprint": dict(fingerprint), "history": [], "setting_changes": []}
    if not os.path.exists(os.path.join(out_dir, RUN_FILE)):
        return record
    previous = read_run(out_dir)
    previous["trainer"] = _effective_trainer_settings(previous.get("trainer", {}))
    check_fixed_settings(previous, settings, out_dir)
    changes = setting_changes(previous, settings)
    if changes and not allow_setting_change:
        raise ValueError(f"run {out_dir!r} was trained with other settings: {describe_changes(changes)}; resume "
                         "with the same settings, pass --allow_setting_change to record the change, or use a "
                         "new --out directory")
    if check_data(previous, fingerprint, out_dir, allow_data_change):
        changes["data_fingerprint"] = [previous["data_fingerprint"], fingerprint]
    history = previous.get("history", [])
    record.update(history=history, setting_changes=list(previous.get("setting_changes", [])))
    if changes:
        record["setting_changes"].append({"after_epoch": max([h["epoch"] for h in history], default=0),
                                          "changes": changes})
    return record


class RecordEachEpoch(tf.keras.callbacks.Callback):
    """Rewrites ``run.json`` after every epoch, so the history of a run killed later still lists the epochs
    its checkpoints hold."""

    def __init__(self, out_dir: str, record: dict[str, Any], trainer: Trainer):
        super().__init__()
        self.out_dir, self.record, self.trainer = out_dir, record, trainer
        self.new: list[dict[str, Any]] = []

    def history(self) -> list[dict[str, Any]]:
        return merge_history(self.record["history"], self.new, int(self.trainer.epoch.numpy()))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.new.append({"epoch": epoch + 1, "loss": float(logs["loss"]), "seconds": float(logs["epoch_seconds"]),
                         "examples_per_second": float(logs["examples_per_second"])})
        write_json_atomic(os.path.join(self.out_dir, RUN_FILE), {**self.record, "status": "training",
                                                                   "history": self.history()})


def train_run(out_dir: str, model_name: str, dataset: str = "movielens-100k", data_dir: str | None = None,
              model_overrides: Mapping[str, Any] | None = None,
              trainer_overrides: Mapping[str, Any] | None = None, data: InteractionData | None = None,
              verbose: bool = True, hard_negatives_from: str | None = None,
              hard_rank_range: tuple[int, int] = (101, 500), objective_weights: Mapping[str, float] | None = None,
              ks: Sequence[int] | None = None, allow_setting_change: bool = False,
              allow_data_change: bool = False):
    """Trains ``model_name`` on ``dataset`` into ``out_dir`` (locked while it runs), or resumes the run there.

    A resumed run must have the same model, data and split; other trainer options or training inputs are
    refused unless ``allow_setting_change`` (then recorded), other data unless ``allow_data_change``. ``ks``:
    the cut-offs the caller will evaluate at, checked against the corpus before training. Returns
    (model, split, the run's full history)."""
    ranking = is_ranking(model_name)
    if ranking and objective_weights:
        raise ValueError(f"--objective_weights applies to retrieval models; {model_name!r} is {model_kind(model_name)}"
                         " and trains on the like label of every exposure")
    trainer_options = {**({"task": "ranking"} if ranking else {}), **dict(trainer_overrides or {}),
                       "checkpoint_dir": os.path.join(out_dir, CHECKPOINT_SUBDIR),
                       "allow_setting_changes": allow_setting_change, "hard_rank_range": tuple(hard_rank_range)}
    trainer_config = make_trainer_config(trainer_options)  # validated (and its effective values recorded) up front
    model_overrides = dict(model_overrides or {})
    settings = run_settings(model_name, dataset, data_dir, model_overrides, trainer_config,
                         {"hard_negatives_from": hard_negatives_from, "hard_rank_range": hard_rank_range,
                          "objective_weights": dict(objective_weights or {})})
    with run_lock(out_dir):
        data = prepare_data(model_name, data if data is not None else load_dataset(dataset, data_dir))
        record = start_record(out_dir, settings, data_fingerprint(data), data.feature_spec.to_dict(), data.source,
                               allow_setting_change, allow_data_change)
        split = make_split(data, settings["split"])
        model = create_model(model_name, data.feature_spec, **model_overrides)
        check_tables_fit(model, trainer_config.optimizer)  # before run.json says "training"
        check_against_data(split, trainer_config, ks, hard_rank_range)
        inputs = training_inputs(model, split, trainer_config, hard_negatives_from, hard_rank_range,
                                 objective_weights, allow_data_change, dataset)
        write_json_atomic(os.path.join(out_dir, RUN_FILE), {**record, "status": "training"})
        if verbose:
            print(f"{data.summary()}\ntraining {model_name} on {len(split.train):,} interactions, "
                  f"testing on {len(split.test):,} {'impressions' if ranking else 'users'}", flush=True)
        record = fit_and_record(out_dir, record, model, trainer_options, split.examples("train"), verbose, **inputs)
    return model, split, record["history"]


def fit_and_record(out_dir: str, record: dict[str, Any], model, trainer_options: Mapping[str, Any], examples,
                   verbose: bool, **fit_inputs: Any) -> dict[str, Any]:
    """Trains ``model`` on ``examples`` (arrays or an ExampleSource) with the run's checkpoints, rewriting
    run.json after every epoch; returns the final record (status "trained", the full history)."""
    trainer = Trainer(model, **trainer_options)
    recorder = RecordEachEpoch(out_dir, record, trainer)
    trainer.fit(examples, verbose=verbose, callbacks=[recorder], **fit_inputs)
    record = {**record, "status": "trained", "history": recorder.history()}
    write_json_atomic(os.path.join(out_dir, RUN_FILE), record)
    return record


def load_run(run_dir: str, data: InteractionData | None = None, allow_data_change: bool = False):
    """Restores a trained run: returns (model, split, run record). Data other than the run was trained on is
    refused unless ``allow_data_change`` (then a warning is logged)."""
    record = read_run(run_dir)
    data = prepare_data(record["model"], data if data is not None else load_dataset(record["dataset"],
                                                                                     record.get("data_dir")))
    warning = check_data(record, data_fingerprint(data), run_dir, allow_data_change)
    if warning:
        logging.warning(warning)
    saved_spec = FeatureSpec.from_dict(record["feature_spec"])
    if saved_spec != data.feature_spec:
        raise ValueError(f"the {record['dataset']!r} data now yields a different feature spec than run "
                         f"{run_dir!r} was trained with (changed files in the data directory?)")
    model = create_model(record["model"], saved_spec, **record["model_overrides"])
    model.build_weights()
    checkpoint_dir = os.path.join(run_dir, CHECKPOINT_SUBDIR)
    try:
        restore_latest_weights(model, checkpoint_dir)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"run {run_dir!r} has no checkpoint in {checkpoint_dir!r} (training not finished?)") from err
    return model, make_split(data, record.get("split", split_settings(record["model"]))), record


def train_counts(split: RetrievalSplit) -> np.ndarray:
    """Training interactions per corpus item, aligned with ``split.candidates()`` ids: float64 [N]."""
    _, ids = split.candidates()
    return split.train["item_id"].value_counts().reindex(ids, fill_value=0).to_numpy(np.float64)


def popularity_embeddings(split: RetrievalSplit, num_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The most-popular baseline as embeddings: every query is [1], every item [log(1 + train count)],
    so the dot product ranks items by training popularity. Returns (queries [Q, 1], items [N, 1], ids [N])."""
    _, ids = split.candidates()
    return np.ones((num_queries, 1), np.float32), np.log1p(train_counts(split)).astype(np.float32)[:, None], ids


def evaluate_split(model, split: RetrievalSplit, ks: Sequence[int] = DEFAULT_KS, use_scann: bool = True,
                   with_popularity: bool = True) -> dict[str, Any]:
    """Evaluates a retrieval ``model`` (and the most-popular baseline) on ``split``'s test users.

    Returns ``{"model": RetrievalReport, "popularity": RetrievalReport}``.
    """
    queries, targets, exclude = split.queries("test")
    candidates, candidate_ids = split.candidates()
    counts = train_counts(split)
    reports = {"model": RetrievalEvaluator(ks=ks, use_scann=use_scann).evaluate(
        model, queries, candidates, candidate_ids, targets, exclude, item_popularity=counts)}
    if with_popularity:
        query_emb, item_emb, ids = popularity_embeddings(split, len(targets))
        reports["popularity"] = RetrievalEvaluator(ks=ks, use_scann=False).evaluate_embeddings(
            query_emb, item_emb, ids, targets, exclude, item_popularity=counts)
    return reports


def metrics_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> str:
    """A Markdown table: one row per name, one column per metric key."""
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[c]:.4f}" if c in values else "-" for c in columns) + " |")
    return "\n".join(lines)


def summary_columns(ks: Sequence[int]) -> list[str]:
    """The retrieval summary table's columns for cut-offs ``ks``."""
    return [f"recall@{k}" for k in ks] + [f"ndcg@{ks[0]}", f"hit_rate@{ks[0]}", f"mrr@{max(ks)}"]


def report_rows(name: str, reports: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Summary-table rows of one retrieval evaluation: the model per search method, and most-popular."""
    rows = {f"{name} ({method})": values for method, values in reports["model"].metrics.items()}
    if "popularity" in reports:
        rows["most-popular"] = reports["popularity"].metrics["exact"]
    return rows


def evaluate_model(model_name: str, model, split: RetrievalSplit, ks: Sequence[int] = DEFAULT_KS,
                   use_scann: bool = True) -> dict[str, Any]:
    """Evaluates as the model's kind needs: ``{"reports": {name: report}, "table": Markdown}``."""
    if is_ranking(model_name):
        report = PreRankingEvaluator().evaluate(model, split.examples("test"), split.labels("test"))
        return {"reports": {"model": report}, "table": report.to_markdown()}
    ks = tuple(sorted(set(ks)))
    reports = evaluate_split(model, split, ks=ks, use_scann=use_scann)
    table = metrics_table(report_rows(model_name, reports), summary_columns(ks))
    return {"reports": reports, "table": f"{table}\n\n{reports['model'].to_markdown()}"}


def record_metrics(run_dir: str, result: Mapping[str, Any], fingerprint: Mapping[str, Any],
                   warning: str | None = None) -> dict[str, Any]:
    """Writes ``metrics.json`` from an evaluation ``result`` ({"reports": ...}) with the fingerprint of the
    data the numbers come from (and ``warning`` when that is not the data the run was trained on). Returns
    ``result`` with "path" and "warning" added."""
    payload = {key: report.to_dict() for key, report in result["reports"].items()}
    payload["data_fingerprint"] = dict(fingerprint)
    if warning:
        payload["warning"] = warning
    path = os.path.join(run_dir, METRICS_FILE)
    write_json_atomic(path, payload)
    return {**result, "path": path, "warning": warning}


def evaluate_and_record(run_dir: str, model_name: str, model, split: RetrievalSplit,
                        ks: Sequence[int] = DEFAULT_KS, use_scann: bool = True,
                        warning: str | None = None) -> dict[str, Any]:
    """``evaluate_model``, then ``record_metrics`` with the split's data fingerprint."""
    return record_metrics(run_dir, evaluate_model(model_name, model, split, ks, use_scann),
                          data_fingerprint(split.data), warning)


def evaluate_run(run_dir: str, data: InteractionData | None = None, ks: Sequence[int] = DEFAULT_KS,
                 use_scann: bool = True, allow_data_change: bool = False) -> dict[str, Any]:
    """Restores run ``run_dir`` and evaluates it into its ``metrics.json`` (see ``evaluate_and_record``)."""
    with run_lock(run_dir):
        model, split, record = load_run(run_dir, data, allow_data_change)
        if not is_ranking(record["model"]):
            check_ks(ks, split.data)
        warning = check_data(record, data_fingerprint(split.data), run_dir, allow_data_change)
        return evaluate_and_record(run_dir, record["model"], model, split, ks, use_scann, warning)


def raw_user_rows(data: InteractionData) -> pd.DataFrame:
    """Every user as a client would hold them at the end of the data: the raw user-table columns, ``history``
    (the raw ids of their latest items, oldest first, when the spec has it) and ``exclude`` (every item they
    interacted with, never to be recommended again)."""
    ordered = data.ratings.sort_values(["user_id", "timestamp"], kind="stable")
    items = ordered.groupby("user_id")["item_id"].apply(list)
    users = data.users[data.table_features("user")].copy()
    seen = [items.get(user, []) for user in users[data.feature_spec.user_id_feature]]
    if HISTORY_FEATURE in data.feature_spec.names:
        length = data.feature_spec.get(HISTORY_FEATURE).max_length
        users[HISTORY_FEATURE] = [values[-length:] for values in seen]
    users["exclude"] = [list(dict.fromkeys(values)) for values in seen]
    return users


def export_run(run_dir: str, export_dir: str, overwrite: bool = False, allow_data_change: bool = False,
               k: int = 100):
    """Exports a trained run for serving (``tower_zoo.serving.export``; a retrieval model as a top-``k``
    retrieval export, a pre-ranking model or the baseline as a candidate scorer), with every user's raw row at
    the end of the data (``raw_user_rows``) and the item titles. Returns what ``serving.export`` returns."""
    from tower_zoo import serving

    model, split, _ = load_run(run_dir, allow_data_change=allow_data_change)
    items, ids = split.candidates()
    titles = dict(zip(split.data.items["item_id"].tolist(), split.data.items.get(
        "title", split.data.items["item_id"].astype(str)).tolist()))
    return serving.export(model, items, ids, export_dir, users=raw_user_rows(split.data), titles=titles,
                          overwrite=overwrite, k=min(k, len(ids)), protected=[run_dir])
