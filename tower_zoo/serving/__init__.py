"""Serving: export a retrieval model (user tower SavedModel, item vectors, ScaNN index) and load it back."""

from tower_zoo.serving.export import Retriever, export, load

__all__ = ["Retriever", "export", "load"]
