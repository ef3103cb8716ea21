"""Which part (train / valid / test) each interaction belongs to, computed bucket by bucket.

The three methods of a schema's ``split`` give the same parts as ``tower_zoo.data.memory.splits``:

* ``leave_last_out``: per user by time, the last ``num_test`` interactions are test, the
  ``num_valid`` before them valid; users with at most ``num_test + num_valid`` stay in training.
* ``time``: a global cut: interactions at or after the ``1 - test_fraction`` quantile of all
  timestamps (NumPy's linear interpolation, as ``np.quantile``) are test, those at or after the
  ``1 - test_fraction - valid_fraction`` quantile valid. ``streamed_quantile`` finds the exact
  quantile of a column too large for memory by refining a histogram, one pass per step.
* ``random``: each interaction independently, from a stateless hash of (seed, its row number in
  the files), so the assignment does not depend on how the data is partitioned.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
PART_NAMES = ("train", "valid", "test")
HISTOGRAM_BINS = 1 << 16


def leave_last_out_parts(position: np.ndarray, user_count: np.ndarray, num_test: int, num_valid: int) -> np.ndarray:
    """int8 [R] part codes from each row's 0-based position within its user and the user's row count."""
    rows_after = user_count - position  # 1 for the user's last interaction
    eligible = user_count > num_test + num_valid
    parts = np.full(len(position), TRAIN, np.int8)
    parts[eligible & (rows_after <= num_test + num_valid)] = VALID
    parts[eligible & (rows_after <= num_test)] = TEST
    return parts


def time_parts(times: np.ndarray, test_cut: float, valid_cut: float | None) -> np.ndarray:
    """int8 [R]: TEST at or after ``test_cut``, VALID at or after ``valid_cut`` (if any), else TRAIN."""
    parts = np.full(len(times), TRAIN, np.int8)
    if valid_cut is not None:
        parts[times >= valid_cut] = VALID
    parts[times >= test_cut] = TEST
    return parts


def uniform_from_rows(rows: np.ndarray, seed: int, stream: int = 0) -> np.ndarray:
    """float64 [R] in [0, 1): a stateless hash (splitmix64) of (seed, stream, row)."""
    with np.errstate(over="ignore"):
        x = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9) % (1 << 64))
        x = mix64(x)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def mix64(x: np.ndarray) -> np.ndarray:
    """uint64 [N]: the splitmix64 finalizer, a bijection that spreads nearby integers apart."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def random_parts(rows: np.ndarray, seed: int, test_fraction: float, valid_fraction: float) -> np.ndarray:
    """int8 [R]: TEST with probability ``test_fraction``, VALID with ``valid_fraction``, by file row."""
    draws = uniform_from_rows(rows, seed)
    parts = np.full(len(rows), TRAIN, np.int8)
    parts[draws < test_fraction + valid_fraction] = VALID
    parts[draws < test_fraction] = TEST
    return parts


# ============================================================================= streamed quantile
def _order_statistic(batches: Callable[[], Iterable[np.ndarray]], rank: int, low: int, high: int) -> int:
    """The ``rank``-th smallest (0-based) of the int64 values ``batches()`` yields, all in [low, high]."""
    while low < high:
        width = -(-(high - low + 1) // HISTOGRAM_BINS)  # ceil
        counts = np.zeros(HISTOGRAM_BINS, np.int64)
        below = 0
        for values in batches():
            below += int((values < low).sum())
            inside = values[(values >= low) & (values <= high)]
            counts += np.bincount((inside - low) // width, minlength=HISTOGRAM_BINS)[:HISTOGRAM_BINS]
        cumulative = below + np.cumsum(counts)
        bin_index = int(np.searchsorted(cumulative, rank, side="right"))
        low, high = low + bin_index * width, min(high, low + (bin_index + 1) * width - 1)
    return low


def streamed_quantile(batches: Callable[[], Iterable[np.ndarray]], count: int, low: int, high: int,
                      q: float) -> float:
    """``np.quantile(all values, q)`` (linear interpolation) of ``count`` int64 values in [low, high]
    that ``batches()`` yields afresh on each call; memory O(HISTOGRAM_BINS), about
    ceil(log2(high - low + 1) / 16) passes per order statistic."""
    virtual = q * (count - 1)
    below = int(np.floor(virtual))
    fraction = virtual - below
    first = _order_statistic(batches, below, low, high)
    second = _order_statistic(batches, below + 1, low, high) if below + 1 < count and fraction > 0 else first
    return float(np.quantile(np.array([first, second], dtype=np.int64), fraction))
