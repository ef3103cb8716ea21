"""Export a retrieval model for serving and load it back.

An export directory holds:

* ``user_tower/``: a SavedModel whose ``serving_default`` signature maps encoded user features
  (int32 ids / buckets / sequences, float32 numerics; names as in the feature spec) to user vectors [B, D];
* ``item_embeddings.npy`` [N, D] and ``item_ids.npy`` [N]: the item side, computed offline;
* ``scann/``: the ScaNN index in ScaNN's own serialization (absent for corpora below its minimum size);
* ``users.npz``: the encoded user features of every known user at export time (their history included),
  so ``tower-zoo query --user_id`` can serve a known user without the training data;
* ``items.json``: item ids and titles, for display;
* ``retrieval_savedmodel/`` (with ``scann_in_savedmodel=True``): one SavedModel from user features to the top-k
  item ids, with a ScaNN index inside it (TFRS's ScaNN layer; the "Scann" op namespace whitelisted);
* ``manifest.json``: model name and config, the feature spec, the ScaNN knobs, and the SHA-256 of every file.

The directory is written under a temporary name beside the target and swapped into place (see
``tower_zoo.serving.directory``: only a complete tower_zoo export is ever replaced, atomically, and a crash
never leaves a half-written export or an empty served path); ``load`` verifies every checksum and refuses a
truncated or altered file. ScaNN records absolute asset paths when it serializes; ``load`` points them at the
export's actual (absolute) location, so an export can be moved, copied, or named by a relative path.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tower_zoo.data.spec import FeatureSpec, NumericFeature, OOVCounter, SequenceFeature, first_non_int64
from tower_zoo.evaluation.index import ScannConfig, ScannIndex
from tower_zoo.fileio import directory_lock
from tower_zoo.serving.directory import (FORMAT_VERSION, MANIFEST, check_target, checksums, clean_leftovers,
                                         discard, install, make_staging, read_manifest, verify_files)


def _input_signature(spec: FeatureSpec) -> dict[str, tf.TensorSpec]:
    signature = {}
    for feature in spec.user_features:
        if isinstance(feature, SequenceFeature):
            signature[feature.name] = tf.TensorSpec([None, feature.max_length], tf.int32, name=feature.name)
        elif isinstance(feature, NumericFeature) and not feature.bucketized:
            signature[feature.name] = tf.TensorSpec([None], tf.float32, name=feature.name)
        else:
            signature[feature.name] = tf.TensorSpec([None], tf.int32, name=feature.name)
    return signature


class UserTowerModule(tf.Module):
    """The user side of a model as a servable module: ``serve(**features) -> {"embedding": [B, D]}``."""

    def __init__(self, model):
        super().__init__(name="user_tower")
        self.model = model
        self.serve = tf.function(self._serve).get_concrete_function(**_input_signature(model.feature_spec))

    def _serve(self, **features):
        return {"embedding": self.model.user_embedding(features)}


class _UserTowerModel(tf.keras.Model):
    """A retrieval model's user tower as the Keras query model TFRS's ScaNN layer expects."""

    def __init__(self, model):
        super().__init__(name="user_tower")
        self.model = model

    def call(self, features):
        return self.model.user_embedding(features)


class RetrievalModule(tf.Module):
    """User features in, top-k item ids and scores out, ScaNN inside (TFRS's ``factorized_top_k.ScaNN``):
    ``serve(**features) -> {"ids": [B, k], "scores": [B, k]}``. Saved with the "Scann" op namespace
    whitelisted; the server needs ScaNN's TensorFlow ops loaded (``import scann``)."""

    def __init__(self, model, item_vectors: np.ndarray, item_ids: np.ndarray, k: int, config: ScannConfig):
        super().__init__(name="retrieval")
        import tensorflow_recommenders as tfrs

        knobs = config.resolved(len(item_ids), k)
        self.layer = tfrs.layers.factorized_top_k.ScaNN(
            _UserTowerModel(model), k=k, num_leaves=knobs["num_leaves"],
            num_leaves_to_search=knobs["num_leaves_to_search"], num_reordering_candidates=knobs["reorder_k"],
            dimensions_per_block=config.dims_per_block)
        self.layer.index(tf.constant(item_vectors), tf.constant(np.asarray(item_ids, np.int64)))
        self.serve = tf.function(self._serve).get_concrete_function(**_input_signature(model.feature_spec))

    def _serve(self, **features):
        scores, ids = self.layer(features)
        return {"ids": ids, "scores": scores}


def check_indexable(model) -> None:
    """Raises ValueError unless ``model`` scores by one dot product of a user and an item vector."""
    from tower_zoo.models.base import TwoTowerModel

    users = model.user_embedding(model.dummy_features(2))
    plain = type(model).similarity is TwoTowerModel.similarity
    if not isinstance(users, tf.Tensor) or users.shape.rank != 2 or not plain:
        raise ValueError(f"model {model.model_name!r} is not ANN-indexable (multi-vector, structured or "
                         "candidate-dependent scoring): export supports models whose score is one dot product")


class Retriever:
    """Top-K retrieval for users: a user tower, item vectors and an index over them.

    ``search(user_features, k, exclude=None) -> (ids int64 [B, k], scores [B, k])`` embeds encoded user
    features and searches the index; ``search_users(user_ids, k)`` serves known users by id.
    """

    def __init__(self, user_tower, item_embeddings: np.ndarray, item_ids: np.ndarray, index,
                 feature_spec: FeatureSpec, users: Mapping[str, np.ndarray] | None = None,
                 titles: Mapping[int, str] | None = None):
        self.user_tower = user_tower
        self.item_embeddings, self.item_ids, self.index = item_embeddings, item_ids, index
        self.feature_spec = feature_spec
        self.users = dict(users or {})
        self.titles = dict(titles or {})
        self.oov_counter = OOVCounter()

    @classmethod
    def from_model(cls, model, item_features: Mapping[str, np.ndarray], item_ids: np.ndarray,
                   scann_config: ScannConfig | None = None, users: Mapping[str, np.ndarray] | None = None,
                   titles: Mapping[int, str] | None = None, depth: int = 1000) -> "Retriever":
        """Builds the item side and the index in memory (ScaNN; exact below its minimum corpus size).

        The ScaNN searcher is built once for ``depth`` neighbours per query (k plus any excluded ids must fit)."""
        check_indexable(model)
        vectors = np.concatenate([model.item_embedding({k: v[i:i + 2048] for k, v in item_features.items()}).numpy()
                                  for i in range(0, len(item_ids), 2048)]).astype(np.float32)
        index = ScannIndex(vectors, item_ids, scann_config)
        if index.fallback_reason is None:
            index.build(min(depth, len(item_ids)))
        return cls(lambda features: model.user_embedding(features), vectors, np.asarray(item_ids, np.int64),
                   index, model.feature_spec, users, titles)

    def user_vectors(self, user_features: Mapping[str, np.ndarray]) -> np.ndarray:
        """[B, D] vectors of encoded user features, checked against the feature spec first."""
        names = [f.name for f in self.feature_spec.user_features]
        self.feature_spec.check_encoded(user_features, where="user features", names=names)
        features = {n: tf.constant(user_features[n]) for n in names}
        return np.asarray(self.user_tower(features), np.float32)

    def encode_users(self, frame) -> dict[str, np.ndarray]:
        """Encodes raw user features (a DataFrame with one column per user feature; ``history`` as lists of
        raw item ids). Unknown values go to their feature's OOV bucket, never an error or a wrong row;
        ``oov_counter.counts`` accumulates how many, per feature, and a warning is logged."""
        before = dict(self.oov_counter.counts)
        encoded = self.feature_spec.encode(frame, side="user", oov_counter=self.oov_counter)
        new = {k: v - before.get(k, 0) for k, v in self.oov_counter.counts.items() if v - before.get(k, 0)}
        if new:
            logging.warning("unknown values mapped to OOV buckets: %s", new)
        return encoded

    def search(self, user_features: Mapping[str, np.ndarray], k: int = 10,
               exclude: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(self.user_vectors(user_features), k, exclude)

    def search_users(self, user_ids: Sequence[int], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Serves users known at export time by raw id; an unknown id is a ValueError naming it."""
        if not self.users:
            raise ValueError("this retriever has no stored user table (export with users=...)")
        known = self.users["__raw_user_id__"]
        rows = []
        for user_id in user_ids:
            problem = first_non_int64([user_id])
            if problem is not None:
                raise ValueError(f"user_id {problem[1]!r} {problem[2]}")
            match = np.flatnonzero(known == int(user_id))
            if not len(match):
                raise ValueError(f"unknown user_id {user_id}: not among the {len(known)} users of this export")
            rows.append(match[0])
        features = {k: v[rows] for k, v in self.users.items() if not k.startswith("__")}
        return self.search(features, k)


def _write_export(staging: pathlib.Path, model, retriever: Retriever, users, titles, scann_config,
                  scann_in_savedmodel: bool, savedmodel_k: int) -> None:
    """Writes every file of an export into ``staging``, the manifest last."""
    module = UserTowerModule(model)
    tf.saved_model.save(module, str(staging / "user_tower"), signatures={"serving_default": module.serve})
    np.save(staging / "item_embeddings.npy", retriever.item_embeddings)
    np.save(staging / "item_ids.npy", retriever.item_ids)
    if isinstance(retriever.index, ScannIndex) and retriever.index.fallback_reason is None:
        (staging / "scann").mkdir()
        retriever.index.serialize(str(staging / "scann"))
    if scann_in_savedmodel:
        retrieval = RetrievalModule(model, retriever.item_embeddings, retriever.item_ids,
                                    min(savedmodel_k, len(retriever.item_ids)), scann_config or ScannConfig())
        tf.saved_model.save(retrieval, str(staging / "retrieval_savedmodel"),
                            signatures={"serving_default": retrieval.serve},
                            options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]))
    if users:
        np.savez(staging / "users.npz", **users)
    with open(staging / "items.json", "w") as handle:
        json.dump({str(k): v for k, v in (titles or {}).items()}, handle)
    config = model.get_config()
    manifest = {"format_version": FORMAT_VERSION, "model_name": model.model_name, "model_config": config["config"],
                "feature_spec": config["feature_spec"], "dimension": int(retriever.item_embeddings.shape[1]),
                "num_items": int(len(retriever.item_ids)),
                "scann_config": getattr(retriever.index, "config", ScannConfig()).__dict__,
                "scann_depth": int(getattr(retriever.index, "_depth", 0)),
                "files": checksums(staging)}
    with open(staging / MANIFEST, "w") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True, default=list)


def export(model, item_features: Mapping[str, np.ndarray], item_ids: np.ndarray, out_dir: str,
           scann_config: ScannConfig | None = None, users: Mapping[str, np.ndarray] | None = None,
           titles: Mapping[int, str] | None = None, overwrite: bool = False, scann_in_savedmodel: bool = False,
           savedmodel_k: int = 100, protected: Sequence[str] = ()) -> Retriever:
    """Writes the export directory (see the module docstring) and returns the in-memory Retriever.

    ``overwrite`` replaces an existing export (only a complete tower_zoo export, atomically; see
    ``tower_zoo.serving.directory``); ``protected`` directories (the source run) may not be, hold or lie
    inside ``out_dir``. With ``scann_in_savedmodel``, also ``retrieval_savedmodel/``: one SavedModel from
    user features to the top ``savedmodel_k`` item ids with a ScaNN index inside (``RetrievalModule``)."""
    target = pathlib.Path(out_dir).resolve()
    protected = [pathlib.Path(p).resolve() for p in protected]
    check_target(target, overwrite, protected)  # before any work
    retriever = Retriever.from_model(model, item_features, item_ids, scann_config, users, titles)
    target.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(str(target.parent)):
        clean_leftovers(target)
        check_target(target, overwrite, protected)  # again, now that no other export can run here
        staging = make_staging(target)
        try:
            _write_export(staging, model, retriever, users, titles, scann_config, scann_in_savedmodel,
                          savedmodel_k)
            install(staging, target)
        except BaseException:
            if staging.exists():
                discard(staging)
            raise
    return retriever


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


def _scann_config(manifest: Mapping[str, Any], path: pathlib.Path) -> ScannConfig:
    try:
        return ScannConfig(**manifest["scann_config"])
    except TypeError as err:
        raise ValueError(f"export manifest {str(path)!r}: field 'scann_config' is invalid: {err}") from err


def _feature_spec(manifest: Mapping[str, Any], path: pathlib.Path) -> FeatureSpec:
    try:
        return FeatureSpec.from_dict(manifest["feature_spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"export manifest {str(path)!r}: field 'feature_spec' is invalid: {err!r}") from err


def load(export_dir: str) -> Retriever:
    """Loads an export; every file must match the manifest's checksum. A relative ``export_dir`` is resolved
    against the current directory once, here."""
    root = pathlib.Path(export_dir).resolve()
    _repair(root)
    manifest = read_manifest(root)
    verify_files(root, manifest)
    spec = _feature_spec(manifest, root / MANIFEST)
    config = _scann_config(manifest, root / MANIFEST)
    embeddings = np.load(root / "item_embeddings.npy")
    ids = np.load(root / "item_ids.npy")
    if (root / "scann").is_dir():
        index = ScannIndex(embeddings, ids, config)
        index.attach(_load_scann(root / "scann"), depth=manifest["scann_depth"])
    else:
        index = ScannIndex(embeddings, ids, config)  # falls back to exact, as it did at export time
    tower = tf.saved_model.load(str(root / "user_tower")).signatures["serving_default"]
    users = dict(np.load(root / "users.npz")) if (root / "users.npz").is_file() else None
    titles = {int(k): v for k, v in json.loads((root / "items.json").read_text()).items()}
    logging.info("loaded export %s: %s, %d items", root, manifest["model_name"], len(ids))
    return Retriever(lambda features: tower(**features)["embedding"], embeddings, ids, index, spec, users, titles)


__all__ = ["Retriever", "UserTowerModule", "export", "load"]
