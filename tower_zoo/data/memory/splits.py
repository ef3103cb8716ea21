"""Splits of an InteractionData into model-ready arrays.

``leave_last_out``: per user, interactions are ordered by timestamp (ties keep the file order, a
stable sort); the last one is the test target, the one before it optionally the validation target,
the rest is training data. Users with fewer than ``num_test + num_valid + 1`` interactions stay
entirely in training. Evaluation ranks the full item corpus for each test user, excluding the
items that user interacted with before the target (their training and validation items).

Every example carries the user's ``history`` feature: the item ids of that user's previous
interactions in time order (the last ``max_length`` of them), never the target itself or anything
after it. When the spec also has ``history_category`` (``tower_zoo.data.memory.categories``), it holds the
category of each of those items, position by position.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tower_zoo.data.memory.dataset import InteractionData, category_of_codes
from tower_zoo.data.schema.keys import HISTORY_FEATURE
from tower_zoo.data.schema.spec import PAD_INDEX, encode_feature


def sort_by_user_time(ratings: pd.DataFrame) -> pd.DataFrame:
    """Ratings ordered by (user_id, timestamp), ties in original order; adds ``position`` (0-based
    index of the interaction within its user) and ``user_count``."""
    ordered = ratings.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    ordered["position"] = ordered.groupby("user_id").cumcount().to_numpy()
    ordered["user_count"] = ordered.groupby("user_id")["item_id"].transform("size").to_numpy()
    return ordered


def history_matrix(positions: np.ndarray, item_codes: np.ndarray, max_length: int) -> np.ndarray:
    """For rows sorted by (user, time): the codes of each row's previous ``max_length`` rows of the
    same user, oldest first, right-padded with PAD_INDEX.

    Args:
      positions: int [R], index of each row within its user (0 for the user's first row).
      item_codes: int32 [R], encoded item of each row.
    Returns:
      int32 [R, max_length].
    """
    rows = np.arange(len(positions))
    lengths = np.minimum(positions, max_length)
    out = np.full((len(positions), max_length), PAD_INDEX, dtype=np.int32)
    for column in range(max_length):
        valid = column < lengths
        source = rows[valid] - lengths[valid] + column
        out[valid, column] = item_codes[source]
    return out


@dataclasses.dataclass
class RetrievalSplit:
    """Leave-last-out split of one dataset; see the module docstring.

    ``train`` / ``valid`` / ``test`` are interaction frames (canonical rating columns); the
    ``*_history`` arrays are int32 [rows, L] history codes aligned with those frames' rows.
    """

    data: InteractionData
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_history: np.ndarray
    valid_history: np.ndarray
    test_history: np.ndarray

    def __post_init__(self):
        self._user_table = self.data.encode_table("user")
        self._item_table = self.data.encode_table("item")
        self._user_rows = pd.Index(self.data.users["user_id"])
        self._item_rows = pd.Index(self.data.items["item_id"])
        self._category_of_codes = None
        if "history_category" in self.data.feature_spec.names:

            self._category_of_codes = category_of_codes(self.data)

    def _user_side(self, user_ids: np.ndarray, history: np.ndarray) -> dict[str, np.ndarray]:
        rows = self._user_rows.get_indexer(user_ids)
        features = {name: values[rows] for name, values in self._user_table.items()}
        if HISTORY_FEATURE in self.data.feature_spec.names:
            features[HISTORY_FEATURE] = history
        if self._category_of_codes is not None:
            features["history_category"] = self._category_of_codes[history]
        return features

    def _item_side(self, item_ids: np.ndarray) -> dict[str, np.ndarray]:
        rows = self._item_rows.get_indexer(item_ids)
        return {name: values[rows] for name, values in self._item_table.items()}

    def examples(self, part: str = "train") -> dict[str, np.ndarray]:
        """Both sides' encoded features for every interaction of ``part`` ("train", "valid",
        "test"): ``{feature: [R] or [R, L]}``, row-aligned with that frame."""
        frame, history = self._part(part)
        return {**self._user_side(frame["user_id"].to_numpy(), history),
                **self._item_side(frame["item_id"].to_numpy())}

    def _part(self, part: str) -> tuple[pd.DataFrame, np.ndarray]:
        parts = {"train": (self.train, self.train_history), "valid": (self.valid, self.valid_history),
                 "test": (self.test, self.test_history)}
        if part not in parts:
            raise ValueError(f"unknown split part {part!r}; choose from {sorted(parts)}")
        return parts[part]

    def queries(self, part: str = "test") -> tuple[dict[str, np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Retrieval queries for the held-out ``part``, one per user: (user-side features [Q],
        targets, exclude).

        targets[q] holds the user's held-out item ids; exclude[q] the ids the user interacted with
        before them. The query's history is the one at the user's first held-out interaction.
        """
        frame, history = self._part(part)
        if len(frame) == 0:
            raise ValueError(f"split part {part!r} is empty (num_{part}=0?)")
        seen = self.train if part == "valid" else pd.concat([self.train, self.valid])
        seen_by_user = seen.groupby("user_id")["item_id"].unique()
        first_rows = ~frame["user_id"].duplicated().to_numpy()
        users = frame["user_id"].to_numpy()[first_rows]
        held_out = frame.groupby("user_id", sort=False)["item_id"].apply(np.asarray)
        targets = [np.asarray(held_out[u], np.int64) for u in users]
        exclude = [np.asarray(seen_by_user.get(u, np.zeros(0, np.int64)), np.int64) for u in users]
        return self._user_side(users, history[first_rows]), targets, exclude

    def labels(self, part: str = "train", like_threshold: float = 4.0) -> dict[str, np.ndarray]:
        """Objective labels of ``part``'s interactions from their ratings, float32 [R] each:
        ``like`` = rating >= like_threshold, ``love`` = the top rating (5 on MovieLens)."""
        frame, _ = self._part(part)
        ratings = frame["rating"].to_numpy(np.float64)
        top = float(self.data.ratings["rating"].max())
        return {"like": (ratings >= like_threshold).astype(np.float32),
                "love": (ratings >= top).astype(np.float32)}

    def candidates(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The full item corpus: (item-side features [I], item ids [I])."""
        return dict(self._item_table), self.data.items["item_id"].to_numpy(np.int64)


def _ordered_with_history(data: InteractionData) -> tuple[pd.DataFrame, np.ndarray]:
    ordered = sort_by_user_time(data.ratings)
    spec = data.feature_spec
    if HISTORY_FEATURE not in spec.names:
        return ordered, np.zeros((len(ordered), 0), np.int32)
    codes = encode_feature(spec.item_id, ordered["item_id"])
    return ordered, history_matrix(ordered["position"].to_numpy(), codes, spec.get(HISTORY_FEATURE).max_length)


def _split_parts(data: InteractionData, ordered: pd.DataFrame, history: np.ndarray, masks) -> RetrievalSplit:
    columns = ["user_id", "item_id", "rating", "timestamp"]
    parts = {}
    for name, mask in zip(("train", "valid", "test"), masks):
        mask = np.asarray(mask)
        parts[name] = (ordered.loc[mask, columns].reset_index(drop=True), history[mask])
    if len(parts["train"][0]) == 0:
        raise ValueError(f"{data.name}: the split left no training interactions")
    return RetrievalSplit(data, parts["train"][0], parts["valid"][0], parts["test"][0],
                          parts["train"][1], parts["valid"][1], parts["test"][1])


def time_split(data: InteractionData, test_fraction: float = 0.2, valid_fraction: float = 0.0) -> RetrievalSplit:
    """Global split by time, for pre-ranking: every rating is an exposure; the latest
    ``test_fraction`` of all interactions (by timestamp) are the test impressions, the
    ``valid_fraction`` before them validation, the rest training. Histories include every earlier
    interaction of the user (known at serving time), whichever part it is in."""
    if not 0 < test_fraction < 1 or not 0 <= valid_fraction < 1 - test_fraction:
        raise ValueError(f"need 0 < test_fraction < 1 and 0 <= valid_fraction < 1 - test_fraction, "
                         f"got {test_fraction}, {valid_fraction}")
    ordered, history = _ordered_with_history(data)
    times = ordered["timestamp"].to_numpy()
    test_cut = np.quantile(times, 1 - test_fraction)
    valid_cut = np.quantile(times, 1 - test_fraction - valid_fraction)
    is_test = times >= test_cut
    is_valid = (times >= valid_cut) & ~is_test if valid_fraction else np.zeros(len(times), bool)
    return _split_parts(data, ordered, history, (~(is_test | is_valid), is_valid, is_test))


def leave_last_out(data: InteractionData, num_test: int = 1, num_valid: int = 0) -> RetrievalSplit:
    """Splits ``data`` per user by time; see the module docstring."""
    if num_test < 1 or num_valid < 0:
        raise ValueError(f"need num_test >= 1 and num_valid >= 0, got {num_test}, {num_valid}")
    ordered, history = _ordered_with_history(data)
    from_end = ordered["user_count"] - ordered["position"]  # 1 for the user's last interaction
    eligible = ordered["user_count"] > num_test + num_valid
    is_test = eligible & (from_end <= num_test)
    is_valid = eligible & (from_end > num_test) & (from_end <= num_test + num_valid)
    return _split_parts(data, ordered, history, ((~(is_test | is_valid)).to_numpy(), is_valid.to_numpy(),
                                                 is_test.to_numpy()))
