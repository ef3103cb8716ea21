"""Related-item retrieval measured on both relevance and engagement.

For each test query (a seed item; ``ItemToItemSplit.queries``): the exact top-K of the corpus (the seed
excluded) by the model's score, then

* ``recall@k`` / ``ndcg@k``: engagement, the held-out next engaged items among the top k;
* ``relevance@k``: the share of the top k that satisfy the relevance predicate with the seed;
* ``mean_popularity@k``: the mean training count of the top k (popularity bias).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tower_zoo.evaluation.index import ExactIndex
from tower_zoo.evaluation.metrics import per_query_metrics
from tower_zoo.evaluation.retrieval import embed, popularity_sum


def relevance_engagement_report(model, split, predicate: Callable[[np.ndarray, np.ndarray], np.ndarray],
                                ks: Sequence[int] = (10, 50), batch_size: int = 1024) -> dict[str, float]:
    """``{"recall@k", "ndcg@k", "relevance@k", "mean_popularity@k"}`` over the test seeds."""
    queries, targets, exclude = split.queries("test")
    items, ids = split.candidates()
    top, _ = ExactIndex(embed(model.item_embedding, items, batch_size), ids).search(
        embed(model.user_embedding, queries, batch_size), max(ks), exclude)
    metrics = per_query_metrics(top, targets, ks)
    seeds = np.array([e[0] for e in exclude])
    related = predicate(np.repeat(seeds[:, np.newaxis], top.shape[1], axis=1), top)
    counts = np.bincount(split.train["item_id"].to_numpy(), minlength=int(ids.max()) + 1)[ids]
    out = {}
    for k in ks:
        out[f"recall@{k}"] = float(metrics[f"recall@{k}"].mean())
        out[f"ndcg@{k}"] = float(metrics[f"ndcg@{k}"].mean())
        out[f"relevance@{k}"] = float(related[:, :k].mean())
        total, count = popularity_sum(top, ids, counts, k)
        out[f"mean_popularity@{k}"] = total / max(count, 1)
    return out
