"""Row features of the IntTower MovieLens protocol, each in the released code's (leaky) form and a leak-free one.

IntTower's ``train_movielens_IntTower.py`` (``get_user_feature`` / ``get_item_feature``) adds two numeric
features computed from the binarized labels *of the split they are used in*: ``user_mean_rating`` and
``item_mean_rating``, the share of positive labels among a user's (an item's) rows. On the training part the
share includes the row's own label; on the test part it is computed from the test labels themselves, so a test
row's feature encodes its own label and those of every other test row of its user and item. It also builds
``user_hist``, the user's positively labelled items of the same split, which contains the row's own item
exactly when the row is positive (IntTower's script leaves it out of the model inputs; HIT's MovieLens setup
reads such a history).

Each builder takes ``leaky``:

* ``leaky=True``: the released code's form. The training part's statistics come from train and validation
  rows together (the official ``fit`` draws its validation rows from the training data after the features
  are computed), the test part's from the test rows.
* ``leaky=False``: statistics from training rows only. A training row's own label is left out (leave-one-out),
  so training rows see what validation and test rows see: the labels of *other* training rows. A user or item
  without such rows gets the global training share. The history is the user's positive training items other
  than the row's own (the latest ``max_length`` by time).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tower_zoo.data import ExposureSplit
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import NumericFeature, encode_feature

RATE_FEATURES = {"user": "user_label_rate", "item": "item_label_rate"}


def _groups(split: ExposureSplit, leaky: bool) -> dict[str, pd.DataFrame]:
    """The rows whose labels each part's statistics are computed from (see the module docstring)."""
    if leaky:
        seen = pd.concat([split.parts["train"], split.parts["valid"]], ignore_index=True)
        return {"train": seen, "valid": seen, "test": split.parts["test"]}
    return {part: split.parts["train"] for part in split.parts}


def label_rates(split: ExposureSplit, part: str, side: str, leaky: bool) -> np.ndarray:
    """float64 [rows of ``part``]: the share of positive labels among the rows of the row's user (side="user")
    or item in the statistics rows of ``part``; leave-one-out for training rows when not ``leaky``."""
    key = f"{side}_id"
    source = _groups(split, leaky)[part]
    totals = source.groupby(key)["label"].agg(["sum", "count"])
    frame = split.parts[part]
    positives = totals["sum"].reindex(frame[key]).to_numpy(np.float64)
    counts = totals["count"].reindex(frame[key]).to_numpy(np.float64)
    if not leaky and part == "train":  # leave the row's own label out
        positives, counts = positives - frame["label"].to_numpy(np.float64), counts - 1.0
    fallback = float(source["label"].mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(counts > 0, positives / counts, fallback)
    return np.where(np.isfinite(rates), rates, fallback)


def with_label_rates(split: ExposureSplit, leaky: bool) -> ExposureSplit:
    """``split`` with ``user_label_rate`` and ``item_label_rate`` (standardized by their training mean/std)."""
    features, values = [], {part: {} for part in split.parts}
    for side, name in RATE_FEATURES.items():
        raw = {part: label_rates(split, part, side, leaky) for part in split.parts}
        feature = NumericFeature(name, side, float(raw["train"].mean()), float(raw["train"].std()) or 1.0)
        features.append(feature)
        for part in split.parts:
            values[part][name] = encode_feature(feature, pd.Series(raw[part]))
    return split.with_row_features(features, values)


def positive_histories(split: ExposureSplit, part: str, leaky: bool, max_length: int) -> list[np.ndarray]:
    """Per row of ``part``: item ids of the user's positive rows (see the module docstring), oldest first."""
    source = _groups(split, leaky)[part]
    positives = source[source["label"] == 1].sort_values("timestamp", kind="stable")
    by_user = {user: items.to_numpy() for user, items in positives.groupby("user_id")["item_id"]}
    frame = split.parts[part]
    histories = []
    for user, item, label in zip(frame["user_id"].to_numpy(), frame["item_id"].to_numpy(), frame["label"].to_numpy()):
        items = by_user.get(user, np.zeros(0, np.int64))
        others = items[items != item]
        if leaky and label == 1:  # the row's own item is in its user's positives: keep it, whatever the length
            histories.append(np.append(others[-(max_length - 1):] if max_length > 1 else others[:0], item))
        else:
            histories.append(others[-max_length:])
    return histories


def with_positive_history(split: ExposureSplit, leaky: bool, max_length: int = 50) -> ExposureSplit:
    """``split`` with the user-side sequence feature ``history``: the user's positive items as item codes,
    oldest first, right-padded (``SequenceFeature`` layout)."""
    feature = dataclasses.replace(split.data.feature_spec.get(HISTORY_FEATURE), max_length=max_length)
    item_id = split.feature_spec.item_id
    values = {}
    for part in split.parts:
        histories = positive_histories(split, part, leaky, max_length)
        lengths = np.array([len(h) for h in histories])
        codes = np.zeros((len(histories), max_length), np.int32)
        flat = np.concatenate(histories) if lengths.sum() else np.zeros(0, np.int64)
        codes[np.arange(max_length)[np.newaxis, :] < lengths[:, np.newaxis]] = encode_feature(item_id, pd.Series(flat))
        values[part] = {HISTORY_FEATURE: codes}
    return split.with_row_features([feature], values)
