"""Serving cost of a scoring model, shared by the benchmark scripts."""

from __future__ import annotations

import time

import tower_zoo  # noqa: F401,I001  (legacy Keras before TensorFlow)

import numpy as np
import tensorflow as tf


def microseconds_per_candidate(model, one_user: dict, items: dict, repeats: int = 5) -> float:
    """µs per candidate of scoring one user against a cached item corpus: the user state is computed once and
    the item states are precomputed (what each model caches offline); only ``pair_logits`` over every item
    (a compiled function, median of ``repeats`` runs) is timed."""
    count = len(next(iter(items.values())))
    user_state = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), model.user_embedding(one_user))
    item_state = model.item_embedding(items)
    score = tf.function(model.pair_logits)
    score(user_state, item_state)  # trace
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        score(user_state, item_state).numpy()
        times.append(time.perf_counter() - started)
    return 1e6 * float(np.median(times)) / count
