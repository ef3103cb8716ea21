"""InteractionData: interactions plus user and item feature tables, and their FeatureSpec.

Every loader (MovieLens from the wheel, GroupLens files, synthetic) returns one of these with
canonical columns:

* ``ratings``: ``user_id`` int64, ``item_id`` int64, ``rating`` float32, ``timestamp`` int64
* ``users``: ``user_id`` plus one column per user feature
* ``items``: ``item_id`` plus one column per item feature (and optional display columns such as ``title``)

The user-side sequence feature ``history`` (the user's most recent items before an interaction)
is not a column of ``users``: it depends on time and is built per example by the splits.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import (PAD_INDEX, FeatureSpec, NumericFeature, SequenceFeature, encode_feature,
                                        first_non_int64, infer_categorical, infer_sequence)

RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
CATEGORY_FEATURE = "category"                  # item-side category (tower_zoo.data.memory.categories)
HISTORY_CATEGORY_FEATURE = "history_category"  # the category of each history item


@dataclasses.dataclass
class InteractionData:
    """A dataset: ``ratings`` [R rows], ``users`` [U rows], ``items`` [I rows], and its spec."""

    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    feature_spec: FeatureSpec
    source: str = ""

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    def table_features(self, side: str) -> list[str]:
        """Names of ``side``'s features stored as columns of its table (all but time-dependent
        ones such as ``history``)."""
        table = self.users if side == "user" else self.items
        return [f.name for f in self.feature_spec.side(side) if f.name in table.columns]

    def encode_table(self, side: str) -> dict[str, np.ndarray]:
        """The ``users`` (side="user") or ``items`` table encoded: ``{feature: [U] or [I] array}``."""
        table = self.users if side == "user" else self.items
        return self.feature_spec.encode(table, names=self.table_features(side))

    def summary(self) -> str:
        return (f"{self.name}: {len(self.ratings):,} interactions, {self.num_users:,} users, "
                f"{self.num_items:,} items (from {self.source or 'memory'})")


def validate_frames(name: str, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame) -> None:
    """Raises ValueError naming the table and column for empty tables, missing columns, NaN ids, ids that
    are not int64 integers (1.5, "2", 2**63), duplicate ids, or ratings that reference unknown users/items."""
    for table, frame, required in (("ratings", ratings, RATING_COLUMNS), ("users", users, ("user_id",)),
                                   ("items", items, ("item_id",))):
        if len(frame) == 0:
            raise ValueError(f"{name}: table {table!r} is empty")
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: table {table!r} lacks column(s) {missing}; has {list(frame.columns)}")
        for column in required:
            if frame[column].isna().any():
                raise ValueError(f"{name}: table {table!r} column {column!r} has NaN/missing values")
    for table, frame, column in (("users", users, "user_id"), ("items", items, "item_id"),
                                 ("ratings", ratings, "user_id"), ("ratings", ratings, "item_id")):
        problem = first_non_int64(frame[column])
        if problem is not None:
            raise ValueError(f"{name}: table {table!r} column {column!r}: id {problem[1]!r} {problem[2]}")
    for table, frame, column in (("users", users, "user_id"), ("items", items, "item_id")):
        duplicated = frame[column][frame[column].duplicated()]
        if len(duplicated):
            raise ValueError(f"{name}: table {table!r} has duplicate {column} {duplicated.iloc[0]}")
    for column, frame in (("user_id", users), ("item_id", items)):
        unknown = ~ratings[column].isin(frame[column])
        if unknown.any():
            raise ValueError(
                f"{name}: ratings reference {int(unknown.sum())} unknown {column}(s), e.g. "
                f"{ratings[column][unknown].iloc[0]}")


def _check_finite(name: str, side: str, column: str, values: pd.Series) -> None:
    """ValueError naming the column, the value and its row when a numeric feature column holds inf."""
    try:
        numbers = values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        return  # not numbers: NumericFeature / encode name the bad value
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        raise ValueError(f"{name}: {side} feature column {column!r} has a non-finite value {numbers[bad[0]]} at row "
                         f"{values.index[bad[0]]}")


def build_interaction_data(name: str, ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame,
                           source: str = "", *, numeric_boundaries: dict[str, Sequence[float]] | None = None,
                           sequence_columns: Sequence[str] = (), history_length: int = 50,
                           display_columns: Sequence[str] = ("title",)) -> InteractionData:
    """Validates canonical frames and infers a FeatureSpec from them.

    Every non-id column of ``users``/``items`` becomes a feature: columns named in
    ``numeric_boundaries`` become bucketized numeric features, ``sequence_columns`` (lists) become
    sequence features, other numeric columns standardized numerics, everything else categorical.
    ``display_columns`` are kept in the tables but are not features. A user-side ``history``
    sequence feature over item ids (last ``history_length`` items) is added when ``history_length > 0``.
    """
    numeric_boundaries = dict(numeric_boundaries or {})
    validate_frames(name, ratings, users, items)
    ratings = ratings.loc[:, list(RATING_COLUMNS)].astype(
        {"user_id": np.int64, "item_id": np.int64, "rating": np.float32, "timestamp": np.int64})
    ratings = ratings.reset_index(drop=True)
    users, items = users.reset_index(drop=True).copy(), items.reset_index(drop=True).copy()
    users["user_id"], items["item_id"] = users["user_id"].astype(np.int64), items["item_id"].astype(np.int64)
    features: list = [infer_categorical("user_id", "user", users["user_id"]),
                      infer_categorical("item_id", "item", items["item_id"])]
    for side, frame in (("user", users), ("item", items)):
        for column in list(frame.columns):
            if column in ("user_id", "item_id") or column in display_columns:
                continue
            values = frame[column]
            if column not in sequence_columns and values.isna().any():
                row = values.index[values.isna().to_numpy()][0]
                raise ValueError(f"{name}: {side} feature column {column!r} has a missing/NaN value at row {row}")
            if column in sequence_columns:
                features.append(infer_sequence(column, side, values, max(len(v) for v in values) or 1))
            elif column in numeric_boundaries:
                _check_finite(name, side, column, values)
                features.append(NumericFeature(column, side, boundaries=tuple(numeric_boundaries[column])))
            elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                _check_finite(name, side, column, values)
                std = float(values.std()) or 1.0
                features.append(NumericFeature(column, side, float(values.mean()), std))
            else:  # categorical: values are compared as strings, so store them as strings
                frame[column] = values.astype(str)
                features.append(infer_categorical(column, side, frame[column]))
    if history_length > 0:
        features.append(SequenceFeature(HISTORY_FEATURE, "user", features[1].vocabulary, history_length))
    spec = FeatureSpec(tuple(features))
    return InteractionData(name, ratings, users, items, spec, source)


def category_of_codes(data: InteractionData) -> np.ndarray:
    """int32 [item vocab]: the category code of each item-id code (PAD_INDEX for padding and OOV)."""
    spec = data.feature_spec
    table = np.full(spec.item_id.vocab_size, PAD_INDEX, np.int32)
    table[encode_feature(spec.item_id, data.items["item_id"])] = encode_feature(spec.get(CATEGORY_FEATURE),
                                                                                data.items[CATEGORY_FEATURE])
    return table
