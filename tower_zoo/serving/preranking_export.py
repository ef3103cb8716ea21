"""Candidate scoring for any model, on the base interface only: the user state once per request, the item
side cached offline, a cheap score per candidate.

* The user state is whatever ``model.user_embedding`` returns (a tensor, multi-head tensors, or a dict of
  tensors: history, mask, an attended codebook, ...), flattened to named tensors ``state`` or
  ``state_<path>`` (``state_names``).
* The item cache is ``model.item_embedding`` of the whole corpus, computed offline in chunks
  (``item_cache``): ``{name: [N, ...]}`` per flattened item-state tensor, beside the raw item ids.
* The scores of user b's candidates are ``model.candidate_list_logits(user state, cached item states gathered
  by raw id as [B, C, ...])``: by default the user state tiled to the candidates and ``pair_logits``; a model
  with a large user state (TARQ's attended codebook) reads it without copying.

``CandidateScorerModule`` -> ``scorer/``, one SavedModel, three signatures sharing its weights and cache:

* ``user_state``: raw user features -> ``{state names: [B, ...]}``;
* ``score_candidates``: the state tensors [B, ...] and ``candidate_ids`` int64 [B, C] -> ``{"scores": [B, C]}``;
* ``serving_default``: raw user features and ``candidate_ids`` -> ``{"scores": [B, C]}`` (both steps).

``candidate_ids`` are raw item ids, right-padded with the padding id (its slots score -inf); an id that is not
in the cache is an error naming it, never a made-up score.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.python.util import nest  # flatten_with_joined_string_paths is not in tf.nest

from tower_zoo.serving.raw_features import RawFeatureEncoder, graph_assert
from tower_zoo.serving.retrieval_export import id_rows_table

CANDIDATES = "candidate_ids"


def state_names(structure: Any, prefix: str) -> list[str]:
    """Names of the flattened tensors of ``structure``: ``prefix`` for a lone tensor, else ``prefix_path``
    (``state_history``, ``item_codes``); ValueError if two paths would share a name."""
    paths = [path for path, _ in nest.flatten_with_joined_string_paths(structure, separator="_")]
    names = [prefix if not path else f"{prefix}_{path}" for path in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"the model's {prefix} structure has paths that flatten to the same name: {names}")
    return names


def flat_state(structure: Any, prefix: str) -> dict[str, tf.Tensor]:
    return dict(zip(state_names(structure, prefix), tf.nest.flatten(structure)))


def item_cache(model, item_features: Mapping[str, np.ndarray], chunk: int = 4096) -> dict[str, np.ndarray]:
    """``model.item_embedding`` of every item, flattened: {``item`` or ``item_<path>``: [N, ...]}."""
    size = len(next(iter(item_features.values())))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, size, chunk):
        state = model.item_embedding({k: v[start:start + chunk] for k, v in item_features.items()})
        for name, tensor in flat_state(state, "item").items():
            parts.setdefault(name, []).append(tensor.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


class CandidateScorerModule(tf.Module):
    """Raw user features and candidate item ids -> scores (see the module docstring).

    ``cache``: ``item_cache(model, ...)`` arrays aligned with ``item_ids``.
    """

    def __init__(self, model, encoder: RawFeatureEncoder, cache: Mapping[str, np.ndarray], item_ids: np.ndarray,
                 asset_dir: str, padding_id: int = -1):
        super().__init__(name="candidate_scorer")
        self.model, self.encoder, self.padding_id = model, encoder, padding_id
        probe = model.user_embedding(model.dummy_features(1))
        self.user_structure = tf.nest.map_structure(lambda t: None, probe)
        self.item_structure = tf.nest.map_structure(lambda t: None, model.item_embedding(model.dummy_features(1)))
        self.state_specs = {name: tf.TensorSpec([None, *t.shape[1:]], t.dtype, name=name)
                            for name, t in flat_state(probe, "state").items()}
        item_names = state_names(self.item_structure, "item")
        self.cache = [tf.Variable(cache[name], trainable=False, name=name) for name in item_names]
        self.item_rows = id_rows_table(item_ids, asset_dir, "item_ids")
        candidates = {CANDIDATES: tf.TensorSpec([None, None], tf.int64, name=CANDIDATES)}
        self.user_state = tf.function(self._user_state).get_concrete_function(**encoder.signature)
        self.score_candidates = tf.function(self._score_candidates).get_concrete_function(
            **self.state_specs, **candidates)
        self.serve = tf.function(self._serve).get_concrete_function(**encoder.signature, **candidates)

    def _user_state(self, **raw):
        return flat_state(self.model.user_embedding(self.encoder.encode(raw)), "state")

    def _scores(self, state: Mapping[str, tf.Tensor], candidate_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        candidate_ids = tf.ensure_shape(candidate_ids, [None, None], name=CANDIDATES)
        batch = tf.shape(next(iter(state.values())))[0]
        graph_assert(tf.equal(tf.shape(candidate_ids)[0], batch), f"{CANDIDATES} has a different number of rows than "
                "the user features:", tf.shape(candidate_ids)[0], batch)
        rows = self.item_rows.lookup(candidate_ids)
        padding = tf.equal(candidate_ids, self.padding_id)
        unknown = tf.logical_and(rows < 0, tf.logical_not(padding))
        graph_assert(tf.logical_not(tf.reduce_any(unknown)), "candidate item ids not in the item cache of this export "
                "(first few):", tf.boolean_mask(candidate_ids, unknown))
        users = tf.nest.pack_sequence_as(self.user_structure, [state[name] for name in self.state_specs])
        items = tf.nest.pack_sequence_as(self.item_structure,
                                         [tf.gather(v, tf.maximum(rows, 0)) for v in self.cache])  # [B, C, ...]
        scores = self.model.candidate_list_logits(users, items)
        return {"scores": tf.where(padding, tf.constant(-np.inf, scores.dtype), scores)}

    def _score_candidates(self, candidate_ids, **state):
        checked = {name: tf.ensure_shape(state[name], spec.shape, name=spec.name)
                   for name, spec in self.state_specs.items()}
        return self._scores(checked, candidate_ids)

    def _serve(self, candidate_ids, **raw):
        return self._scores(self._user_state(**raw), candidate_ids)

    def signatures(self) -> dict:
        return {"serving_default": self.serve, "user_state": self.user_state,
                "score_candidates": self.score_candidates}
