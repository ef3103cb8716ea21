"""Multi-objective labels: several positive signals per interaction (click, like, ...).

Two ways to train on them:

* fused label weight: one model, each positive example weighted by ``sum_k w_k · label_k``
  (``fuse_label_weights``), passed to ``Trainer.fit(sample_weight=...)``;
* one head per objective: ``tower_zoo.models.MultiObjectiveModel`` trains a head per objective
  (each on the examples positive for it) and fuses the heads' scores with weights at scoring time.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def movielens_objectives(ratings: np.ndarray, like_threshold: float = 4.0) -> dict[str, np.ndarray]:
    """Objective labels from explicit ratings: ``click`` (any rating: the user chose to watch)
    and ``like`` (rating >= ``like_threshold``). float32 [R] each."""
    ratings = np.asarray(ratings, np.float64)
    if ratings.size and not np.all(np.isfinite(ratings)):
        raise ValueError("ratings contain NaN/inf")
    return {"click": np.ones(len(ratings), np.float32),
            "like": (ratings >= like_threshold).astype(np.float32)}


def fuse_label_weights(labels: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """``sum_k weights[k] · labels[k]``: float32 [R]. Every weighted objective must have labels."""
    unknown = sorted(set(weights) - set(labels))
    if unknown:
        raise ValueError(f"weights for unknown objective(s) {unknown}; labels are {sorted(labels)}")
    if not weights:
        raise ValueError("no objective weights given")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"objective weights must be >= 0, got {dict(weights)}")
    sizes = {name: len(labels[name]) for name in weights}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"objective labels have different lengths: {sizes}")
    return sum(float(w) * np.asarray(labels[k], np.float32) for k, w in weights.items()).astype(np.float32)


def fuse_objective_scores(logits: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Scoring-time fusion of per-objective logits: Σ_k w_k · sigmoid(logit_k), float64 [R].

    Each objective's model (or head) predicts its own probability; the weights trade them off
    without retraining (e.g. like = 1, love = 0.5)."""
    unknown = sorted(set(weights) - set(logits))
    if unknown:
        raise ValueError(f"weights for unknown objective(s) {unknown}; scores are for {sorted(logits)}")
    if not weights:
        raise ValueError("no objective weights given")
    return sum(float(w) / (1.0 + np.exp(-np.asarray(logits[k], np.float64))) for k, w in weights.items())
