"""Multi-context retrieval for models with one user vector per category context (``long_retriever``).

Per user: the ``num_contexts`` categories with the most history items (ties: smaller code; a user whose
history has fewer categories gets fewer contexts, one with no history gets the OOV context); one user vector
per context (``model.multi_context_user_embedding``); one search per context over the items of that
category (a per-category index; here exact); then a merge of the per-context lists into k:

* ``"quota"``: context c gets round(k · share_c) places by largest remainder (share_c = its share of the
  chosen contexts' history counts), each filled with that context's best items; places a context cannot
  fill go to the best remaining items of any context; the list is ordered by score;
* ``"score"``: the best k over all contexts' items by score (each item lives in one category, so it is
  scored once).

Returns the ids and the cost: user vectors per request (= contexts used) and items scored per request.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tower_zoo.data.schema.spec import NUM_RESERVED, OOV_INDEX
from tower_zoo.evaluation.retrieval import embed

MERGES = ("quota", "score")


def top_contexts(history_categories: np.ndarray, num_contexts: int) -> tuple[np.ndarray, np.ndarray]:
    """history category codes int [Q, L] -> (contexts int [Q, C] (-1 = none), counts [Q, C]) by history count."""
    history_categories = np.asarray(history_categories, np.int64)
    vocab = int(max(history_categories.max(initial=0) + 1, NUM_RESERVED + 1))
    counts = np.zeros((len(history_categories), vocab), np.int64)
    rows = np.repeat(np.arange(len(history_categories)), history_categories.shape[1])
    flat = history_categories.reshape(-1)
    real = flat >= NUM_RESERVED
    np.add.at(counts, (rows[real], flat[real]), 1)
    order = np.lexsort((np.arange(vocab)[np.newaxis].repeat(len(counts), 0), -counts), axis=1)[:, :num_contexts]
    chosen = np.take_along_axis(counts, order, axis=1)
    contexts = np.where(chosen > 0, order, -1)
    empty = (contexts < 0).all(axis=1)
    contexts[empty, 0], chosen[empty, 0] = OOV_INDEX, 1
    return contexts, np.where(contexts >= 0, chosen, 0)


def quota(counts: np.ndarray, k: int) -> np.ndarray:
    """Largest-remainder split of k places by ``counts`` [C] (>= 0, some > 0): int [C] summing to k."""
    shares = k * counts / counts.sum()
    places = np.floor(shares).astype(np.int64)
    order = np.argsort(-(shares - places), kind="stable")
    places[order[:k - places.sum()]] += 1
    return places


def merge_lists(ids: np.ndarray, scores: np.ndarray, counts: np.ndarray, k: int, merge: str) -> np.ndarray:
    """Per-context best lists of one user, ids/scores [C, k] (-1 / -inf padded) -> the merged k ids."""
    if merge == "score":
        chosen = np.argsort(-scores.reshape(-1), kind="stable")[:k]
    else:
        places = quota(counts.astype(np.float64), k)
        taken = [c * ids.shape[1] + j for c in range(len(ids)) for j in range(min(places[c], ids.shape[1]))]
        rest = [i for i in np.argsort(-scores.reshape(-1), kind="stable") if i not in set(taken)]
        chosen = np.array(taken + rest[:k - len(taken)], np.int64)
        chosen = chosen[np.argsort(-scores.reshape(-1)[chosen], kind="stable")]
    flat_ids, flat_scores = ids.reshape(-1)[chosen], scores.reshape(-1)[chosen]
    out = np.full(k, -1, np.int64)
    valid = np.isfinite(flat_scores)
    out[:valid.sum()] = flat_ids[valid]
    return out


def multi_context_top_k(model, queries: dict[str, np.ndarray], items: dict[str, np.ndarray], item_ids: np.ndarray,
                        k: int, num_contexts: int, exclude: Sequence[np.ndarray] | None = None,
                        merge: str = "quota", batch_size: int = 256) -> tuple[np.ndarray, dict[str, float]]:
    """Top-k ids [Q, k] by multi-context retrieval (module docstring) and its cost per request."""
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
    if num_contexts < 1 or k < 1:
        raise ValueError(f"need num_contexts >= 1 and k >= 1, got {num_contexts}, {k}")
    item_ids = np.asarray(item_ids, np.int64)
    vectors = embed(model.context_item_embedding, items, 1024)
    item_context = np.asarray(items[model.context_feature], np.int64)
    history = np.asarray(queries[model.config.history_category_feature])
    contexts, counts = top_contexts(history, num_contexts)
    size = len(history)
    out = np.full((size, k), -1, np.int64)
    scored = 0
    for start in range(0, size, batch_size):
        chunk = {name: values[start:start + batch_size] for name, values in queries.items()}
        chunk_contexts = contexts[start:start + batch_size]
        users = np.asarray(model.multi_context_user_embedding(chunk, np.maximum(chunk_contexts, 0)))  # [q, C, D]
        scores = np.einsum("qcd,nd->qcn", users, vectors)
        allowed = (item_context[np.newaxis, np.newaxis, :] == chunk_contexts[:, :, np.newaxis])
        scored += int(allowed.sum())
        scores = np.where(allowed, scores, -np.inf)
        for offset in range(len(scores)):
            q = start + offset
            if exclude is not None and len(exclude[q]):
                scores[offset][:, np.isin(item_ids, exclude[q])] = -np.inf
            best = np.argsort(-scores[offset], axis=1, kind="stable")[:, :k]
            best_scores = np.take_along_axis(scores[offset], best, axis=1)
            out[q] = merge_lists(item_ids[best], best_scores, counts[q], k, merge)
    return out, {"user_vectors_per_request": float((contexts >= 0).sum() / size),
                 "items_scored_per_request": scored / size}
