"""Combining an easy-negative model and a hard-negative model (Facebook EBR, KDD 2020, §"model fusion").

* Parallel: score = w_easy · s_easy(u, v) + w_hard · s_hard(u, v). Because both scores are dot
  products, this is one dot product of concatenated vectors, [w_easy · u_e, w_hard · u_h] · [v_e, v_h],
  so the fused item vectors go into one ANN index. ``ParallelFusion`` exposes exactly that.
* Cascade: the easy model retrieves a first-stage top-N, the hard model re-scores those N and keeps
  the top K (``CascadeFusion.retrieve``). Only the easy model's items are indexed; the hard model
  runs on N candidates per request.

Both work on trained models; neither is trained itself. Each side's similarity is its own logit
(similarity / temperature), so models with different temperatures fuse on a common scale.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf


def _scaled(model, vectors: tf.Tensor) -> tf.Tensor:
    """User vectors divided by the model's temperature, so dot products are the model's logits."""
    return vectors / model.temperature.value


class ParallelFusion:
    """Weighted sum of two models' logits as one dot product. Towers: [B, D_easy + D_hard]."""

    model_kind = "retrieval"

    def __init__(self, easy_model, hard_model, easy_weight: float = 1.0, hard_weight: float = 1.0):
        if easy_weight < 0 or hard_weight < 0:
            raise ValueError(f"fusion weights must be >= 0, got {easy_weight}, {hard_weight}")
        self.easy_model, self.hard_model = easy_model, hard_model
        self.easy_weight, self.hard_weight = float(easy_weight), float(hard_weight)

    def user_embedding(self, features, training=False) -> tf.Tensor:
        easy = _scaled(self.easy_model, self.easy_model.user_embedding(features, training=training))
        hard = _scaled(self.hard_model, self.hard_model.user_embedding(features, training=training))
        return tf.concat([self.easy_weight * easy, self.hard_weight * hard], axis=-1)

    def item_embedding(self, features, training=False) -> tf.Tensor:
        return tf.concat([self.easy_model.item_embedding(features, training=training),
                          self.hard_model.item_embedding(features, training=training)], axis=-1)


class CascadeFusion:
    """Easy model retrieves ``first_stage_k``; the hard model re-ranks them."""

    def __init__(self, easy_model, hard_model, first_stage_k: int = 200):
        if first_stage_k < 1:
            raise ValueError(f"first_stage_k must be >= 1, got {first_stage_k}")
        self.easy_model, self.hard_model, self.first_stage_k = easy_model, hard_model, first_stage_k

    def retrieve(self, queries: dict, candidates: dict, candidate_ids: np.ndarray, k: int,
                 exclude: Sequence[np.ndarray] | None = None, batch_size: int = 512) -> np.ndarray:
        """Top-``k`` candidate ids per query after re-ranking: int64 [Q, k] (-1 padded)."""
        if k > self.first_stage_k:
            raise ValueError(f"k={k} exceeds first_stage_k={self.first_stage_k}")
        candidate_ids = np.asarray(candidate_ids, np.int64)
        easy_items = self.easy_model.item_embedding(candidates).numpy()
        hard_items = self.hard_model.item_embedding(candidates).numpy()
        num_queries = len(next(iter(queries.values())))
        out = np.full((num_queries, k), -1, np.int64)
        first_k = min(self.first_stage_k, len(candidate_ids))
        for start in range(0, num_queries, batch_size):
            chunk = {name: values[start:start + batch_size] for name, values in queries.items()}
            easy_scores = self.easy_model.user_embedding(chunk).numpy() @ easy_items.T
            hard_users = self.hard_model.user_embedding(chunk).numpy()
            for row in range(len(easy_scores)):
                if exclude is not None:
                    easy_scores[row, np.isin(candidate_ids, exclude[start + row])] = -np.inf
                first = np.argsort(-easy_scores[row], kind="stable")[:first_k]
                first = first[np.isfinite(easy_scores[row, first])]
                rescored = first[np.argsort(-(hard_items[first] @ hard_users[row]), kind="stable")][:k]
                out[start + row, :len(rescored)] = candidate_ids[rescored]
        return out
