"""Run directories: train a registered model on a named dataset, evaluate it later from disk.

A run directory holds ``run.json`` (model name and config overrides, dataset, trainer options, the
feature spec, per-epoch history) and ``checkpoints/`` (the Trainer's checkpoints and manifest).
``evaluate_run`` rebuilds the same dataset and split, restores the model from the latest checkpoint
and ranks the full item corpus for every test user.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tower_zoo.data.catalog import load_dataset
from tower_zoo.data.dataset import InteractionData
from tower_zoo.data.splits import RetrievalSplit, leave_last_out
from tower_zoo.data.spec import FeatureSpec
from tower_zoo.evaluation import RetrievalEvaluator
from tower_zoo.registry import create_model
from tower_zoo.training.hard_negatives import mine_hard_negatives
from tower_zoo.training.objectives import fuse_label_weights, movielens_objectives
from tower_zoo.fileio import write_json_atomic
from tower_zoo.training.checkpoints import restore_latest_weights
from tower_zoo.training.trainer import Trainer, make_trainer_config

RUN_FILE = "run.json"
CHECKPOINT_SUBDIR = "checkpoints"
DEFAULT_KS = (10, 50, 100)


def _run_settings(model_name: str, dataset: str, data_dir: str | None, model_overrides: Mapping[str, Any],
                  trainer_overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {"model": model_name, "model_overrides": dict(model_overrides), "dataset": dataset,
            "data_dir": os.path.abspath(data_dir) if data_dir else None,
            "trainer": dict(trainer_overrides), "split": {"method": "leave_last_out", "num_test": 1}}


def _normalize(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def read_run(run_dir: str) -> dict[str, Any]:
    """The parsed ``run.json`` of ``run_dir``; a clear error if it is missing or unreadable."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a tower_zoo run directory: {RUN_FILE} not found")
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"run file {path!r} is corrupt: {err}") from err


def training_inputs(model, split: RetrievalSplit, trainer_config, hard_negatives_from: str | None = None,
                    hard_rank_range: tuple[int, int] = (101, 500),
                    objective_weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``Trainer.fit`` beyond the examples: the item table, hard negatives
    mined with the model of run ``hard_negatives_from``, and multi-objective labels or weights
    (objectives from ratings: click = any rating, like = rating >= 4)."""
    examples = split.examples("train")
    item_table, _ = split.candidates()
    inputs: dict[str, Any] = {"item_table": item_table}
    if trainer_config.hard_negatives:
        if not hard_negatives_from:
            raise ValueError("hard_negatives > 0 needs a previous run to mine them from (--hard_negatives_from DIR)")
        previous, _, _ = load_run(hard_negatives_from, data=split.data)
        inputs["hard_negatives"] = mine_hard_negatives(previous, examples, item_table, trainer_config.hard_negatives,
                                                       hard_rank_range, seed=trainer_config.seed)
    labels = movielens_objectives(split.train["rating"].to_numpy())
    if getattr(model, "objective_names", None):
        inputs["objective_labels"] = labels
    elif objective_weights:
        inputs["sample_weight"] = fuse_label_weights(labels, objective_weights)
    return inputs


def train_run(out_dir: str, model_name: str, dataset: str = "movielens-100k", data_dir: str | None = None,
              model_overrides: Mapping[str, Any] | None = None,
              trainer_overrides: Mapping[str, Any] | None = None, data: InteractionData | None = None,
              verbose: bool = True, hard_negatives_from: str | None = None,
              hard_rank_range: tuple[int, int] = (101, 500), objective_weights: Mapping[str, float] | None = None):
    """Trains ``model_name`` on ``dataset`` into ``out_dir``; resumes a run there with the same
    settings and refuses one with different settings. Returns (model, split, history)."""
    model_overrides, trainer_overrides = dict(model_overrides or {}), dict(trainer_overrides or {})
    settings = _normalize(_run_settings(model_name, dataset, data_dir, model_overrides, trainer_overrides))
    settings.update(_normalize({"hard_negatives_from": hard_negatives_from, "hard_rank_range": hard_rank_range,
                                "objective_weights": dict(objective_weights or {})}))
    if os.path.exists(os.path.join(out_dir, RUN_FILE)):
        previous = read_run(out_dir)
        for key, value in settings.items():
            if key != "trainer" and previous.get(key) != value:
                raise ValueError(f"{out_dir!r} holds a run with {key}={previous.get(key)!r}, not {value!r}; "
                                 "use a new --out directory")
    data = data if data is not None else load_dataset(dataset, data_dir)
    split = leave_last_out(data)
    model = create_model(model_name, data.feature_spec, **model_overrides)
    trainer_config = make_trainer_config({**trainer_overrides,
                                          "checkpoint_dir": os.path.join(out_dir, CHECKPOINT_SUBDIR)})
    record = {**settings, "feature_spec": data.feature_spec.to_dict(), "data_source": data.source,
              "status": "training", "history": []}
    write_json_atomic(os.path.join(out_dir, RUN_FILE), record)
    if verbose:
        print(f"{data.summary()}\ntraining {model_name} on {len(split.train):,} interactions, "
              f"testing on {len(split.test):,} users", flush=True)
    inputs = training_inputs(model, split, trainer_config, hard_negatives_from, hard_rank_range, objective_weights)
    history = Trainer(model, trainer_config).fit(split.examples("train"), verbose=verbose, **inputs)
    record.update(status="trained", history=history)
    write_json_atomic(os.path.join(out_dir, RUN_FILE), record)
    return model, split, history


def load_run(run_dir: str, data: InteractionData | None = None):
    """Restores a trained run: returns (model, split, run record)."""
    record = read_run(run_dir)
    data = data if data is not None else load_dataset(record["dataset"], record.get("data_dir"))
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
    return model, leave_last_out(data), record


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
    """Evaluates ``model`` (and the most-popular baseline) on ``split``'s test users.

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


def export_run(run_dir: str, export_dir: str, overwrite: bool = False):
    """Exports a trained run for serving: user tower, item vectors, ScaNN index, the users' features at
    the end of the data (their full history) and the item titles. Returns the Retriever."""
    from tower_zoo import serving

    model, split, _ = load_run(run_dir)
    queries, _, _ = split.queries("test")
    items, ids = split.candidates()
    users = {**queries, "__raw_user_id__": split.test["user_id"].drop_duplicates().to_numpy(np.int64)}
    titles = dict(zip(split.data.items["item_id"].tolist(), split.data.items.get(
        "title", split.data.items["item_id"].astype(str)).tolist()))
    return serving.export(model, items, ids, export_dir, users=users, titles=titles, overwrite=overwrite,
                          protected=[run_dir])
