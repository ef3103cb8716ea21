"""CandidateScorer: the Python face of a pre-ranking export's ``scorer/`` SavedModel.

* ``user_state(raw user rows) -> {state name: array [B, ...]}``: computed once per request;
* ``score_state(state, candidate_ids) -> float32 [B, C]``: per candidate, from the cached item states;
* ``score(raw user rows, candidate_ids) -> float32 [B, C]``: both in one call.

``candidate_ids`` are lists of raw item ids per user (ragged lists are padded here; padded slots score -inf).
Requests are checked first (``requests.request_arrays``), so a mistake is one ValueError naming the feature.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from tower_zoo.serving.preranking_export import CANDIDATES
from tower_zoo.serving.requests import call_signature, id_matrix, request_arrays


def signature_inputs(function) -> dict[str, tf.TensorSpec]:
    """{input name: TensorSpec} of a loaded signature function."""
    return dict(function.structured_input_signature[1])


class CandidateScorer:
    """See the module docstring. ``padding``: the sentinel of each raw sequence feature."""

    def __init__(self, saved_model, padding: Mapping[str, Any], padding_id: int, item_ids: np.ndarray,
                 users: pd.DataFrame | None = None):
        self.saved_model = saved_model
        self._state = saved_model.signatures["user_state"]
        self._score_state = saved_model.signatures["score_candidates"]
        self._serve = saved_model.signatures["serving_default"]
        self.padding, self.padding_id = dict(padding), padding_id
        self.item_ids, self.users = item_ids, users
        self.raw_inputs = {n: s for n, s in signature_inputs(self._state).items()}

    def _raw(self, rows: Any) -> dict[str, np.ndarray]:
        return request_arrays(self.raw_inputs, rows, self.padding)

    def _candidates(self, candidate_ids: Sequence[Sequence[int]], rows: int) -> dict[str, np.ndarray]:
        matrix = id_matrix(candidate_ids, self.padding_id, CANDIDATES)
        if len(matrix) != rows:
            raise ValueError(f"{CANDIDATES} has {len(matrix)} rows for {rows} users")
        return {CANDIDATES: matrix}

    def user_state(self, rows: Any) -> dict[str, np.ndarray]:
        return call_signature(self._state, self._raw(rows))

    def score_state(self, state: Mapping[str, np.ndarray], candidate_ids) -> np.ndarray:
        batch = len(next(iter(state.values())))
        inputs = {**state, **self._candidates(candidate_ids, batch)}
        return call_signature(self._score_state, inputs)["scores"]

    def score(self, rows: Any, candidate_ids) -> np.ndarray:
        raw = self._raw(rows)
        batch = len(next(iter(raw.values())))
        return call_signature(self._serve, {**raw, **self._candidates(candidate_ids, batch)})["scores"]
