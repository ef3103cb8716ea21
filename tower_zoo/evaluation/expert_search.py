"""Retrieval with K vectors per user: one search per vector, shortlists merged, re-scored exactly.

For a model whose score is a sum over K blocks, score(u, v) = Σ_k <e_k(u), b_k(v)> (MVKE: e_k the user's
expert vectors, b_k(v) = Σ_t w_t g_{t,k}(v) v_t the item's gated vector for expert k), the exact top-k can
be found with one index over the concatenated K · D vectors. ``per_expert_top_k`` is the alternative that
keeps D-dimensional indexes: search each block's index with that block's user vector for ``shortlist``
items, merge the K shortlists and re-score every merged item exactly. It returns the exact top-k of the
merged shortlist, which misses an item only when it is in no single block's top ``shortlist``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tower_zoo.evaluation.index import ExactIndex


def per_expert_top_k(user_blocks: np.ndarray, item_blocks: np.ndarray, candidate_ids: np.ndarray, k: int,
                     shortlist: int, exclude: Sequence[np.ndarray] | None = None,
                     index_factory: Callable[[np.ndarray, np.ndarray], object] = ExactIndex) -> np.ndarray:
    """user_blocks [Q, K, D], item_blocks [N, K, D] -> int64 [Q, k] ids (-1 padded), best first.

    ``index_factory(vectors [N, D], ids [N])`` builds each block's index (anything with ``search(queries, k,
    exclude) -> (ids, scores)``), e.g. ``ExactIndex`` or a ScaNN index."""
    user_blocks, item_blocks = np.asarray(user_blocks, np.float32), np.asarray(item_blocks, np.float32)
    if user_blocks.ndim != 3 or item_blocks.ndim != 3 or user_blocks.shape[1:] != item_blocks.shape[1:]:
        raise ValueError(f"user_blocks [Q, K, D] and item_blocks [N, K, D] must share K and D, got "
                         f"{user_blocks.shape} and {item_blocks.shape}")
    candidate_ids = np.asarray(candidate_ids, np.int64)
    row_of = {int(i): r for r, i in enumerate(candidate_ids)}
    shortlists = [index_factory(item_blocks[:, b], candidate_ids).search(user_blocks[:, b], shortlist, exclude)[0]
                  for b in range(item_blocks.shape[1])]
    merged = np.concatenate(shortlists, axis=1)
    out = np.full((len(user_blocks), k), -1, np.int64)
    flat_items = item_blocks.reshape(len(item_blocks), -1)
    for q in range(len(user_blocks)):
        ids = np.unique(merged[q][merged[q] >= 0])
        if not len(ids):
            continue
        rows = np.array([row_of[int(i)] for i in ids])
        scores = flat_items[rows] @ user_blocks[q].reshape(-1)
        order = np.lexsort((rows, -scores))[:k]
        out[q, :len(order)] = ids[order]
    return out
