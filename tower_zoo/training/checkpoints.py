"""Checkpoints with a checksummed manifest: written in an order that a crash cannot break.

A checkpoint directory holds TensorFlow checkpoints ``ckpt-<epoch>.index`` / ``.data-*`` and
``manifest.json``, which is the one record of what the directory holds:

* the model's name, config and feature-spec hash (a checkpoint is restored only into the same),
* the training settings the checkpoints were written with (a resume with other settings is refused
  unless allowed, and an allowed change is recorded with the epoch it happened at),
* every checkpoint with its epoch and the SHA-256 of each of its files, newest last.

``CheckpointStore.save`` writes the new checkpoint's files, checksums them, then replaces the manifest
atomically (temp file + rename), and only then deletes checkpoints beyond ``max_to_keep``. A crash at
any point leaves a manifest that lists only complete, verified checkpoints; files it does not list
(a killed save's ``ckpt-N.*`` or TensorFlow's ``ckpt-N_temp`` directories) are removed by the next
save or by the owner's ``restore`` (a resume), never by a reader. ``newest_verified`` walks the manifest from
the newest entry and returns the first checkpoint whose files all match their checksums, so a damaged newest
checkpoint falls back to the one before it; a directory with checkpoints but none usable is an error, never a
silent restart. TensorFlow's own ``checkpoint`` state file is neither written nor read.

Readers (``read_weights``: an export, an evaluation, hard-negative mining, a warm start) may run while a trainer
writes the directory. They touch no file, and they hold a shared ``flock`` on the directory only while they
choose and read a checkpoint; ``save`` and the owner's ``restore`` hold it exclusively for their own steps (write,
record, drop). So a reader never sees, or deletes, a checkpoint whose files are written but not yet recorded, a
save never deletes a checkpoint a reader is reading, and each waits for the other at most one checkpoint read or
write, never for a whole export or training run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from typing import Any, Mapping

import tensorflow as tf
from absl import logging

from tower_zoo.fileio import directory_lock, file_sha256, write_json_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2
_CHECKPOINT_FILE = re.compile(r"^(ckpt-(\d+))(\.index|\.data-\d+-of-\d+|_temp.*)$")


def model_fingerprint(model) -> dict[str, Any]:
    """What a checkpoint must match to be restored into ``model``."""
    config = model.get_config()
    spec_json = json.dumps(config["feature_spec"], sort_keys=True, default=str)
    return {
        "model_name": getattr(model, "model_name", type(model).__name__),
        "model_config": json.loads(json.dumps(config["config"], default=list)),
        "feature_spec_sha256": hashlib.sha256(spec_json.encode()).hexdigest(),
    }


def _normalized(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))



def checkpoint_checksums(prefix: str) -> dict[str, str]:
    """SHA-256 of each file of the checkpoint at ``prefix`` (its .index and .data-* shards)."""
    directory, name = os.path.split(prefix)
    return {f: file_sha256(os.path.join(directory, f)) for f in sorted(os.listdir(directory))
            if f.startswith(name + ".")}


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The manifest of ``directory`` as ``{..., "checkpoints": [{"name", "epoch", "files"}, ...]}`` (oldest
    first), or None when there is none. A manifest of the earlier format (checkpoints as a name -> files
    mapping) is read too. ValueError naming the file for an unreadable or malformed one."""
    path = os.path.join(directory, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable checkpoint manifest {path!r}: {err}") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints"), (dict, list)):
        raise ValueError(f"checkpoint manifest {path!r} is malformed: expected an object with a 'checkpoints' "
                         f"entry, got {type(manifest).__name__}")
    entries = manifest["checkpoints"]
    if isinstance(entries, dict):  # format 1: {name: {file: sha}}
        entries = [{"name": name, "epoch": int(name.rsplit("-", 1)[-1]), "files": files}
                   for name, files in entries.items()]
    for entry in entries:
        if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                or not isinstance(entry.get("epoch"), int) or not isinstance(entry.get("files"), dict)):
            raise ValueError(f"checkpoint manifest {path!r} has a malformed checkpoint entry: {entry!r}")
    manifest["checkpoints"] = sorted(entries, key=lambda e: e["epoch"])
    return manifest


