"""Per-user sequences of a bucket of interactions sorted by (user, time, file row).

Within such a bucket every user's rows are contiguous and in time order, so positions, histories
and held-out queries are computed with vectorized index arithmetic, the same semantics as
``tower_zoo.data.memory.splits``:

* a row's history is the item codes of the user's previous ``max_length`` rows, oldest first,
  right-padded with PAD_INDEX: never the row's own item or anything after it;
* a held-out part's query for a user has the history at the user's first row of that part, the
  raw ids of the user's rows in that part as targets (in time order), and as exclusions the raw
  ids of the user's rows in the seen parts (training first, then validation; each id once).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tower_zoo.data.schema.spec import PAD_INDEX


@dataclasses.dataclass(frozen=True)
class UserRuns:
    """The users of a sorted bucket: ``starts`` int64 [U] first row of each user, ``counts`` int64 [U]."""

    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, users: pa.Array | np.ndarray) -> "UserRuns":
        """Runs of equal consecutive values of ``users`` (raw ids, sorted so that each user is contiguous)."""
        size = len(users)
        if size == 0:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))
        if isinstance(users, (pa.Array, pa.ChunkedArray)):
            changed = pc.not_equal(users[1:], users[:-1]).to_numpy(zero_copy_only=False)
        else:
            changed = users[1:] != users[:-1]
        starts = np.concatenate([[0], np.flatnonzero(changed) + 1]).astype(np.int64)
        return cls(starts, np.diff(np.append(starts, size)))

    @property
    def num_rows(self) -> int:
        return int(self.counts.sum())

    def user_index(self) -> np.ndarray:
        """int64 [R]: the 0-based user of each row."""
        return np.repeat(np.arange(len(self.starts)), self.counts)

    def position(self) -> np.ndarray:
        """int64 [R]: each row's 0-based index within its user."""
        return np.arange(self.num_rows) - np.repeat(self.starts, self.counts)

    def user_count(self) -> np.ndarray:
        """int64 [R]: the number of rows of each row's user."""
        return np.repeat(self.counts, self.counts)


def history_at(rows: np.ndarray, position: np.ndarray, item_codes: np.ndarray, max_length: int) -> np.ndarray:
    """int32 [len(rows), max_length]: the history of each of ``rows`` (indices into the sorted bucket).

    Args:
      rows: int64 [N] rows to compute histories for.
      position: int64 [R] each bucket row's index within its user.
      item_codes: int32 [R] each bucket row's encoded item.
    """
    lengths = np.minimum(position[rows], max_length)
    columns = np.arange(max_length)
    source = rows[:, None] - lengths[:, None] + columns[None, :]
    valid = columns[None, :] < lengths[:, None]
    return np.where(valid, item_codes[np.where(valid, source, 0)], PAD_INDEX).astype(np.int32)


def _list_array(values: pa.Array, counts: np.ndarray) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


@dataclasses.dataclass(frozen=True)
class Queries:
    """Held-out queries of one bucket: ``rows`` int64 [Q] (each query user's first held-out row),
    ``targets`` and ``exclude`` list arrays [Q] of raw item ids."""

    rows: np.ndarray
    targets: pa.ListArray
    exclude: pa.ListArray


def held_out_queries(runs: UserRuns, parts: np.ndarray, item_ids: pa.Array, held_part: int,
                     seen_parts: tuple[int, ...]) -> Queries:
    """One query per user with rows in ``held_part`` (see the module docstring)."""
    users = runs.user_index()
    held = np.flatnonzero(parts == held_part)
    query_users, first, per_user = np.unique(users[held], return_index=True, return_counts=True)
    targets = _list_array(item_ids.take(pa.array(held)), per_user)
    query_of_user = np.full(len(runs.starts), -1, np.int64)
    query_of_user[query_users] = np.arange(len(query_users))
    seen = np.flatnonzero(np.isin(parts, seen_parts) & (query_of_user[users] >= 0))
    seen = seen[np.lexsort((seen, parts[seen], users[seen]))]  # per user: training rows first, then valid
    seen_ids = item_ids.take(pa.array(seen))
    first_time = ~pd.DataFrame({"user": users[seen], "item": seen_ids.to_numpy(zero_copy_only=False)}).duplicated()
    seen, seen_ids = seen[first_time.to_numpy()], seen_ids.filter(pa.array(first_time.to_numpy()))
    exclude_counts = np.bincount(query_of_user[users[seen]], minlength=len(query_users))
    return Queries(held[first], targets, _list_array(seen_ids, exclude_counts))
