"""Serving: raw-feature SavedModels (lookups inside), exact top-k on stock TensorFlow, ScaNN optional, a
candidate scorer for pre-ranking models, batch recommendation; ``export`` writes them, ``load`` reads them."""

from tower_zoo.serving.export import CandidateScorer, Retriever, default_kind, export, load

__all__ = ["CandidateScorer", "Retriever", "default_kind", "export", "load"]
