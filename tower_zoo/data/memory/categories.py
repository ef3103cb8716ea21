"""Item categories and category-tagged long histories (LongRetriever-style retrieval, ``tower_zoo.models.long_retriever``).

* ``rarest_labels``: one category per item from a multi-label column (e.g. MovieLens genres): the item's
  least frequent label over the corpus (its most specific one; ties by the label's order in the item's
  list), so categories are mutually exclusive as LongRetriever's are.
* ``with_item_categories``: the dataset with an item-side categorical feature ``category`` and a user-side
  sequence ``history_category`` (the category of each history item, aligned with ``history``, same length).
* a split of such data fills ``history_category`` beside ``history`` (``tower_zoo.data.memory.splits``);
  ``long_history_examples`` / ``long_history_queries`` return a split's examples and test queries,
  optionally with the history truncated to its last ``keep`` items (the comparison point: the same model on
  a short history), stored as int16 when the vocabularies fit (halving the memory of a 500-long history;
  models cast them).
* ``categorized``: the dataset with categories from its ``genres`` (rarest genre) or its ``category``
  column, unchanged if it already has them (what ``long_retriever.prepare_data`` applies).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from tower_zoo.data.memory.dataset import (CATEGORY_FEATURE, HISTORY_CATEGORY_FEATURE, InteractionData,
                                          category_of_codes)
from tower_zoo.data.memory.splits import RetrievalSplit
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import PAD_INDEX, FeatureSpec, SequenceFeature, encode_feature, infer_categorical



def rarest_labels(label_sets: Sequence[Sequence[str]]) -> list[str]:
    """One label per item: the one with the fewest items over the corpus (ties: the earlier in its list)."""
    counts = Counter(label for labels in label_sets for label in labels)
    out = []
    for row, labels in enumerate(label_sets):
        if not len(labels):
            raise ValueError(f"item row {row} has no label to take a category from")
        out.append(min(labels, key=lambda label: counts[label]))
    return out


def with_item_categories(data: InteractionData, categories: Sequence[str]) -> InteractionData:
    """``data`` with item feature ``category`` (one per item, aligned with ``data.items``) and user sequence
    ``history_category`` (as long as ``history``). A ``category`` column already there is replaced."""
    if HISTORY_FEATURE not in data.feature_spec.names:
        raise ValueError(f"{data.name} has no {HISTORY_FEATURE!r} feature (history_length=0?)")
    if len(categories) != len(data.items):
        raise ValueError(f"need one category per item: {len(data.items)} items, got {len(categories)}")
    items = data.items.copy()
    items[CATEGORY_FEATURE] = [str(c) for c in categories]
    category = infer_categorical(CATEGORY_FEATURE, "item", items[CATEGORY_FEATURE])
    history = data.feature_spec.get(HISTORY_FEATURE)
    kept = [f for f in data.feature_spec.features if f.name not in (CATEGORY_FEATURE, HISTORY_CATEGORY_FEATURE)]
    spec = FeatureSpec(tuple(kept) + (category, SequenceFeature(HISTORY_CATEGORY_FEATURE, "user", category.vocabulary,
                                                                 history.max_length)))
    return InteractionData(data.name, data.ratings, data.users, items, spec, data.source)


def categorized(data: InteractionData) -> InteractionData:
    """``data`` with item categories: the rarest of its ``genres``, else its ``category`` column; ``data``
    itself when its spec already has ``history_category``."""
    if HISTORY_CATEGORY_FEATURE in data.feature_spec.names:
        return data
    if "genres" in data.items.columns:
        return with_item_categories(data, rarest_labels(list(data.items["genres"])))
    if CATEGORY_FEATURE in data.items.columns:
        return with_item_categories(data, data.items[CATEGORY_FEATURE].astype(str).tolist())
    raise ValueError(f"{data.name}: no 'genres' or 'category' item column to take item categories from")


def truncate_history(history: np.ndarray, keep: int) -> np.ndarray:
    """[R, L] left-aligned, right-padded histories (oldest first) -> [R, keep]: each row's last ``keep`` items."""
    history = np.asarray(history)
    lengths = (history != PAD_INDEX).sum(axis=1)
    starts = np.maximum(lengths - keep, 0)
    columns = starts[:, np.newaxis] + np.arange(keep)[np.newaxis, :]
    out = np.take_along_axis(history, np.minimum(columns, history.shape[1] - 1), axis=1)
    return np.where(columns < lengths[:, np.newaxis], out, PAD_INDEX).astype(history.dtype)


def _compact(values: np.ndarray) -> np.ndarray:
    return values.astype(np.int16) if values.size and values.max() < np.iinfo(np.int16).max else values


def _with_categories(features: dict, table: np.ndarray, keep: int | None) -> dict:
    if keep is not None:
        features[HISTORY_FEATURE] = truncate_history(features[HISTORY_FEATURE], keep)
        features[HISTORY_CATEGORY_FEATURE] = table[features[HISTORY_FEATURE]]
    for name in (HISTORY_FEATURE, HISTORY_CATEGORY_FEATURE):
        features[name] = _compact(features[name])
    return features


def long_history_examples(split: RetrievalSplit, part: str = "train", keep: int | None = None) -> dict:
    """``split.examples(part)`` with ``history_category``; ``keep``: truncate histories to their last items."""
    return _with_categories(split.examples(part), category_of_codes(split.data), keep)


def long_history_queries(split: RetrievalSplit, part: str = "test", keep: int | None = None):
    """``split.queries(part)`` -> (user features with ``history_category``, targets, exclude)."""
    queries, targets, exclude = split.queries(part)
    return _with_categories(queries, category_of_codes(split.data), keep), targets, exclude
