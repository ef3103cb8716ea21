"""Hard negatives mined from a previous model's ranking (Facebook EBR, Huang et al. KDD 2020).

For each training example, the previous model ranks the whole item corpus for that example's user
state; items ranked in a middle band (default 101–500) are similar enough to be hard but rarely
true positives (the very top ranks often are unlabeled positives). The example's own positive and
the items in its history are removed before ranking.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.keys import HISTORY_FEATURE


def mine_hard_negatives(model, examples: Mapping[str, np.ndarray], item_table: Mapping[str, np.ndarray],
                        num_negatives: int, rank_range: tuple[int, int] = (101, 500), batch_size: int = 1024,
                        seed: int = 0) -> np.ndarray:
    """Returns int32 [R, num_negatives]: rows of ``item_table`` drawn uniformly from each
    example's rank band ``rank_range`` (1-based, inclusive) under ``model``.

    Raises ValueError if the corpus is too small for the band.
    """
    low, high = rank_range
    if not 1 <= low <= high:
        raise ValueError(f"rank_range must be 1 <= low <= high, got {rank_range}")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    item_id = model.feature_spec.item_id_feature
    table_codes = np.asarray(item_table[item_id], np.int64)
    num_items = len(table_codes)
    history_length = examples[HISTORY_FEATURE].shape[1] if HISTORY_FEATURE in examples else 0
    high = min(high, num_items - 1 - history_length)
    if high < low:
        raise ValueError(f"item corpus of {num_items} items is too small for hard-negative ranks {rank_range}")
    item_features = {f.name: item_table[f.name] for f in model.feature_spec.item_features}
    item_vectors = np.concatenate([
        model.item_embedding({k: v[i:i + batch_size] for k, v in item_features.items()}).numpy()
        for i in range(0, num_items, batch_size)])
    code_to_row = np.full(max(table_codes.max(), model.feature_spec.item_id.vocab_size) + 1, -1, np.int64)
    code_to_row[table_codes] = np.arange(num_items)
    rng = np.random.default_rng(seed)
    user_names = [f.name for f in model.feature_spec.user_features]
    total = len(examples[item_id])
    out = np.empty((total, num_negatives), np.int32)
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        users = model.user_embedding({n: examples[n][start:stop] for n in user_names}).numpy()
        scores = model.similarity(tf.constant(users), tf.constant(item_vectors)).numpy()
        seen = [examples[item_id][start:stop, None]]
        if history_length:
            seen.append(examples[HISTORY_FEATURE][start:stop])
        seen_rows = code_to_row[np.concatenate(seen, axis=1)]
        rows_index = np.repeat(np.arange(stop - start), seen_rows.shape[1])
        valid = seen_rows.reshape(-1) >= 0
        scores[rows_index[valid], seen_rows.reshape(-1)[valid]] = -np.inf
        band = np.argsort(-scores, axis=1, kind="stable")[:, low - 1:high]
        picks = rng.integers(0, band.shape[1], size=(stop - start, num_negatives))
        out[start:stop] = np.take_along_axis(band, picks, axis=1)
    return out
