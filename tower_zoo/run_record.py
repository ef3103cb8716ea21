"""The record of a run directory, ``run.json``: read and checked, compared when a run is resumed, and
written by one process at a time.

* ``read_run``: the record, or one error naming the file and the field that is missing or malformed.
* Settings that define the model and its data (``FIXED_SETTINGS``) never change within a run. Trainer options
  and training inputs may change on resume only when the caller allows it (``--allow_setting_change``); each
  change is then recorded in ``setting_changes`` with the epoch after which it took effect.
* ``data_fingerprint``: row counts and a SHA-256 over the content of the ratings, users and items tables.
  A run records the fingerprint it was trained on; ``check_data`` refuses other data unless allowed.
* ``merge_history``: the history accumulates over resumes; epochs a killed process trained but never
  recorded keep a placeholder, so the history always covers every epoch the checkpoint holds.
* ``run_lock``: an exclusive lock on the run directory (``flock``), released by the kernel on exit or crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd

from tower_zoo.fileio import directory_lock, is_regular_file, read_json_record
from tower_zoo.training.config import RESUMABLE_OPTIONS

RUN_FILE = "run.json"
# Fields every run record has, with their JSON types.
RUN_FIELDS = {"model": str, "dataset": str, "model_overrides": dict, "feature_spec": dict}
# Settings that define the model and the data it sees: a run never changes them.
FIXED_SETTINGS = ("model", "model_overrides", "dataset", "data_dir", "split")
# Training inputs that, like trainer options, may change on resume only when allowed (and are then recorded).
TRAINING_INPUTS = ("hard_negatives_from", "hard_rank_range", "objective_weights")
# Trainer options that are not settings of the optimization: extending a run or its bookkeeping.
FREE_TRAINER_OPTIONS = RESUMABLE_OPTIONS
UNRECORDED_EPOCH = "trained by an interrupted process; not recorded"


class RunInUseError(OSError):
    """Another process holds the run directory's lock."""


def read_run(run_dir: str) -> dict[str, Any]:
    """The parsed ``run.json`` of ``run_dir``; one error naming the file if it is missing, may not be read, is not
    a file, or is malformed."""
    path = os.path.join(run_dir, RUN_FILE)
    if not is_regular_file(path, "run file"):
        raise FileNotFoundError(f"{run_dir!r} is not a tower_zoo run directory: {RUN_FILE} not found")
    record = read_json_record(path, RUN_FIELDS, "run file")
    if not isinstance(record.get("history", []), list):
        raise ValueError(f"run file {path!r}: field 'history' must be a list, got {record['history']!r}")
    return record


def data_fingerprint(data) -> dict[str, Any]:
    """Row counts of an InteractionData's tables and a SHA-256 over their columns and values."""
    digest = hashlib.sha256()
    counts = {}
    for name in ("ratings", "users", "items"):
        frame = getattr(data, name)
        counts[name] = int(len(frame))
        digest.update(json.dumps([name, [str(c) for c in frame.columns]]).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return {**counts, "sha256": digest.hexdigest()}


def describe_changes(changes: Mapping[str, Sequence[Any]]) -> str:
    """``{key: (old, new)}`` as ``"key old -> new, ..."``."""
    return ", ".join(f"{key} {_short(old)} -> {_short(new)}" for key, (old, new) in changes.items())


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def check_data(record: Mapping[str, Any], fingerprint: Mapping[str, Any], run_dir: str,
               allow_change: bool = False) -> str | None:
    """None when the data matches the run's fingerprint (or the run predates fingerprints); otherwise a
    ValueError, or with ``allow_change`` the warning to record beside results computed on it."""
    trained_on = record.get("data_fingerprint")
    if not trained_on or dict(trained_on) == dict(fingerprint):
        return None
    changes = {k: (trained_on.get(k), fingerprint.get(k)) for k in fingerprint if trained_on.get(k) != fingerprint[k]}
    message = f"the data changed since run {run_dir!r} was trained: {describe_changes(changes)}"
    if not allow_change:
        raise ValueError(f"{message}; use the same data, or pass --allow_data_change (allow_data_change=True) "
                         "to go on with this data, recorded in the results")
    return f"{message}: these results are on other data, not the data it was trained on"


def check_fixed_settings(previous: Mapping[str, Any], settings: Mapping[str, Any], run_dir: str) -> None:
    """ValueError when a setting that defines the model or its data differs from the run's."""
    for key in FIXED_SETTINGS:
        if key in previous and previous[key] != settings[key]:
            raise ValueError(f"{run_dir!r} holds a run with {key}={previous[key]!r}, not {settings[key]!r}; "
                             "use a new --out directory")


def setting_changes(previous: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{option: [old, new]}`` for each trainer option or training input that differs from the run's (options
    an older record does not name are not compared)."""
    old_trainer, new_trainer = previous.get("trainer", {}), settings["trainer"]
    changes = {key: [old_trainer[key], new_trainer.get(key)] for key in sorted(old_trainer)
               if key not in FREE_TRAINER_OPTIONS and old_trainer[key] != new_trainer.get(key)}
    changes.update({key: [previous[key], settings[key]] for key in TRAINING_INPUTS
                    if key in previous and previous[key] != settings[key]})
    return changes


def merge_history(previous: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]],
                  epochs_done: int | None = None) -> list[dict[str, Any]]:
    """The run's history after a fit that recorded ``new``: earlier records stay, a re-run epoch replaces its
    record, and epochs up to ``epochs_done`` that nothing recorded (a killed process) get a placeholder."""
    first_new = new[0]["epoch"] if new else None
    kept = [dict(h) for h in previous if first_new is None or h["epoch"] < first_new]
    last = max([h["epoch"] for h in kept], default=0)
    upto = first_new if first_new is not None else (epochs_done or 0) + 1
    gap = [{"epoch": epoch, "note": UNRECORDED_EPOCH} for epoch in range(last + 1, upto)]
    return kept + gap + [dict(h) for h in new]


@contextlib.contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
    """Holds ``run_dir``'s lock (creating the directory); RunInUseError at once if another process has it.
    A directory created here and still empty at the end (the command failed before writing) is removed."""
    created = not os.path.isdir(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(directory_lock(run_dir, blocking=False))
        except BlockingIOError as err:
            raise RunInUseError(f"run directory {run_dir!r} is in use by another tower-zoo process (a train or "
                                "evaluate there has not finished); wait for it or choose another directory") from err
        try:
            yield
        finally:  # still under the lock, so no other process can have started writing here
            if created and not os.listdir(run_dir):
                os.rmdir(run_dir)
