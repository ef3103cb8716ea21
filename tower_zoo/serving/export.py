"""Export a model for serving, and load an export back.

Every SavedModel of an export takes raw feature values as a client holds them and does the lookups inside
(``raw_features``); none needs tower_zoo to load (plain ``tf.saved_model.load``, or TensorFlow Serving), and
all but the optional ``retrieval_scann/`` use stock TensorFlow ops only. An export directory holds:

* ``manifest.json``: ``format_version`` (2), ``kind`` ("retrieval" or "pre_ranking"), the model name and
  config, the feature spec, the raw inputs (dtype, shape, padding sentinel of each user feature), the
  SavedModels and their signatures, and the SHA-256 of every file;
* ``users.parquet`` (optional): raw rows of the users known at export time (one column per user feature,
  histories as lists of raw item ids, and ``exclude``: the item ids each has interacted with), so
  ``query`` and ``recommend`` serve them by id;
* ``items.json``: item titles by id, for display.

A retrieval export (a model scored by one dot product, ``retriever.check_indexable``) adds:

* ``user_tower/``: raw user features -> ``embedding`` [B, D] (signature ``encoded`` takes encoded features);
* ``retrieval/``: raw user features -> top-k ``ids`` / ``scores`` by exact blocked search over the item matrix
  held in the SavedModel; signature ``exclude`` also takes ``exclude_ids`` (``retrieval_export``);
* ``item_embeddings.npy`` [N, D], ``item_ids.npy`` [N] and ``scann/`` (ScaNN's own serialization, absent
  below its minimum corpus size), for the Python ``Retriever``;
* ``retrieval_scann/`` (``scann_in_savedmodel=True``): the top-k SavedModel with a ScaNN index inside; it needs
  ScaNN's custom ops ("Scann" namespace) in the server.

A pre-ranking export (any model: pre-ranking models by default; a multi-vector retrieval model such as
``poly_encoder`` on request) adds ``scorer/`` (signatures ``user_state``, ``score_candidates``,
``serving_default``; ``preranking_export``) and ``item_cache.npz`` (the cached item states, ``item`` or
``item_<key>`` [N, ...], and the raw item ``ids`` [N]).

The directory is written under a temporary name beside the target and swapped into place (see
``tower_zoo.serving.directory``); ``load`` verifies every checksum and the format version. ScaNN records
absolute asset paths; ``load`` points them at the export's actual location, so an export can be moved.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import tempfile
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from tower_zoo.data.schema.spec import FeatureSpec, SequenceFeature
from tower_zoo.evaluation.index import ScannConfig, ScannIndex
from tower_zoo.fileio import directory_lock, read_json_record
from tower_zoo.serving.directory import (FORMAT_VERSION, MANIFEST, check_target, checksums, clean_leftovers,
                                         discard, install, make_staging, read_manifest, verify_files)
from tower_zoo.serving.preranking_export import CandidateScorerModule, item_cache
from tower_zoo.serving.raw_features import RawFeatureEncoder, padding_value, raw_signature
from tower_zoo.serving.requests import call_signature, id_matrix, request_arrays
from tower_zoo.serving.retrieval_export import ExactTopKModule, ScannTopKModule, UserTowerModule
from tower_zoo.serving.retriever import EXCLUDE_COLUMN, Retriever
from tower_zoo.serving.scorer import CandidateScorer, signature_inputs

KINDS = ("retrieval", "pre_ranking")
USERS_FILE = "users.parquet"
ITEM_CACHE_FILE = "item_cache.npz"
# Fields each kind's manifest holds beyond ``directory.MANIFEST_FIELDS``, with their JSON types.
KIND_FIELDS = {"retrieval": {"raw_inputs": dict, "padding_id": int, "k": int, "scann_config": dict,
                             "scann_depth": int},
               "pre_ranking": {"raw_inputs": dict, "padding_id": int, "user_state": list, "item_state": list}}


def default_kind(model) -> str:
    """"retrieval" for retrieval models (top-k by dot product), "pre_ranking" (candidate scorer) otherwise."""
    return "retrieval" if getattr(model, "model_kind", "retrieval") == "retrieval" else "pre_ranking"


def _raw_inputs(spec: FeatureSpec, padding_id: int) -> dict[str, dict[str, Any]]:
    """The manifest's description of the raw user inputs: dtype, shape (-1 = any), padding sentinel."""
    described = {}
    for name, tensor_spec in raw_signature(spec.user_features).items():
        entry = {"dtype": tensor_spec.dtype.name, "shape": [-1] * tensor_spec.shape.rank}
        if isinstance(spec.get(name), SequenceFeature):
            entry["padding"] = padding_value(spec.get(name), padding_id)
        described[name] = entry
    return described


def _save(module, path: pathlib.Path, namespaces: Sequence[str] = ()) -> None:
    tf.saved_model.save(module, str(path), signatures=module.signatures(),
                        options=tf.saved_model.SaveOptions(namespace_whitelist=list(namespaces)))


