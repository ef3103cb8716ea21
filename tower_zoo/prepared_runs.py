"""Runs on prepared data: ``tower-zoo train --data SCHEMA_OR_PREPARED_DIR --model NAME --out RUN``.

``--data`` names a schema file, a built-in dataset (``movielens-100k``, ...) or a directory written by
``tower-zoo prepare``. A schema is prepared first into ``RUN/prepared`` (reused on a resumed run while its
sources are unchanged; changed ones are refused before anything is rebuilt, unless ``--allow_data_change``).
The prepared directory is read under its shared lock (``PreparedDataset.locked``), so that no ``prepare``
replaces it while a run trains, evaluates or exports from it. Training streams the train shards
(``ShardExampleSource``); the item corpus is the only table held in memory; the global sampler and logQ use
the prepare pass's item counts. Evaluation streams too: retrieval models rank the whole corpus for the test
users chunk by chunk (exact blocks and ScaNN, seen items excluded), with the most-popular baseline beside
them; pre-ranking models score the test exposures chunk by chunk (AUC, GAUC, logloss computed exactly).

The split is the schema's (leave-last-out, time or random); every training row of a retrieval run is a
positive interaction, and pre-ranking runs train on the schema's first label.

run.json records the prepared directory, the schema's split and a fingerprint of the prepared data (its
manifest: source files, row counts, output checksums); the feature spec (vocabularies of up to millions
of ids) stays in the prepared directory, and run.json keeps its SHA-256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from typing import Any, Mapping, Sequence

import numpy as np

from tower_zoo.data.builtin.resolve import resolve_schema
from tower_zoo.data.prepare.run import PrepareOptions, prepare
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.schema.keys import LABEL
from tower_zoo.data.store.manifest import MANIFEST_FILE
from tower_zoo.data.store.replace import interrupted, move_into_place
from tower_zoo.evaluation import RetrievalEvaluator
from tower_zoo.evaluation.preranking import PreRankingEvaluator
from tower_zoo.fileio import write_json_atomic
from tower_zoo.registry import create_model, model_kind
from tower_zoo.run_record import RUN_FILE, check_data, read_run, run_lock
from tower_zoo.runs import (CHECKPOINT_SUBDIR, DEFAULT_KS, fit_and_record, is_ranking, metrics_table, record_metrics,
                            report_rows, run_settings, start_record, summary_columns)
from tower_zoo.training.checkpoints import restore_latest_weights
from tower_zoo.training.config import make_trainer_config
from tower_zoo.training.memory_checks import check_tables_fit

PREPARED_SUBDIR = "prepared"
CANDIDATE_SUBDIR = ".prepared-changed"   # changed data prepared beside a run's, checked before it replaces it
DATASET_NAME = "prepared"


def is_prepared_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MANIFEST_FILE))


def open_data(data: str, out_dir: str, data_dir: str | None = None, memory_budget_mb: int = 1024,
              verbose: bool = True, allow_data_change: bool = False) -> PreparedDataset:
    """The prepared dataset ``data`` names: a prepared directory as is; a schema (file or built-in name)
    prepared into ``out_dir/prepared`` first, or that directory again when its sources are unchanged.

    Checked before anything is replaced: when the run in ``out_dir`` was trained on ``out_dir/prepared`` and
    the sources or the schema changed since (a new file matching a glob included), ValueError without
    ``allow_data_change``; with it, the changed data is prepared beside the run's and replaces it only if the
    run can go on with it (the same feature spec), else ValueError. Either way an error leaves the run's data
    as it was."""
    if is_prepared_dir(data):
        return PreparedDataset.open(data)
    schema = resolve_schema(data, data_dir)
    target = os.path.join(out_dir, PREPARED_SUBDIR)
    options = PrepareOptions(memory_budget_mb=memory_budget_mb)
    existing = PreparedDataset.open(target) if is_prepared_dir(target) or interrupted(target) else None
    if existing is not None:
        changes = existing.stale_sources() + (["the schema"] if existing.schema.raw != schema.raw else [])
        if not changes:
            return existing
    record = _record_trained_on(out_dir, target) if existing is not None else None
    if record is None:
        prepare(schema, target, options, overwrite=True, verbose=verbose)
    elif not allow_data_change:
        raise ValueError(f"the data changed since run {out_dir!r} was trained on {existing.path}: "
                         f"{', '.join(changes)}; {existing.path} is left as it was: use the same data, or pass "
                         "--allow_data_change (allow_data_change=True) to prepare it again from the changed files "
                         "and go on, recorded in run.json")
    else:
        _replace_if_compatible(schema, options, existing.path, record, verbose)
    return PreparedDataset.open(target)


def _record_trained_on(run_dir: str, prepared_dir: str) -> dict[str, Any] | None:
    """The record of the run in ``run_dir`` if it was trained on ``prepared_dir``, else None."""
    if not os.path.isfile(os.path.join(run_dir, RUN_FILE)):
        return None
    record = read_run(run_dir)
    return record if os.path.abspath(str(record.get("data"))) == os.path.abspath(prepared_dir) else None


def _replace_if_compatible(schema, options: PrepareOptions, target: str, record: Mapping[str, Any],
                           verbose: bool) -> None:
    """Prepares ``schema`` beside ``target`` and moves it into place if its feature spec is the one the run
    was trained with (its checkpoints fit it); ValueError otherwise, ``target`` untouched."""
    candidate = os.path.join(os.path.dirname(target), CANDIDATE_SUBDIR)
    try:
        prepare(schema, candidate, options, overwrite=True, verbose=verbose)
        if spec_record(PreparedDataset.open(candidate))["sha256"] != record["feature_spec"].get("sha256"):
            raise ValueError(f"the changed data gives other vocabularies (feature spec) than the run in "
                             f"{os.path.dirname(target)!r} was trained with, so the run cannot go on with it; "
                             f"{target} is left as it was: train a new run (another --out) on the changed data")
        move_into_place(candidate, target)
    finally:
        if os.path.isdir(candidate):
            shutil.rmtree(candidate, ignore_errors=True)


def prepared_fingerprint(prepared: PreparedDataset) -> dict[str, Any]:
    """Row counts per part and a SHA-256 of the prepared manifest (sources, counts, output checksums)."""
    with open(os.path.join(prepared.path, MANIFEST_FILE), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    return {"rows": {part: prepared.num_rows(part) for part in prepared.parts}, "sha256": digest}


def spec_record(prepared: PreparedDataset) -> dict[str, Any]:
    """What run.json keeps of the feature spec: where it is and its SHA-256."""
    spec_json = json.dumps(prepared.feature_spec.to_dict(), sort_keys=True, default=str)
    return {"path": os.path.join(prepared.path, "feature_spec.json"),
            "sha256": hashlib.sha256(spec_json.encode()).hexdigest()}


class PopularityTowers:
    """The most-popular baseline as towers: every user [1], every corpus row [log(1 + train count)]."""

    def __init__(self, prepared: PreparedDataset):
        self.feature_spec = prepared.feature_spec
        self.log_counts = np.log1p(prepared.item_counts().astype(np.float32))

    def user_embedding(self, features, training=False):
        return np.ones((len(features[self.feature_spec.user_id_feature]), 1), np.float32)

    def item_embedding(self, features, training=False):
        return self.log_counts[np.asarray(features[self.feature_spec.item_id_feature])][:, None]


def evaluate_prepared(model_name: str, model, prepared: PreparedDataset, ks: Sequence[int] = DEFAULT_KS,
                      use_scann: bool = True, chunk_size: int = 4_096) -> dict[str, Any]:
    """Streaming evaluation of ``model`` on the test part: ``{"reports": {name: report}, "table": Markdown}``."""
    check_cutoffs(model_name, prepared, ks)
    if is_ranking(model_name):
        report = PreRankingEvaluator().evaluate_chunks(model, prepared.exposure_chunks("test", chunk_size))
        return {"reports": {"model": report}, "table": report.to_markdown()}
    items, ids = prepared.item_corpus()
    counts = prepared.item_counts()[np.asarray(items[prepared.feature_spec.item_id_feature])].astype(np.float64)
    ks = tuple(sorted(set(ks)))
    reports = {"model": RetrievalEvaluator(ks=ks, use_scann=use_scann).evaluate_chunks(
                   model, prepared.query_chunks("test", chunk_size), items, ids, item_popularity=counts),
               "popularity": RetrievalEvaluator(ks=ks, use_scann=False).evaluate_chunks(
                   PopularityTowers(prepared), prepared.query_chunks("test", chunk_size), items, ids,
                   item_popularity=counts)}
    table = metrics_table(report_rows(model_name, reports), summary_columns(ks))
    return {"reports": reports, "table": f"{table}\n\n{reports['model'].to_markdown()}"}


def check_cutoffs(model_name: str, prepared: PreparedDataset, ks: Sequence[int] | None) -> None:
    """ValueError when a retrieval cut-off K exceeds the item corpus (Recall@K would count every item)."""
    corpus = prepared.feature_spec.item_id.vocab_size - 2
    if not is_ranking(model_name) and ks and max(ks) > corpus:
        raise ValueError(f"--ks {max(ks)} exceeds the {corpus} items of {prepared.path}")


def _check_against_data(model_name: str, prepared: PreparedDataset, trainer_config, ks: Sequence[int] | None) -> None:
    """ValueError naming the flag and value for what this prepared data cannot satisfy, before any training."""
    rows = prepared.num_rows("train")
    if trainer_config.batch_size > rows:
        raise ValueError(f"--batch_size {trainer_config.batch_size} exceeds the {rows} training rows of {prepared.path}")
    check_cutoffs(model_name, prepared, ks)
    if is_ranking(model_name) and LABEL not in prepared.example_source("train").keys:
        raise ValueError(f"model {model_name!r} is {model_kind(model_name)} and trains on exposure labels, but "
                         f"{prepared.path} has none: add labels: to the schema")


def train_prepared_run(out_dir: str, model_name: str, data: str, data_dir: str | None = None,
                       model_overrides: Mapping[str, Any] | None = None,
                       trainer_overrides: Mapping[str, Any] | None = None, verbose: bool = True,
                       ks: Sequence[int] | None = None, allow_setting_change: bool = False,
                       allow_data_change: bool = False, memory_budget_mb: int = 1024):
    """Trains ``model_name`` on prepared data into ``out_dir`` (locked), or resumes the run there (same rules
    as ``tower_zoo.runs.train_run``). Returns (model, prepared dataset, the run's full history)."""
    ranking = is_ranking(model_name)
    trainer_options = {**({"task": "ranking"} if ranking else {}), **dict(trainer_overrides or {}),
                       "checkpoint_dir": os.path.join(out_dir, CHECKPOINT_SUBDIR),
                       "allow_setting_changes": allow_setting_change}
    trainer_config = make_trainer_config(trainer_options)
    model_overrides = dict(model_overrides or {})
    with run_lock(out_dir), open_data(data, out_dir, data_dir, memory_budget_mb, verbose,
                                      allow_data_change).locked() as prepared:
        settings = run_settings(model_name, DATASET_NAME, None, model_overrides, trainer_config, {})
        split = dataclasses.asdict(prepared.schema.split)
        settings.update(data=os.path.abspath(prepared.path), split={**split, "method": f"prepared:{split['method']}"})
        record = start_record(out_dir, settings, prepared_fingerprint(prepared), spec_record(prepared),
                               f"prepared:{prepared.path}", allow_setting_change, allow_data_change)
        _check_against_data(model_name, prepared, trainer_config, ks)
        model = create_model(model_name, prepared.feature_spec, **model_overrides)
        check_tables_fit(model, trainer_config.optimizer)  # before run.json says "training"
        write_json_atomic(os.path.join(out_dir, RUN_FILE), {**record, "status": "training"})
        if verbose:
            print(f"{prepared.describe()}\ntraining {model_name} on {prepared.num_rows('train'):,} rows", flush=True)
        item_table, _ = prepared.item_corpus()
        record = fit_and_record(out_dir, record, model, trainer_options, prepared.example_source("train"), verbose,
                                item_table=item_table)
    return model, prepared, record["history"]


def load_prepared_run(run_dir: str, record: Mapping[str, Any] | None = None, allow_data_change: bool = False):
    """Restores a run trained on prepared data: (model, prepared dataset, record, data warning or None)."""
    record = record if record is not None else read_run(run_dir)
    prepared = PreparedDataset.open(record["data"])
    warning = check_data(record, prepared_fingerprint(prepared), run_dir, allow_data_change)
    stale = prepared.stale_sources()
    if stale:
        note = (f"the sources of {prepared.path} changed since it was prepared ({', '.join(stale)}); this uses the "
                "prepared data the run was trained on")
        warning = f"{warning}; {note}" if warning else note
    if spec_record(prepared)["sha256"] != record["feature_spec"].get("sha256"):
        raise ValueError(f"{prepared.path} now holds a different feature spec than run {run_dir!r} was trained with")
    model = create_model(record["model"], prepared.feature_spec, **record["model_overrides"])
    model.build_weights()
    restore_latest_weights(model, os.path.join(run_dir, CHECKPOINT_SUBDIR))
    return model, prepared, record, warning


def evaluate_prepared_run(run_dir: str, model_name: str, model, prepared: PreparedDataset,
                          ks: Sequence[int] = DEFAULT_KS, use_scann: bool = True,
                          warning: str | None = None) -> dict[str, Any]:
    """``evaluate_prepared`` recorded into the run's metrics.json (with the prepared data's fingerprint), under
    the prepared directory's shared lock."""
    with prepared.locked():
        return record_metrics(run_dir, evaluate_prepared(model_name, model, prepared, ks, use_scann),
                              prepared_fingerprint(prepared), warning)


def export_prepared_run(run_dir: str, export_dir: str, overwrite: bool = False, allow_data_change: bool = False,
                        k: int = 100):
    """Exports a run trained on prepared data (``tower_zoo.serving.export``): the item corpus from the prepared
    items table, titles from its first display column. No user table is stored (a catalogue's users are served
    from the client's own rows: ``tower-zoo recommend --users FILE``)."""
    from tower_zoo import serving

    model, prepared, _, warning = load_prepared_run(run_dir, allow_data_change=allow_data_change)
    with prepared.locked():
        items, ids = prepared.item_corpus()
        table = prepared.items_table()
    display = [name for name in prepared.schema.items.display] if prepared.schema.items else []
    titles = ({int(i): str(t) for i, t in zip(ids, table.column(display[0]).to_pylist()) if t is not None}
              if display else {})
    return serving.export(model, items, ids, export_dir, titles=titles, overwrite=overwrite, k=min(k, len(ids)),
                          protected=[run_dir])