def check_fingerprint(manifest: Mapping[str, Any], model, directory: str) -> None:
    """Raises ValueError when the manifest was written for a different model, config or feature spec."""
    for key, value in model_fingerprint(model).items():
        if manifest.get(key) != value:
            raise ValueError(f"checkpoint in {directory!r} does not match this model: {key} is "
                             f"{manifest.get(key)!r} there, {value!r} here")


def damaged_files(directory: str, entry: Mapping[str, Any]) -> list[str]:
    """Files of a manifest entry that are missing or do not match their checksum (empty: intact)."""
    bad = []
    for file_name, digest in entry["files"].items():
        path = os.path.join(directory, file_name)
        if not os.path.isfile(path):
            bad.append(f"{path!r} is missing")
        elif file_sha256(path) != digest:
            bad.append(f"{path!r} does not match its checksum (truncated or altered)")
    return bad


class CheckpointStore:
    """Saves and restores ``tf.train.Checkpoint``s of one model in ``directory``; see the module docstring.

    Args:
      directory: the checkpoint directory (created on the first save).
      model: the model checkpoints are written for (its fingerprint guards every restore).
      max_to_keep: how many checkpoints to keep.
      settings: the training settings to record and compare (None: not compared).
      allow_setting_changes: accept a directory written with other settings (the change is recorded).
    """

    def __init__(self, directory: str, model, max_to_keep: int = 2, settings: Mapping[str, Any] | None = None,
                 allow_setting_changes: bool = False):
        self.directory, self.model, self.max_to_keep = directory, model, max_to_keep
        self.settings = None if settings is None else _normalized(dict(settings))
        self.allow_setting_changes = allow_setting_changes
        self._pending_change: dict[str, Any] | None = None

    # ------------------------------------------------------------------ reading
    def _manifest(self) -> dict[str, Any] | None:
        manifest = read_manifest(self.directory)
        if manifest is None:
            if os.path.isdir(self.directory) and any(_CHECKPOINT_FILE.match(f) and f.endswith(".index")
                                                     for f in os.listdir(self.directory)):
                raise ValueError(f"checkpoint directory {self.directory!r} has checkpoints but no {MANIFEST_NAME}: "
                                 "written by another tool, or the manifest was deleted; refusing to trust them")
            return None
        check_fingerprint(manifest, self.model, self.directory)
        return manifest

    def _check_settings(self, manifest: Mapping[str, Any]) -> None:
        recorded = manifest.get("training_settings")
        if self.settings is None or recorded is None:
            return
        changed = {k: [recorded.get(k), v] for k, v in self.settings.items() if recorded.get(k) != v}
        if not changed:
            return
        described = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
        if not self.allow_setting_changes:
            raise ValueError(f"checkpoints in {self.directory!r} were written with other training settings "
                             f"({described}); resume with the same settings, use a new directory, or allow the "
                             "change explicitly (allow_setting_changes=True / --allow_setting_changes)")
        logging.warning("resuming %s with changed settings: %s", self.directory, described)
        self._pending_change = changed

    def newest_verified(self) -> tuple[str, int] | None:
        """(prefix, epoch) of the newest intact checkpoint, or None for an empty directory; touches no file.

        A damaged newest checkpoint is skipped with a warning; ValueError when checkpoints are listed but
        none is intact."""
        manifest = self._manifest()
        if manifest is None or not manifest["checkpoints"]:
            return None
        self._check_settings(manifest)
        problems = []
        for entry in reversed(manifest["checkpoints"]):
            bad = damaged_files(self.directory, entry)
            if not bad:
                return os.path.join(self.directory, entry["name"]), entry["epoch"]
            problems.append(f"{entry['name']}: {'; '.join(bad)}")
            logging.warning("checkpoint %s is damaged, trying an older one: %s", entry["name"], "; ".join(bad))
        raise ValueError(f"no intact checkpoint in {self.directory!r}: " + " | ".join(problems))

    def _locked(self, shared: bool):
        """The directory's lock (shared for readers, exclusive for writers); nothing to lock when it is absent."""
        if not os.path.isdir(self.directory):
            return contextlib.nullcontext()
        return directory_lock(self.directory, shared=shared)

    def _read(self, checkpoint: tf.train.Checkpoint, weights_only: bool) -> int:
        found = self.newest_verified()
        if found is None:
            return 0
        prefix, epoch = found
        status = checkpoint.read(prefix)
        (status.expect_partial() if weights_only else status).assert_existing_objects_matched()
        logging.info("restored %s (epoch %d)", prefix, epoch)
        return epoch

    def restore(self, checkpoint: tf.train.Checkpoint) -> int:
        """The owner's resume (the caller holds the run): removes files the manifest does not list (an interrupted
        save's), then restores the newest intact checkpoint into ``checkpoint``'s objects, optimizer state
        included; returns its epoch (0: none)."""
        with self._locked(shared=False):
            self.cleanup(self._manifest())
            return self._read(checkpoint, weights_only=False)

    def read_weights(self, checkpoint: tf.train.Checkpoint) -> int:
        """A reader's restore (an export, evaluation, hard-negative mining, warm start): the model weights of the
        newest intact checkpoint, read under the shared lock; deletes nothing. Returns its epoch (0: none)."""
        with self._locked(shared=True):
            return self._read(checkpoint, weights_only=True)

    # ------------------------------------------------------------------ writing
    def save(self, checkpoint: tf.train.Checkpoint, epoch: int) -> str:
        """Writes checkpoint ``ckpt-<epoch>``, records it in the manifest, drops the oldest beyond
        ``max_to_keep``; returns its prefix. Holds the directory's lock exclusively meanwhile."""
        os.makedirs(self.directory, exist_ok=True)
        with directory_lock(self.directory):
            return self._save(checkpoint, epoch)

    def _save(self, checkpoint: tf.train.Checkpoint, epoch: int) -> str:
        manifest = self._manifest()
        if manifest is None:  # claim the directory before the first write, so a killed save's files are ours
            manifest = {"checkpoints": [], "training_settings": self.settings}
            self._write_manifest(manifest, [], [])
        self.cleanup(manifest)
        name = f"ckpt-{epoch}"
        prefix = checkpoint.write(os.path.join(self.directory, name))
        entries = [e for e in manifest.get("checkpoints", []) if e["name"] != name]
        entries.append({"name": name, "epoch": int(epoch), "files": checkpoint_checksums(prefix)})
        kept, dropped = entries[-self.max_to_keep:], entries[:-self.max_to_keep]
        changes = list(manifest.get("setting_changes", []))
        if self._pending_change:
            changes.append({"epoch": int(epoch), "changed": self._pending_change})
            self._pending_change = None
        self._write_manifest(manifest, changes, kept)
        for entry in dropped:  # only after the manifest no longer lists them
            for file_name in entry["files"]:
                _remove(os.path.join(self.directory, file_name))
        return prefix

    def _write_manifest(self, manifest: Mapping[str, Any], changes: list, entries: list) -> None:
        write_json_atomic(os.path.join(self.directory, MANIFEST_NAME), {
            "format_version": MANIFEST_VERSION, **model_fingerprint(self.model),
            "training_settings": self.settings if self.settings is not None else manifest.get("training_settings"),
            "setting_changes": changes, "checkpoints": entries})

    def cleanup(self, manifest: Mapping[str, Any] | None) -> None:
        """Removes checkpoint files and ``_temp`` leftovers that the manifest does not list."""
        if not os.path.isdir(self.directory):
            return
        listed = {f for e in (manifest or {}).get("checkpoints", []) for f in e["files"]}
        for file_name in os.listdir(self.directory):
            match = _CHECKPOINT_FILE.match(file_name)
            if match and file_name not in listed:
                logging.info("removing %s (not in %s: left by an interrupted save)", file_name, MANIFEST_NAME)
                _remove(os.path.join(self.directory, file_name))


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


def restore_latest_weights(model, checkpoint_dir: str) -> int:
    """Restores the weights (not optimizer state) of the newest intact checkpoint in ``checkpoint_dir`` into
    ``model`` (built), as a reader (``CheckpointStore.read_weights``: no file is touched); returns its epoch.
    FileNotFoundError when there is none; ValueError for a checkpoint of another model/config/spec or when none
    is intact."""
    epoch = CheckpointStore(checkpoint_dir, model).read_weights(tf.train.Checkpoint(model=model))
    if epoch == 0:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir!r} (training not finished?)")
    return epoch
