"""Evaluation: top-K indexes (exact, ScaNN), ranking metrics and the retrieval evaluator."""

from tower_zoo.evaluation.index import ExactIndex, ScannConfig, ScannIndex, build_index
from tower_zoo.evaluation.metrics import per_query_metrics, ranking_metrics
from tower_zoo.evaluation.retrieval import RetrievalEvaluator, RetrievalReport

__all__ = ["ExactIndex", "ScannConfig", "ScannIndex", "build_index", "per_query_metrics", "ranking_metrics",
           "RetrievalEvaluator", "RetrievalReport"]
