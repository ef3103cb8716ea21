"""Top-K ranking metrics, matched by item id (never by score, so ties cannot inflate a hit).

For a query with relevant set R and retrieved list r_1..r_K (ids; -1 is padding and never matches):

* recall@k   = |{r_1..r_k} ∩ R| / |R|
* hit_rate@k = 1 if {r_1..r_k} ∩ R is non-empty, else 0
* ndcg@k     = DCG@k / IDCG@k, DCG@k = Σ_{i<=k, r_i ∈ R} 1 / log2(i + 1),
               IDCG@k = Σ_{i <= min(|R|, k)} 1 / log2(i + 1)
* mrr@K      = 1 / (rank of the first relevant id within the top K), 0 if none (K = max of ks)

Each is averaged over queries. A retrieved id repeated in a list counts only at its first position.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def relevance_matrix(retrieved_ids: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """bool [Q, K]: retrieved_ids[q, i] is one of targets[q]."""
    retrieved_ids = np.asarray(retrieved_ids)
    if retrieved_ids.ndim != 2:
        raise ValueError(f"retrieved_ids must be 2-D [queries, K], got shape {retrieved_ids.shape}")
    if len(targets) != len(retrieved_ids):
        raise ValueError(f"targets has {len(targets)} entries for {len(retrieved_ids)} queries")
    hits = np.zeros(retrieved_ids.shape, bool)
    for q, relevant in enumerate(targets):
        relevant = np.asarray(relevant).reshape(-1)
        if relevant.size == 0:
            raise ValueError(f"query {q} has no target items")
        row = retrieved_ids[q]
        first = np.zeros(len(row), bool)
        first[np.unique(row, return_index=True)[1]] = True  # a repeated id counts once, where it first appears
        hits[q] = np.isin(row, relevant) & (row != -1) & first
    return hits


def per_query_metrics(retrieved_ids: np.ndarray, targets: Sequence[np.ndarray],
                      ks: Sequence[int] = (10, 50, 100)) -> dict[str, np.ndarray]:
    """Each metric of the module docstring per query: ``{name: float64 [Q]}``."""
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    hits = relevance_matrix(retrieved_ids, targets)
    num_relevant = np.array([len(np.unique(np.asarray(t).reshape(-1))) for t in targets], np.float64)
    # The ideal DCG depends on k and |R| only, never on how many items were retrieved.
    discounts = 1.0 / np.log2(np.arange(2, max(hits.shape[1], ks[-1]) + 2))
    out = {}
    for k in ks:
        top = hits[:, :k]
        found = top.sum(axis=1)
        ideal = np.array([discounts[:min(int(n), k)].sum() for n in num_relevant])
        out[f"recall@{k}"] = found / num_relevant
        out[f"hit_rate@{k}"] = (found > 0).astype(np.float64)
        out[f"ndcg@{k}"] = (top * discounts[:top.shape[1]]).sum(axis=1) / ideal
    top = hits[:, :ks[-1]]
    first = np.argmax(top, axis=1)
    out[f"mrr@{ks[-1]}"] = np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)
    return out


def ranking_metrics(retrieved_ids: np.ndarray, targets: Sequence[np.ndarray],
                    ks: Sequence[int] = (10, 50, 100)) -> dict[str, float]:
    """``per_query_metrics`` averaged over queries."""
    return {name: float(values.mean()) for name, values in per_query_metrics(retrieved_ids, targets, ks).items()}