def _check_users(spec: FeatureSpec, users: pd.DataFrame) -> None:
    """Raw user rows must encode (one clear error otherwise) and have unique ids."""
    spec.encode(users, side="user")
    ids = users[spec.user_id_feature]
    if ids.duplicated().any():
        raise ValueError(f"users: duplicate {spec.user_id_feature} {ids[ids.duplicated()].iloc[0]!r}")
    if EXCLUDE_COLUMN in users:
        id_matrix(list(users[EXCLUDE_COLUMN]), 0, EXCLUDE_COLUMN)


def _write_retrieval(staging: pathlib.Path, model, encoder, retriever: Retriever, k: int, padding_id: int,
                     scann_config: ScannConfig, scann_in_savedmodel: bool, asset_dir: str) -> dict[str, Any]:
    _save(UserTowerModule(model, encoder), staging / "user_tower")
    k = min(k, len(retriever.item_ids))
    _save(ExactTopKModule(model, encoder, retriever.item_embeddings, retriever.item_ids, k, asset_dir,
                          padding_id), staging / "retrieval")
    np.save(staging / "item_embeddings.npy", retriever.item_embeddings)
    np.save(staging / "item_ids.npy", retriever.item_ids)
    if isinstance(retriever.index, ScannIndex) and retriever.index.fallback_reason is None:
        (staging / "scann").mkdir()
        retriever.index.serialize(str(staging / "scann"))
    savedmodels = {"user_tower": ["serving_default", "encoded"], "retrieval": ["serving_default", "exclude"]}
    if scann_in_savedmodel:
        knobs = scann_config.resolved(len(retriever.item_ids), k)
        _save(ScannTopKModule(model, encoder, retriever.item_embeddings, retriever.item_ids, k, knobs,
                              scann_config.dims_per_block), staging / "retrieval_scann", namespaces=["Scann"])
        savedmodels["retrieval_scann"] = ["serving_default"]
    return {"k": k, "dimension": int(retriever.item_embeddings.shape[1]), "savedmodels": savedmodels,
            "scann_config": getattr(retriever.index, "config", scann_config).__dict__,
            "scann_depth": int(getattr(retriever.index, "_depth", 0))}


def _write_scorer(staging: pathlib.Path, model, encoder, item_features, item_ids, padding_id: int,
                  asset_dir: str) -> dict[str, Any]:
    cache = item_cache(model, item_features)
    module = CandidateScorerModule(model, encoder, cache, item_ids, asset_dir, padding_id)
    _save(module, staging / "scorer")
    np.savez(staging / ITEM_CACHE_FILE, ids=np.asarray(item_ids, np.int64), **cache)  # cache names start "item"
    return {"user_state": list(module.state_specs), "item_state": list(cache),
            "savedmodels": {"scorer": ["serving_default", "user_state", "score_candidates"]}}


