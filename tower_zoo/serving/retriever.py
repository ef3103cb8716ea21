"""Retriever: top-K items for users, in Python, over a user tower, item vectors and an index (ScaNN or exact).

Built in memory from a model (``Retriever.from_model``) or from an export (``tower_zoo.serving.load``); both
answer the same calls:

* ``search(encoded user features, k, exclude=None) -> (ids int64 [B, k], scores [B, k])``;
* ``search_raw(raw user rows, k, exclude=None)``: the rows as a client holds them (a DataFrame, or
  {feature: values}; histories as lists of raw item ids), encoded by the export's SavedModel or, in memory,
  by ``FeatureSpec.encode``;
* ``search_users(user_ids, k, include_seen=False)``: users whose raw rows the export stores (``users.parquet``),
  by raw id; the items each has seen (the stored ``exclude`` column) are left out unless ``include_seen``, as in
  ``tower-zoo query`` and ``recommend``.

``k`` must be an integer from 1 to the corpus size (a ValueError naming both otherwise, before any work).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from tower_zoo.data.schema.spec import FeatureSpec, OOVCounter, first_non_int64
from tower_zoo.evaluation.index import ScannConfig, ScannIndex

EXCLUDE_COLUMN = "exclude"  # optional column of stored / given user rows: raw item ids never to recommend


def check_indexable(model) -> None:
    """Raises ValueError unless ``model`` scores by one dot product of a user and an item vector."""
    from tower_zoo.models.base import TwoTowerModel

    users = model.user_embedding(model.dummy_features(2))
    plain = type(model).similarity is TwoTowerModel.similarity
    if not isinstance(users, tf.Tensor) or users.shape.rank != 2 or not plain:
        raise ValueError(f"model {model.model_name!r} is not ANN-indexable (multi-vector, structured or "
                         "candidate-dependent scoring): a top-k export needs one dot product per item; export it "
                         "as a candidate scorer instead (kind='pre_ranking')")


def item_vectors(model, item_features: Mapping[str, np.ndarray], chunk: int = 2048) -> np.ndarray:
    """float32 [N, D] item vectors of a corpus, in chunks."""
    size = len(next(iter(item_features.values())))
    return np.concatenate([model.item_embedding({k: v[i:i + chunk] for k, v in item_features.items()}).numpy()
                           for i in range(0, size, chunk)]).astype(np.float32)


class Retriever:
    """Top-K retrieval for users (see the module docstring).

    ``user_tower(encoded) -> [B, D]``; ``raw_tower(raw rows) -> [B, D]`` (None: encode in Python with the
    spec); ``users``: raw rows of known users (a DataFrame with the user-id column)."""

    def __init__(self, user_tower: Callable, item_embeddings: np.ndarray, item_ids: np.ndarray, index,
                 feature_spec: FeatureSpec, users: pd.DataFrame | None = None,
                 titles: Mapping[int, str] | None = None, raw_tower: Callable | None = None):
        self.user_tower, self.raw_tower = user_tower, raw_tower
        self.item_embeddings, self.item_ids, self.index = item_embeddings, item_ids, index
        self.feature_spec = feature_spec
        self.users = users
        self.titles = dict(titles or {})
        self.oov_counter = OOVCounter()

    @classmethod
    def from_model(cls, model, item_features: Mapping[str, np.ndarray], item_ids: np.ndarray,
                   scann_config: ScannConfig | None = None, users: pd.DataFrame | None = None,
                   titles: Mapping[int, str] | None = None, depth: int = 1000) -> "Retriever":
        """Builds the item side and the index in memory (ScaNN; exact below its minimum corpus size).

        The ScaNN searcher is built once for ``depth`` neighbours per query (k plus any excluded ids must fit)."""
        check_indexable(model)
        vectors = item_vectors(model, item_features)
        index = ScannIndex(vectors, item_ids, scann_config)
        if index.fallback_reason is None:
            index.build(min(depth, len(item_ids)))
        return cls(lambda features: model.user_embedding(features), vectors, np.asarray(item_ids, np.int64),
                   index, model.feature_spec, users, titles)

    @property
    def user_feature_names(self) -> list[str]:
        return [f.name for f in self.feature_spec.user_features]

    def user_vectors(self, user_features: Mapping[str, np.ndarray]) -> np.ndarray:
        """[B, D] vectors of encoded user features, checked against the feature spec first."""
        names = self.user_feature_names
        self.feature_spec.check_encoded(user_features, where="user features", names=names)
        features = {n: tf.constant(user_features[n]) for n in names}
        return np.asarray(self.user_tower(features), np.float32)

    def raw_user_vectors(self, rows: Any) -> np.ndarray:
        """[B, D] vectors of raw user rows (a DataFrame or {feature: values})."""
        if self.raw_tower is not None:
            return np.asarray(self.raw_tower(rows), np.float32)
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(dict(rows))
        return self.user_vectors(self.encode_users(frame))

    def encode_users(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Encodes raw user features (a DataFrame with one column per user feature; ``history`` as lists of
        raw item ids). Unknown values go to their feature's OOV bucket, never an error or a wrong row;
        ``oov_counter.counts`` accumulates how many, per feature, and a warning is logged."""
        before = dict(self.oov_counter.counts)
        encoded = self.feature_spec.encode(frame, side="user", oov_counter=self.oov_counter)
        new = {k: v - before.get(k, 0) for k, v in self.oov_counter.counts.items() if v - before.get(k, 0)}
        if new:
            logging.warning("unknown values mapped to OOV buckets: %s", new)
        return encoded

    def check_k(self, k: Any) -> None:
        """ValueError naming ``k`` and the corpus size unless ``k`` is an integer from 1 to that size."""
        corpus = len(self.item_ids)
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= corpus:
            raise ValueError(f"k must be an integer from 1 to the corpus size ({corpus} items), got k={k!r}")

    def search(self, user_features: Mapping[str, np.ndarray], k: int = 10,
               exclude: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.check_k(k)
        return self.index.search(self.user_vectors(user_features), k, exclude)

    def search_raw(self, rows: Any, k: int = 10,
                   exclude: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        self.check_k(k)
        return self.index.search(self.raw_user_vectors(rows), k, exclude)

    def known_user_rows(self, user_ids: Sequence[Any]) -> pd.DataFrame:
        """The stored raw rows of ``user_ids``; a ValueError names an id that is not an int64 or not stored."""
        if self.users is None:
            raise ValueError("this retriever has no stored user table (export with users=...)")
        column = self.feature_spec.user_id_feature
        known = pd.Index(self.users[column])
        for user_id in user_ids:
            problem = first_non_int64([user_id])
            if problem is not None:
                raise ValueError(f"user_id {problem[1]!r} {problem[2]}")
        rows = known.get_indexer(pd.Index(np.asarray(user_ids, np.int64)))
        if (rows < 0).any():
            missing = np.asarray(user_ids)[rows < 0][0]
            raise ValueError(f"unknown user_id {missing}: not among the {len(known)} users of this export")
        return self.users.iloc[rows].reset_index(drop=True)

    def search_users(self, user_ids: Sequence[int], k: int = 10,
                     include_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Serves users known at export time by raw id; their stored ``exclude`` items (what each has seen) are
        left out unless ``include_seen``."""
        self.check_k(k)
        rows = self.known_user_rows(user_ids)
        exclude = list(rows[EXCLUDE_COLUMN]) if not include_seen and EXCLUDE_COLUMN in rows else None
        return self.search_raw(rows[self.user_feature_names], k, exclude)
