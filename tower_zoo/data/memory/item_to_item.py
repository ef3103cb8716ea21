"""Item-to-item retrieval data ("related items"): a seed item as the query, the next engaged item as the target.

From a ratings dataset: per user, the engaged interactions (rating >= ``engaged_threshold``) in time order;
each consecutive pair (seed = the earlier, target = the next) is an example. The last pair of each user is
the test example, the rest train. The query tower reads the seed item's features (as "user" features named
``seed_<feature>``), the candidate tower the target's; both carry the title's words (``title_words``, a bag of
words over the title's lower-cased tokens seen in >= 2 titles, the year in parentheses dropped) when
``with_titles``: content features learned from scratch, nothing downloaded.

``ItemToItemSplit.queries`` groups the test pairs by seed (targets: every test target of that seed) and
excludes only the seed itself from its results. Relevance predicates (``genre_overlap``) take seed and
candidate ids and say whether a pair is topically related.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from tower_zoo.data.memory.dataset import InteractionData, build_interaction_data
from tower_zoo.data.memory.splits import RetrievalSplit

SEED_PREFIX = "seed_"
TITLE_WORDS = "title_words"
Predicate = Callable[[np.ndarray, np.ndarray], np.ndarray]


def title_words(titles: Sequence[str], min_count: int = 2) -> list[tuple[str, ...]]:
    """Each title's distinct lower-case word tokens (year in parentheses dropped) seen in >= ``min_count``
    titles, in title order; a title with none gets ``("<none>",)``."""
    tokens = [tuple(dict.fromkeys(re.findall(r"[a-z0-9']+", re.sub(r"\(\d{4}\)", " ", t.lower())))) for t in titles]
    counts = Counter(word for words in tokens for word in words)
    return [tuple(w for w in words if counts[w] >= min_count) or ("<none>",) for words in tokens]


def engaged_pairs(ratings: pd.DataFrame, engaged_threshold: float) -> pd.DataFrame:
    """Consecutive engaged (seed, target) pairs per user: columns user, seed, target, rating, timestamp, last
    (True on each user's final pair)."""
    engaged = ratings[ratings["rating"] >= engaged_threshold].sort_values(["user_id", "timestamp"], kind="stable")
    same_user = engaged["user_id"].to_numpy()[1:] == engaged["user_id"].to_numpy()[:-1]
    seeds, targets = engaged.iloc[:-1][same_user], engaged.iloc[1:][same_user]
    pairs = pd.DataFrame({"user": targets["user_id"].to_numpy(), "seed": seeds["item_id"].to_numpy(),
                          "target": targets["item_id"].to_numpy(), "rating": targets["rating"].to_numpy(),
                          "timestamp": targets["timestamp"].to_numpy()})
    pairs["last"] = ~pairs["user"].duplicated(keep="last")
    return pairs


class ItemToItemSplit(RetrievalSplit):
    """A RetrievalSplit whose "users" are seed items; queries exclude only the seed."""

    def queries(self, part: str = "test"):
        frame, history = self._part(part)
        first = ~frame["user_id"].duplicated().to_numpy()
        seeds = frame["user_id"].to_numpy()[first]
        held_out = frame.groupby("user_id", sort=False)["item_id"].apply(np.asarray)
        targets = [np.unique(held_out[s]).astype(np.int64) for s in seeds]
        return self._user_side(seeds, history[first]), targets, [np.array([s], np.int64) for s in seeds]


def item_to_item_split(data: InteractionData, engaged_threshold: float = 4.0, with_titles: bool = True,
                       year_boundaries: Sequence[float] = ()) -> ItemToItemSplit:
    """The item-to-item split of ``data`` (see the module docstring)."""
    pairs = engaged_pairs(data.ratings, engaged_threshold)
    if pairs.empty:
        raise ValueError(f"{data.name}: no two engaged (rating >= {engaged_threshold}) interactions of one user")
    items = data.items[["item_id", "genres", "year"]].copy()
    if with_titles:
        items[TITLE_WORDS] = title_words(data.items["title"].astype(str).tolist())
    seeds = items.rename(columns={c: SEED_PREFIX + c for c in items.columns if c != "item_id"})
    seeds = seeds.rename(columns={"item_id": "user_id"})
    ratings = pd.DataFrame({"user_id": pairs["seed"], "item_id": pairs["target"], "rating": pairs["rating"],
                            "timestamp": pairs["timestamp"]})
    sequences = ("genres", SEED_PREFIX + "genres") + ((TITLE_WORDS, SEED_PREFIX + TITLE_WORDS) if with_titles else ())
    boundaries = tuple(year_boundaries) or (1, 1950, 1970, 1980, 1990, 1995, 1997)
    pair_data = build_interaction_data(f"{data.name}-item-to-item", ratings, seeds, items, data.source,
                                       numeric_boundaries={"year": boundaries, SEED_PREFIX + "year": boundaries},
                                       sequence_columns=sequences, history_length=0, display_columns=())
    frame = pair_data.ratings
    last = pairs["last"].to_numpy()
    empty = np.zeros((0, 0), np.int32)
    return ItemToItemSplit(pair_data, frame[~last].reset_index(drop=True), frame.iloc[:0].copy(),
                           frame[last].reset_index(drop=True), np.zeros((int((~last).sum()), 0), np.int32), empty,
                           np.zeros((int(last.sum()), 0), np.int32))


def genre_overlap(data: InteractionData) -> Predicate:
    """Predicate: the seed and the candidate share at least one genre."""
    genres = dict(zip(data.items["item_id"].to_numpy(), (frozenset(g) for g in data.items["genres"])))

    def related(seed_ids: np.ndarray, candidate_ids: np.ndarray) -> np.ndarray:
        return np.array([bool(genres[int(s)] & genres[int(c)]) if c >= 0 else False
                         for s, c in zip(np.ravel(seed_ids), np.ravel(candidate_ids))]).reshape(np.shape(seed_ids))

    return related
