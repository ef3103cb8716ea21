"""RetrievalEvaluator: rank the full item corpus for every query, exactly and with ScaNN, in chunks.

For each query (a test user) the evaluator embeds the user, searches the top max(ks) items of the
whole corpus by dot product with the user's earlier items excluded, and scores the list against the
held-out items by id (``tower_zoo.evaluation.metrics``). Exact search (``ExactIndex``, blocked over
queries and items) always runs; ScaNN runs beside it, and the report shows what the ANN loses:
``ann_recall@k`` is the mean overlap |ScaNN top-k ∩ exact top-k| / k. Timings: index build seconds
and queries per second of each search (wall time, this machine).

Queries arrive in chunks (``evaluate_chunks``: e.g. ``PreparedDataset.query_chunks``): the item corpus
is embedded and indexed once, each chunk is embedded, searched and scored, and only running sums of
the per-query metrics are kept, so memory is the corpus plus one chunk whatever the number of users.

Models whose user side is several vectors [Q, H, D] with a candidate-dependent score (Poly-encoder):
"exact" scores every item with ``model.similarity``; "scann" re-scores exactly a ScaNN shortlist found
with the mean of each user's vectors.
"""

from __future__ import annotations

import dataclasses
import numbers
import time
from typing import Any, Iterable, Sequence

import numpy as np

from tower_zoo.evaluation.index import ExactIndex, ScannConfig, ScannIndex
from tower_zoo.evaluation.metrics import per_query_metrics

QueryChunk = tuple[dict, Sequence[np.ndarray], Sequence[np.ndarray] | None]  # (user features, targets, exclude)


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
    """Runs ``tower(features_batch, training=False)`` over row batches: float32 [N, D] (or [N, H, D])."""
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


def ann_overlap(found_ids: np.ndarray, exact_ids: np.ndarray, cut: int) -> np.ndarray:
    """Per query, |first ``cut`` of ``found_ids`` ∩ first ``cut`` of ``exact_ids``| / cut, over [Q, ≥cut] id
    lists padded with -1 (padding never counts): the ANN recall@cut of each query. Float [Q]."""
    return np.array([len(np.intersect1d(a[:cut][a[:cut] >= 0], b[:cut][b[:cut] >= 0])) / cut
                     for a, b in zip(found_ids, exact_ids)], dtype=np.float64)


def mean_popularity(retrieved_ids: np.ndarray, candidate_ids: np.ndarray, popularity: np.ndarray,
                    k: int) -> dict[str, float]:
    """``{"mean_popularity@k": mean popularity of the retrieved top-k ids}`` (padding -1 ignored)."""
    total, count = popularity_sum(retrieved_ids, candidate_ids, popularity, k)
    return {f"mean_popularity@{k}": total / count if count else 0.0}


def popularity_sum(retrieved_ids: np.ndarray, candidate_ids: np.ndarray, popularity: np.ndarray,
                   k: int) -> tuple[float, int]:
    """(sum of the popularity of the retrieved top-k ids, how many there are); padding -1 ignored."""
    popularity = np.asarray(popularity, np.float64)
    if popularity.shape != (len(candidate_ids),):
        raise ValueError(f"item_popularity must have shape ({len(candidate_ids)},), got {popularity.shape}")
    top = retrieved_ids[:, :k]
    order = np.argsort(candidate_ids)
    rows = order[np.clip(np.searchsorted(candidate_ids, top, sorter=order), 0, len(candidate_ids) - 1)]
    valid = top >= 0
    return float(popularity[rows][valid].sum()), int(valid.sum())


class _Totals:
    """Running sums over query chunks of one search method's per-query metrics, popularity and time."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.popularity, self.popular_items, self.seconds = 0.0, 0, 0.0

    def add(self, metrics: dict[str, np.ndarray]) -> None:
        for name, values in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())


def positive_cutoffs(ks: Any) -> tuple[int, ...]:
    """``ks`` (a non-empty list of integers >= 1) sorted and deduplicated; ValueError naming the bad one."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(f"RetrievalEvaluator: ks must be a list of positive integers, got {ks!r}")
    ks = tuple(ks)
    for k in ks:
        if not isinstance(k, numbers.Integral) or isinstance(k, (bool, np.bool_)) or k < 1:
            raise ValueError(f"RetrievalEvaluator: ks must be positive integers, got {ks!r}: {k!r} is not one")
    if not ks:
        raise ValueError("RetrievalEvaluator: ks must name at least one cut-off K, got ()")
    return tuple(sorted({int(k) for k in ks}))