def export(model, item_features: Mapping[str, np.ndarray], item_ids: np.ndarray, out_dir: str,
           scann_config: ScannConfig | None = None, users: pd.DataFrame | None = None,
           titles: Mapping[int, str] | None = None, overwrite: bool = False, scann_in_savedmodel: bool = False,
           k: int = 100, kind: str | None = None, padding_id: int = -1, protected: Sequence[str] = ()):
    """Writes the export directory (see the module docstring). Returns the in-memory ``Retriever`` of a
    retrieval export, the loaded ``CandidateScorer`` of a pre-ranking one.

    ``kind``: "retrieval" or "pre_ranking" (None: ``default_kind``); ``k``: the depth of the top-k SavedModels;
    ``users``: raw user rows to store; ``padding_id``: the int64 sentinel of empty sequence slots.
    ``overwrite`` replaces an existing export (only a complete tower_zoo export, atomically; see
    ``tower_zoo.serving.directory``); ``protected`` directories (the source run) may not be, hold or lie inside
    ``out_dir``."""
    kind = kind or default_kind(model)
    if kind not in KINDS:
        raise ValueError(f"unknown export kind {kind!r}; choose one of {', '.join(KINDS)}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    target = pathlib.Path(out_dir).resolve()
    protected = [pathlib.Path(p).resolve() for p in protected]
    check_target(target, overwrite, protected)  # before any work
    spec = model.feature_spec
    if users is not None:
        _check_users(spec, users)
    scann_config = scann_config or ScannConfig()
    retriever = (Retriever.from_model(model, item_features, item_ids, scann_config, users, titles)
                 if kind == "retrieval" else None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(str(target.parent)):
        clean_leftovers(target)
        check_target(target, overwrite, protected)  # again, now that no other export can run here
        staging = make_staging(target)
        try:
            with tempfile.TemporaryDirectory() as asset_dir:  # vocabulary files, copied into each SavedModel
                encoder = RawFeatureEncoder(spec, [f.name for f in spec.user_features], asset_dir, padding_id)
                if kind == "retrieval":
                    details = _write_retrieval(staging, model, encoder, retriever, k, padding_id, scann_config,
                                               scann_in_savedmodel, asset_dir)
                else:
                    details = _write_scorer(staging, model, encoder, item_features, item_ids, padding_id,
                                            asset_dir)
            if users is not None:
                users.reset_index(drop=True).to_parquet(staging / USERS_FILE, index=False)
            with open(staging / "items.json", "w") as handle:
                json.dump({str(key): value for key, value in (titles or {}).items()}, handle)
            config = model.get_config()
            manifest = {"format_version": FORMAT_VERSION, "kind": kind, "model_name": model.model_name,
                        "model_config": config["config"], "feature_spec": config["feature_spec"],
                        "num_items": int(len(item_ids)), "padding_id": int(padding_id),
                        "raw_inputs": _raw_inputs(spec, padding_id), **details, "files": checksums(staging)}
            with open(staging / MANIFEST, "w") as handle:
                json.dump(manifest, handle, indent=2, sort_keys=True, default=list)
            install(staging, target)
        except BaseException:
            if staging.exists():
                discard(staging)
            raise
    return retriever if kind == "retrieval" else load(str(target))


def _load_scann(directory: pathlib.Path):
    """ScaNN's searcher from ``directory`` (absolute) with its recorded asset paths pointed at ``directory``."""
    from scann.scann_ops.py import scann_ops_pybind

    scann_pybind = scann_ops_pybind.scann_pybind  # the extension module ScaNN's own loader uses

    directory = directory.resolve()
    text = (directory / "scann_assets.pbtxt").read_text()
    relocated = re.sub(r'asset_path: "([^"]*)"',
                       lambda m: f'asset_path: "{directory / os.path.basename(m.group(1))}"', text)
    return scann_ops_pybind.ScannSearcher(scann_pybind.ScannNumpy(str(directory), relocated), None)


def _repair(root: pathlib.Path) -> None:
    """Best effort before a load: finish a replace that was killed midway and remove leftovers of ours.
    Skipped while an export into the same parent runs, or where the directory is not writable."""
    if not root.parent.is_dir():
        return
    try:
        with directory_lock(str(root.parent), blocking=False):
            clean_leftovers(root)
    except OSError as err:
        logging.info("left export leftovers beside %s alone: %s", root, err)


def _field(manifest: Mapping[str, Any], path: pathlib.Path, name: str, build):
    try:
        return build(manifest[name])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"export manifest {str(path)!r}: field {name!r} is invalid: {err!r}") from err


def read_export_manifest(root: pathlib.Path) -> dict[str, Any]:
    """The manifest of export ``root`` with its kind's fields checked; every file verified."""
    manifest = read_manifest(root)
    verify_files(root, manifest)
    kind = manifest.get("kind")
    if kind not in KINDS:
        raise ValueError(f"export manifest {str(root / MANIFEST)!r}: field 'kind' must be one of {KINDS}, "
                         f"got {kind!r}")
    return read_json_record(str(root / MANIFEST), KIND_FIELDS[kind], "export manifest")


def padding_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """{sequence feature: its padding sentinel} from a manifest's raw inputs."""
    return {name: entry["padding"] for name, entry in manifest["raw_inputs"].items() if "padding" in entry}


def _raw_tower(signature, padding: Mapping[str, Any]):
    inputs = signature_inputs(signature)

    def embed(rows) -> np.ndarray:
        return call_signature(signature, request_arrays(inputs, rows, padding))["embedding"]
    return embed


def load(export_dir: str):
    """Loads an export: a ``Retriever`` (retrieval) or a ``CandidateScorer`` (pre_ranking). Every file must match
    the manifest's checksum and the format version must be this tower_zoo's. A relative ``export_dir`` is
    resolved against the current directory once, here."""
    root = pathlib.Path(export_dir).resolve()
    _repair(root)
    manifest = read_export_manifest(root)
    spec = _field(manifest, root / MANIFEST, "feature_spec", FeatureSpec.from_dict)
    users = pd.read_parquet(root / USERS_FILE) if (root / USERS_FILE).is_file() else None
    padding = padding_of(manifest)
    if manifest["kind"] == "pre_ranking":
        with np.load(root / ITEM_CACHE_FILE) as cache:
            ids = cache["ids"]
        return CandidateScorer(tf.saved_model.load(str(root / "scorer")), padding, manifest["padding_id"], ids,
                               users)
    config = _field(manifest, root / MANIFEST, "scann_config", lambda c: ScannConfig(**c))
    embeddings = np.load(root / "item_embeddings.npy")
    ids = np.load(root / "item_ids.npy")
    index = ScannIndex(embeddings, ids, config)  # falls back to exact below its minimum size, as at export
    if (root / "scann").is_dir():
        index.attach(_load_scann(root / "scann"), depth=manifest["scann_depth"])
    tower = tf.saved_model.load(str(root / "user_tower"))
    encoded = tower.signatures["encoded"]
    titles = {int(k): v for k, v in json.loads((root / "items.json").read_text()).items()}
    logging.info("loaded export %s: %s, %d items", root, manifest["model_name"], len(ids))
    return Retriever(lambda features: encoded(**features)["embedding"], embeddings, ids, index, spec, users, titles,
                     raw_tower=_raw_tower(tower.signatures["serving_default"], padding))


__all__ = ["Retriever", "CandidateScorer", "export", "load", "default_kind"]
