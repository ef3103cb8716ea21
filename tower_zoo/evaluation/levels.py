"""Per-level retrieval evaluation for ordered feedback (rated < liked < loved, or any nested label columns).

For each test user, the held-out items carry a level in 1..K (``levels`` aligned with ``split.<part>``):

* ``recall@k`` of level t: the exact top-k of the full corpus by the model's retrieval score (earlier items
  excluded) against the user's held-out items at level >= t, averaged over the users who have one;
* ``auc`` of level t: over the held-out (user, item) pairs plus ``negatives`` unseen items per user (level 0),
  how well the model's level-t score (``level_scores(user features, item features) -> [P, K]``) separates
  pairs at level >= t from the others.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from tower_zoo.evaluation.index import ExactIndex
from tower_zoo.evaluation.metrics import per_query_metrics
from tower_zoo.evaluation.preranking import auc
from tower_zoo.evaluation.retrieval import embed

LevelScores = Callable[[dict, dict], np.ndarray]


def level_report(model, split, levels: np.ndarray, level_names: Sequence[str], level_scores: LevelScores,
                 ks: Sequence[int] = (10, 50), negatives: int = 20, part: str = "test", seed: int = 0,
                 batch_size: int = 1024) -> dict[str, float]:
    """``{"<level>/recall@k", "<level>/auc"}`` for every level (see the module docstring)."""
    frame, _ = split._part(part)
    levels = np.asarray(levels, np.int64)
    if len(levels) != len(frame) or levels.min(initial=1) < 1 or levels.max(initial=1) > len(level_names):
        raise ValueError(f"levels must hold one value in 1..{len(level_names)} per {part} row ({len(frame)})")
    queries, _, exclude = split.queries(part)
    items, ids = split.candidates()
    users = frame["user_id"].to_numpy()
    order = {u: q for q, u in enumerate(dict.fromkeys(users))}
    top, _ = ExactIndex(embed(model.item_embedding, items, batch_size), ids).search(
        embed(model.user_embedding, queries, batch_size), max(ks), exclude)
    report = {}
    query_of_row = np.array([order[u] for u in users])
    item_rows = {int(i): r for r, i in enumerate(ids)}
    rng = np.random.default_rng(seed)
    pair_queries, pair_items, pair_levels = [query_of_row], [np.array([item_rows[int(i)] for i in frame["item_id"]])], [levels]
    for q, seen in enumerate(exclude):
        banned = set(np.concatenate([seen, frame["item_id"].to_numpy()[query_of_row == q]]).tolist())
        pool = np.array([r for r in rng.choice(len(ids), size=min(len(ids), negatives * 3), replace=False)
                         if int(ids[r]) not in banned][:negatives])
        pair_queries.append(np.full(len(pool), q))
        pair_items.append(pool)
        pair_levels.append(np.zeros(len(pool), np.int64))
    pair_queries, pair_items, pair_levels = (np.concatenate(x) for x in (pair_queries, pair_items, pair_levels))
    scores = np.concatenate([np.asarray(level_scores({k: v[pair_queries[s:s + batch_size]] for k, v in queries.items()},
                                                     {k: v[pair_items[s:s + batch_size]] for k, v in items.items()}))
                             for s in range(0, len(pair_queries), batch_size)])
    for t, name in enumerate(level_names, start=1):
        users_at = sorted({q for q, level in zip(query_of_row, levels) if level >= t})
        targets = [frame["item_id"].to_numpy()[(query_of_row == q) & (levels >= t)] for q in users_at]
        metrics = per_query_metrics(top[users_at], targets, ks)
        for k in ks:
            report[f"{name}/recall@{k}"] = float(metrics[f"recall@{k}"].mean())
        report[f"{name}/auc"] = auc((pair_levels >= t).astype(np.float64), scores[:, t - 1])
        report[f"{name}/users"] = float(len(users_at))
    return report