class RetrievalEvaluator:
    """Full-corpus retrieval evaluation; see the module docstring."""

    def __init__(self, ks: Sequence[int] = (10, 50, 100), use_scann: bool = True,
                 scann_config: ScannConfig | None = None, batch_size: int = 1024, shortlist_size: int = 200):
        self.ks = positive_cutoffs(ks)
        self.use_scann = use_scann
        self.scann_config = scann_config or ScannConfig()
        self.batch_size, self.shortlist_size = batch_size, shortlist_size

    # ------------------------------------------------------------------ entry points
    def evaluate(self, model, queries: dict[str, np.ndarray], candidates: dict[str, np.ndarray],
                 candidate_ids: np.ndarray, targets: Sequence[np.ndarray],
                 exclude: Sequence[np.ndarray] | None = None,
                 item_popularity: np.ndarray | None = None) -> RetrievalReport:
        """Embeds queries with ``model.user_embedding`` and candidates with ``model.item_embedding``, then
        searches and scores (one chunk). With ``item_popularity`` [N] (e.g. training counts aligned with
        ``candidate_ids``) the report adds ``mean_popularity@k`` for the smallest k."""
        if not queries or len(next(iter(queries.values()))) == 0:
            raise ValueError("queries are empty")
        return self.evaluate_chunks(model, [(queries, targets, exclude)], candidates, candidate_ids, item_popularity)

    def evaluate_chunks(self, model, chunks: Iterable[QueryChunk], candidates: dict[str, np.ndarray],
                        candidate_ids: np.ndarray, item_popularity: np.ndarray | None = None) -> RetrievalReport:
        """Like ``evaluate`` over a stream of (user features, targets, exclude) chunks."""
        started = time.perf_counter()
        item_vectors = embed(model.item_embedding, candidates, self.batch_size)
        embedding_seconds = time.perf_counter() - started

        def vectors():
            nonlocal embedding_seconds
            for queries, targets, exclude in chunks:
                begun = time.perf_counter()
                query_vectors = embed(model.user_embedding, queries, self.batch_size)
                embedding_seconds += time.perf_counter() - begun
                yield query_vectors, targets, exclude

        report = self._run(vectors(), item_vectors, candidate_ids, item_popularity, model)
        report.timings["embedding_seconds"] = embedding_seconds
        return report

    def evaluate_embeddings(self, query_vectors: np.ndarray, item_vectors: np.ndarray, candidate_ids: np.ndarray,
                            targets: Sequence[np.ndarray], exclude: Sequence[np.ndarray] | None = None,
                            item_popularity: np.ndarray | None = None) -> RetrievalReport:
        """Evaluates precomputed vectors: queries [Q, D], items [N, D] with ids [N]."""
        query_vectors, item_vectors = np.asarray(query_vectors), np.asarray(item_vectors)
        if query_vectors.ndim != 2 or item_vectors.ndim != 2 or query_vectors.shape[1] != item_vectors.shape[1]:
            raise ValueError(f"user and item embeddings must be [Q, D] and [N, D] with the same D, got "
                             f"{query_vectors.shape} and {item_vectors.shape}")
        return self._run([(query_vectors, targets, exclude)], item_vectors, candidate_ids, item_popularity)

    # ------------------------------------------------------------------ the work
    def _indexes(self, item_vectors: np.ndarray, candidate_ids: np.ndarray, notes: list[str]) -> dict[str, Any]:
        indexes: dict[str, Any] = {"exact": ExactIndex(item_vectors, candidate_ids)}
        if self.use_scann:
            scann = ScannIndex(item_vectors, candidate_ids, self.scann_config)
            if scann.fallback_reason:
                notes.append(scann.fallback_reason)
            else:
                indexes["scann"] = scann
        return indexes

    def _search(self, method: str, indexes: dict[str, Any], model, query_vectors: np.ndarray,
                item_vectors: np.ndarray, candidate_ids: np.ndarray, exclude) -> np.ndarray:
        """Top max(ks) ids [Q, K] of one chunk by ``method`` (see the module docstring for multi-vector users)."""
        k, index = max(self.ks), indexes[method]
        if query_vectors.ndim == 2:
            return index.search(query_vectors, k, exclude)[0]
        if method == "exact":
            return multi_vector_top_k(model, query_vectors, item_vectors, candidate_ids, k, exclude)
        shortlist, _ = index.search(query_vectors.mean(axis=1), max(self.shortlist_size, k), exclude)
        rows = indexes["exact"].rows_of(shortlist.reshape(-1)).reshape(shortlist.shape)
        return multi_vector_top_k(model, query_vectors, item_vectors, candidate_ids, k, exclude,
                                  rows=np.where(shortlist >= 0, rows, -1))

    def _run(self, chunks, item_vectors, candidate_ids, item_popularity, model=None) -> RetrievalReport:
        candidate_ids = np.asarray(candidate_ids, np.int64)
        notes: list[str] = []
        indexes = self._indexes(item_vectors, candidate_ids, notes)
        totals = {method: _Totals() for method in indexes}
        overlaps = {cut: 0.0 for cut in self.ks}
        num_queries, multi_vector = 0, False
        for query_vectors, targets, exclude in chunks:
            if len(targets) != len(query_vectors):
                raise ValueError(f"targets has {len(targets)} entries for {len(query_vectors)} queries")
            multi_vector = multi_vector or query_vectors.ndim == 3
            if query_vectors.ndim == 2 and query_vectors.shape[1] != item_vectors.shape[1]:
                raise ValueError(f"user and item embeddings must have the same D, got {query_vectors.shape} "
                                 f"and {item_vectors.shape}")
            results = {}
            for method in indexes:
                begun = time.perf_counter()
                results[method] = self._search(method, indexes, model, query_vectors, item_vectors, candidate_ids,
                                               exclude)
                totals[method].seconds += time.perf_counter() - begun
                totals[method].add(per_query_metrics(results[method], targets, self.ks))
                if item_popularity is not None:
                    total, count = popularity_sum(results[method], candidate_ids, item_popularity, self.ks[0])
                    totals[method].popularity += total
                    totals[method].popular_items += count
            if "scann" in results:
                for cut in self.ks:
                    overlaps[cut] += float(ann_overlap(results["scann"], results["exact"], cut).sum())
            num_queries += len(query_vectors)
        if num_queries == 0:
            raise ValueError("queries are empty")
        if "scann" in indexes:
            # The first ScaNN search trains the partitioning (``ScannIndex.build``): a one-off cost reported on
            # its own as scann_build_seconds, so scann_qps is the search rate alone, like exact_qps.
            totals["scann"].seconds -= indexes["scann"].build_seconds
        metrics, timings = {}, {}
        for method, total in totals.items():
            metrics[method] = {name: value / num_queries for name, value in total.sums.items()}
            if item_popularity is not None:
                metrics[method][f"mean_popularity@{self.ks[0]}"] = total.popularity / max(total.popular_items, 1)
            timings[f"{method}_qps"] = num_queries / max(total.seconds, 1e-9)
        if "scann" in indexes:
            timings["scann_build_seconds"] = indexes["scann"].build_seconds
            notes.append(f"scann knobs: {indexes['scann'].knobs}")
            if multi_vector:
                notes.append(f"scann: top {max(self.shortlist_size, max(self.ks))} by the mean user vector, "
                             "re-scored exactly")
        ann_recall = ({f"ann_recall@{cut}": value / num_queries for cut, value in overlaps.items()}
                      if "scann" in indexes else {})
        return RetrievalReport(metrics, ann_recall, timings, num_queries, len(candidate_ids), notes)
