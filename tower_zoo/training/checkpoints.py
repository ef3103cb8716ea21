"""Checkpoint manifests: what a checkpoint directory holds, verified before anything is restored.

``manifest.json`` beside the checkpoints names the model, its config and its feature spec (a checkpoint
is only restored into the same) and lists each checkpoint with the SHA-256 of its files.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import tensorflow as tf



MANIFEST_NAME = "manifest.json"


def model_fingerprint(model) -> dict[str, Any]:
    """What a checkpoint must match to be restored into ``model``."""
    config = model.get_config()
    spec_json = json.dumps(config["feature_spec"], sort_keys=True, default=str)
    return {
        "model_name": getattr(model, "model_name", type(model).__name__),
        "model_config": json.loads(json.dumps(config["config"], default=list)),
        "feature_spec_sha256": hashlib.sha256(spec_json.encode()).hexdigest(),
    }


def checkpoint_checksums(prefix: str) -> dict[str, str]:
    """SHA-256 of each file of the checkpoint at ``prefix`` (its .index and .data-* shards)."""
    directory, name = os.path.split(prefix)
    out = {}
    for file_name in sorted(os.listdir(directory)):
        if file_name.startswith(name + "."):
            digest = hashlib.sha256()
            with open(os.path.join(directory, file_name), "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            out[file_name] = digest.hexdigest()
    return out


def verify_checkpoint(checkpoint_dir: str, prefix: str) -> None:
    """Raises ValueError when a file of checkpoint ``prefix`` is missing, truncated or altered."""
    with open(os.path.join(checkpoint_dir, MANIFEST_NAME)) as handle:
        recorded = json.load(handle).get("checkpoints", {}).get(os.path.basename(prefix))
    if recorded is None:
        raise ValueError(f"checkpoint {prefix!r} is not listed in {MANIFEST_NAME}: written by another tool "
                         "or by an interrupted save; refusing to trust it")
    actual = checkpoint_checksums(prefix)
    for file_name, digest in recorded.items():
        if file_name not in actual:
            raise ValueError(f"checkpoint file {os.path.join(checkpoint_dir, file_name)!r} is missing")
        if actual[file_name] != digest:
            raise ValueError(f"checkpoint file {os.path.join(checkpoint_dir, file_name)!r} does not match its "
                             "checksum (truncated or altered)")


def check_manifest(checkpoint_dir: str, model) -> None:
    """Raises ValueError when ``checkpoint_dir`` holds a checkpoint of a different model/config/spec."""
    path = os.path.join(checkpoint_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        raise ValueError(f"checkpoint directory {checkpoint_dir!r} has checkpoints but no {MANIFEST_NAME}")
    try:
        with open(path) as handle:
            saved = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable checkpoint manifest {path!r}: {err}") from err
    expected = model_fingerprint(model)
    for key, value in expected.items():
        if saved.get(key) != value:
            raise ValueError(
                f"checkpoint in {checkpoint_dir!r} does not match this model: {key} is "
                f"{saved.get(key)!r} there, {value!r} here")


def restore_latest_weights(model, checkpoint_dir: str) -> str:
    """Restores the model weights (not optimizer state) of the newest verified checkpoint in
    ``checkpoint_dir`` into ``model`` (built); returns its path. Raises FileNotFoundError when there is
    none, ValueError for a checkpoint of another model/config/spec or a damaged file."""
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoint_dir!r} (training not finished?)")
    check_manifest(checkpoint_dir, model)
    verify_checkpoint(checkpoint_dir, latest)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
    return latest
