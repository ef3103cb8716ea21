"""RetrievalEvaluator: rank the full item corpus for every query, exactly and with ScaNN.

For each query (a test user) the evaluator embeds the user, searches the top max(ks) items of the
whole corpus by dot product with the user's earlier items excluded, and scores the list against the
held-out items by id (``tower_zoo.evaluation.metrics``). Exact search is always run; ScaNN runs
beside it, and the report shows what the ANN loses: ``ann_recall@k`` is the mean overlap
|ScaNN top-k ∩ exact top-k| / k. Timings: index build seconds and queries per second (search of
all queries, wall time, this machine).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from tower_zoo.evaluation.index import ExactIndex, ScannConfig, ScannIndex
from tower_zoo.evaluation.metrics import ranking_metrics


@dataclasses.dataclass
class RetrievalReport:
    """Metrics per search method ("exact", "scann"), ANN recall, timings and notes."""

    metrics: dict[str, dict[str, float]]
    ann_recall: dict[str, float]
    timings: dict[str, float]
    num_queries: int
    num_candidates: int
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        methods = list(self.metrics)
        names = list(self.metrics[methods[0]])
        lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        lines += [f"| {n} | " + " | ".join(f"{self.metrics[m][n]:.4f}" for m in methods) + " |" for n in names]
        lines.append("")
        lines.append(f"{self.num_queries:,} queries over {self.num_candidates:,} items")
        if self.ann_recall:
            lines.append("ANN recall vs exact: " + ", ".join(f"{k} {v:.4f}" for k, v in self.ann_recall.items()))
        lines.append("timings: " + ", ".join(f"{k} {v:,.3f}" for k, v in self.timings.items()))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def embed(tower, features: dict[str, np.ndarray], batch_size: int) -> np.ndarray:
    """Runs ``tower(features_batch, training=False)`` over row batches: float32 [N, D]."""
    size = len(next(iter(features.values())))
    parts = [np.asarray(tower({k: v[i:i + batch_size] for k, v in features.items()}, training=False))
             for i in range(0, size, batch_size)]
    return np.concatenate(parts).astype(np.float32)


def multi_vector_top_k(model, query_vectors: np.ndarray, item_vectors: np.ndarray, candidate_ids: np.ndarray,
                       k: int, exclude: Sequence[np.ndarray] | None, rows: np.ndarray | None = None,
                       chunk: int = 256) -> np.ndarray:
    """Top-k ids by ``model.similarity`` for multi-vector users [Q, H, D] over items [N, D].

    With ``rows`` [Q, R] (item rows per query, -1 = none), only those candidates are scored (re-scoring
    an ANN shortlist); otherwise every item is (exhaustive). Returns int64 [Q, k], -1 padded.
    """
    import tensorflow as tf

    candidate_ids = np.asarray(candidate_ids, np.int64)
    out = np.full((len(query_vectors), k), -1, np.int64)
    for start in range(0, len(query_vectors), chunk):
        users = tf.constant(query_vectors[start:start + chunk])
        if rows is None:
            scores = model.similarity(users, tf.constant(item_vectors)).numpy()
            shortlist = np.broadcast_to(np.arange(len(candidate_ids)), scores.shape)
        else:
            shortlist = rows[start:start + chunk]
            gathered = tf.constant(item_vectors[np.maximum(shortlist, 0)])  # [C, R, D]
            scores = model.paired_similarity(users, gathered).numpy()
            scores[shortlist < 0] = -np.inf
        for offset in range(len(scores)):
            q = start + offset
            row_scores = scores[offset].copy()
            ids = np.where(shortlist[offset] >= 0, candidate_ids[np.maximum(shortlist[offset], 0)], -1)
            if exclude is not None and len(exclude[q]):
                row_scores[np.isin(ids, exclude[q])] = -np.inf
            order = np.argsort(-row_scores, kind="stable")[:k]
            order = order[np.isfinite(row_scores[order])]
            out[q, :len(order)] = ids[order]
    return out


def mean_popularity(retrieved_ids: np.ndarray, candidate_ids: np.ndarray, popularity: np.ndarray,
                    k: int) -> dict[str, float]:
    """``{"mean_popularity@k": mean popularity of the retrieved top-k ids}`` (padding -1 ignored)."""
    popularity = np.asarray(popularity, np.float64)
    if popularity.shape != (len(candidate_ids),):
        raise ValueError(f"item_popularity must have shape ({len(candidate_ids)},), got {popularity.shape}")
    top = retrieved_ids[:, :k]
    positions = np.searchsorted(candidate_ids, top, sorter=np.argsort(candidate_ids))
    rows = np.argsort(candidate_ids)[np.clip(positions, 0, len(candidate_ids) - 1)]
    values = popularity[rows][top >= 0] if (top >= 0).any() else np.zeros(1)
    return {f"mean_popularity@{k}": float(values.mean())}


class RetrievalEvaluator:
    """Full-corpus retrieval evaluation; see the module docstring."""

    def __init__(self, ks: Sequence[int] = (10, 50, 100), use_scann: bool = True,
                 scann_config: ScannConfig | None = None, batch_size: int = 1024):
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.use_scann = use_scann
        self.scann_config = scann_config or ScannConfig()
        self.batch_size = batch_size

    def evaluate(self, model, queries: dict[str, np.ndarray], candidates: dict[str, np.ndarray],
                 candidate_ids: np.ndarray, targets: Sequence[np.ndarray],
                 exclude: Sequence[np.ndarray] | None = None,
                 item_popularity: np.ndarray | None = None) -> RetrievalReport:
        """Embeds queries with ``model.user_embedding`` and candidates with ``model.item_embedding``,
        then ``evaluate_embeddings``."""
        if not queries or len(next(iter(queries.values()))) == 0:
            raise ValueError("queries are empty")
        started = time.perf_counter()
        query_vectors = embed(model.user_embedding, queries, self.batch_size)
        item_vectors = embed(model.item_embedding, candidates, self.batch_size)
        if query_vectors.ndim == 3:
            return self.evaluate_multi_vector(model, query_vectors, item_vectors, candidate_ids, targets, exclude,
                                              item_popularity)
        report = self.evaluate_embeddings(query_vectors, item_vectors, candidate_ids, targets, exclude,
                                          item_popularity)
        report.timings["embedding_seconds"] = time.perf_counter() - started - sum(
            v for k, v in report.timings.items() if k.endswith("_seconds"))
        return report

    def evaluate_embeddings(self, query_vectors: np.ndarray, item_vectors: np.ndarray, candidate_ids: np.ndarray,
                            targets: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None,
                            item_popularity: np.ndarray | None = None) -> RetrievalReport:
        """Evaluates precomputed vectors: queries [Q, D], items [N, D] with ids [N].

        With ``item_popularity`` [N] (e.g. training interaction counts, aligned with ``candidate_ids``)
        the report adds ``mean_popularity@k`` for the smallest k: the mean popularity of the items
        recommended in the top k, which shows how strongly a model favours hot items.
        """
        query_vectors, item_vectors = np.asarray(query_vectors), np.asarray(item_vectors)
        if query_vectors.ndim != 2 or item_vectors.ndim != 2 or query_vectors.shape[1] != item_vectors.shape[1]:
            raise ValueError(f"user and item embeddings must be [Q, D] and [N, D] with the same D, got "
                             f"{query_vectors.shape} and {item_vectors.shape}")
        if len(targets) != len(query_vectors):
            raise ValueError(f"targets has {len(targets)} entries for {len(query_vectors)} queries")
        k = max(self.ks)
        indexes = {"exact": ExactIndex(item_vectors, candidate_ids)}
        if self.use_scann:
            indexes["scann"] = ScannIndex(item_vectors, candidate_ids, self.scann_config)
        metrics, timings, results, notes = {}, {}, {}, []
        for name, index in indexes.items():
            if index.fallback_reason:
                notes.append(index.fallback_reason)
                continue
            started = time.perf_counter()
            results[name], _ = index.search(query_vectors, k, exclude)
            elapsed = time.perf_counter() - started
            timings[f"{name}_qps"] = len(query_vectors) / max(elapsed, 1e-9)
            if name == "scann":
                timings["scann_build_seconds"] = index.build_seconds
                notes.append(f"scann knobs: {index.knobs}")
            metrics[name] = ranking_metrics(results[name], targets, self.ks)
            if item_popularity is not None:
                metrics[name].update(mean_popularity(results[name], candidate_ids, item_popularity, self.ks[0]))
        ann_recall = {}
        if "scann" in results:
            for cut in self.ks:
                overlap = [len(np.intersect1d(a[:cut][a[:cut] >= 0], b[:cut][b[:cut] >= 0])) / cut
                           for a, b in zip(results["scann"], results["exact"])]
                ann_recall[f"ann_recall@{cut}"] = float(np.mean(overlap))
        return RetrievalReport(metrics, ann_recall, timings, len(query_vectors), len(candidate_ids), notes)

    def evaluate_multi_vector(self, model, query_vectors: np.ndarray, item_vectors: np.ndarray,
                              candidate_ids: np.ndarray, targets: Sequence[np.ndarray],
                              exclude: Sequence[np.ndarray] | None = None, item_popularity: np.ndarray | None = None,
                              shortlist_size: int = 200) -> RetrievalReport:
        """Users with several vectors [Q, H, D] and a candidate-dependent score (Poly-encoder).

        "exact": every item scored with ``model.similarity``. "scann": ScaNN top ``shortlist_size``
        (+ the excluded count) for the mean of each user's vectors, re-scored exactly with the model.
        """
        if len(targets) != len(query_vectors):
            raise ValueError(f"targets has {len(targets)} entries for {len(query_vectors)} queries")
        k, candidate_ids = max(self.ks), np.asarray(candidate_ids, np.int64)
        results, timings, notes = {}, {}, []
        started = time.perf_counter()
        results["exact"] = multi_vector_top_k(model, query_vectors, item_vectors, candidate_ids, k, exclude)
        timings["exact_qps"] = len(query_vectors) / (time.perf_counter() - started)
        if self.use_scann:
            index = ScannIndex(item_vectors, candidate_ids, self.scann_config)
            if index.fallback_reason:
                notes.append(index.fallback_reason)
            else:
                started = time.perf_counter()
                shortlist_ids, _ = index.search(query_vectors.mean(axis=1), max(shortlist_size, k), exclude)
                lookup = {int(i): r for r, i in enumerate(candidate_ids)}
                rows = np.vectorize(lambda i: lookup.get(int(i), -1))(shortlist_ids)
                results["scann"] = multi_vector_top_k(model, query_vectors, item_vectors, candidate_ids, k,
                                                      exclude, rows=rows)
                timings["scann_qps"] = len(query_vectors) / (time.perf_counter() - started)
                timings["scann_build_seconds"] = index.build_seconds
                notes.append(f"scann: top {max(shortlist_size, k)} by the mean user vector, re-scored exactly")
        metrics = {}
        for name, retrieved in results.items():
            metrics[name] = ranking_metrics(retrieved, targets, self.ks)
            if item_popularity is not None:
                metrics[name].update(mean_popularity(retrieved, candidate_ids, item_popularity, self.ks[0]))
        ann_recall = {}
        if "scann" in results:
            for cut in self.ks:
                ann_recall[f"ann_recall@{cut}"] = float(np.mean([
                    len(np.intersect1d(a[:cut][a[:cut] >= 0], b[:cut][b[:cut] >= 0])) / cut
                    for a, b in zip(results["scann"], results["exact"])]))
        return RetrievalReport(metrics, ann_recall, timings, len(query_vectors), len(candidate_ids), notes)
