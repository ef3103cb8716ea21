"""A random split of exposures, for pre-ranking protocols that ignore time (e.g. IntTower's on MovieLens).

``random_exposure_split(data, seed=...)`` treats every rating as an exposure, drops the ratings in
``drop_ratings`` (IntTower: the ambiguous 3 stars), labels the rest ``label = rating > positive_above``, and
splits the rows uniformly at random (a permutation drawn from ``seed``): ``test_fraction`` of them for test,
then ``valid_fraction`` *of the remaining training rows* for validation (as Keras' ``validation_split`` takes
a fraction of the training data).

Features come from the user and item tables (``data.encode_table``) for the features of ``feature_spec``
(by default the dataset's, without the time-dependent ``history``). Features that depend on the row rather
than the user or item (statistics of labels, a history built by a protocol) are attached with
``with_row_features``, which extends the spec and checks every part's arrays against it.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from tower_zoo.data.memory.dataset import InteractionData
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import FeatureSpec

PARTS = ("train", "valid", "test")


@dataclasses.dataclass
class ExposureSplit:
    """Labelled exposures in three parts; see the module docstring.

    ``parts[name]``: a frame with ``user_id``, ``item_id``, ``rating``, ``timestamp``, ``label`` (0/1).
    ``row_features[name]``: ``{feature: encoded [rows] or [rows, L] array}`` for the features that are not
    columns of the user or item table, row-aligned with ``parts[name]``.
    """

    data: InteractionData
    feature_spec: FeatureSpec
    parts: dict[str, pd.DataFrame]
    row_features: dict[str, dict[str, np.ndarray]]

    def __post_init__(self):
        self._tables = {side: self.data.encode_table(side) for side in ("user", "item")}
        self._rows = {"user": pd.Index(self.data.users["user_id"]), "item": pd.Index(self.data.items["item_id"])}

    def part(self, name: str) -> pd.DataFrame:
        if name not in self.parts:
            raise ValueError(f"unknown split part {name!r}; choose from {list(self.parts)}")
        return self.parts[name]

    def examples(self, part: str) -> dict[str, np.ndarray]:
        """Every feature of ``feature_spec`` for ``part``'s rows: ``{feature: [R] or [R, L]}``."""
        frame, extra = self.part(part), self.row_features.get(part, {})
        rows = {side: self._rows[side].get_indexer(frame[f"{side}_id"].to_numpy()) for side in ("user", "item")}
        out = {}
        for feature in self.feature_spec.features:
            if feature.name in extra:
                out[feature.name] = extra[feature.name]
            elif feature.name in self._tables[feature.side]:
                out[feature.name] = self._tables[feature.side][feature.name][rows[feature.side]]
            else:
                raise ValueError(f"feature {feature.name!r} is neither a column of the {feature.side} table nor a "
                                 f"row feature of part {part!r}; attach it with with_row_features")
        return out

    def labels(self, part: str) -> dict[str, np.ndarray]:
        """``{"like": float32 [R]}``: the exposure labels of ``part``."""
        return {"like": self.part(part)["label"].to_numpy(np.float32)}

    def select(self, names: Sequence[str]) -> "ExposureSplit":
        """The same split with only the features ``names`` (the id features are always kept)."""
        spec = self.feature_spec.select(names)
        kept = {part: {k: v for k, v in values.items() if k in spec.names}
                for part, values in self.row_features.items()}
        return ExposureSplit(self.data, spec, self.parts, kept)

    def with_row_features(self, features: Sequence, values: Mapping[str, Mapping[str, np.ndarray]]) -> "ExposureSplit":
        """The split with ``features`` (FeatureSpec features) added, their encoded arrays per part in ``values``
        (``{part: {feature: array}}``, every part, every feature); a feature of the same name is replaced."""
        names = {f.name for f in features}
        spec = FeatureSpec(tuple(f for f in self.feature_spec.features if f.name not in names) + tuple(features),
                           self.feature_spec.user_id_feature, self.feature_spec.item_id_feature)
        row_features = {}
        for part in self.parts:
            given = dict(values.get(part, {}))
            missing = sorted(names - set(given))
            if missing:
                raise ValueError(f"with_row_features: part {part!r} lacks values for {missing}")
            spec.check_encoded(given, where=f"row features of part {part!r}", names=sorted(names))
            if len(next(iter(given.values()))) != len(self.parts[part]):
                raise ValueError(f"with_row_features: part {part!r} has {len(self.parts[part])} rows, the values "
                                 f"{len(next(iter(given.values())))}")
            row_features[part] = {**self.row_features.get(part, {}), **given}
        return ExposureSplit(self.data, spec, self.parts, row_features)


def random_exposure_split(data: InteractionData, seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.2,
                          drop_ratings: Sequence[float] = (3.0,), positive_above: float = 3.0) -> ExposureSplit:
    """See the module docstring. ``valid_fraction`` is a fraction of the rows left after the test rows."""
    if not 0 < test_fraction < 1 or not 0 <= valid_fraction < 1:
        raise ValueError(f"need 0 < test_fraction < 1 and 0 <= valid_fraction < 1, got {test_fraction}, "
                         f"{valid_fraction}")
    ratings = data.ratings[~data.ratings["rating"].isin(list(drop_ratings))].reset_index(drop=True)
    if len(ratings) < 3:
        raise ValueError(f"{data.name}: {len(ratings)} ratings left after dropping {list(drop_ratings)}")
    ratings = ratings.assign(label=(ratings["rating"] > positive_above).astype(np.int8))
    order = np.random.default_rng(seed).permutation(len(ratings))
    num_test = int(round(test_fraction * len(ratings)))
    num_valid = int(round(valid_fraction * (len(ratings) - num_test)))
    cuts = {"test": order[:num_test], "valid": order[num_test:num_test + num_valid],
            "train": order[num_test + num_valid:]}
    parts = {part: ratings.iloc[np.sort(cuts[part])].reset_index(drop=True) for part in PARTS}
    spec = data.feature_spec
    if HISTORY_FEATURE in spec.names:
        spec = FeatureSpec(tuple(f for f in spec.features if f.name != HISTORY_FEATURE), spec.user_id_feature,
                           spec.item_id_feature)
    return ExposureSplit(data, spec, parts, {})
