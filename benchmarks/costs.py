"""Serving cost of a scoring model, shared by the benchmark scripts."""

from __future__ import annotations

import time

import tower_zoo  # noqa: F401,I001  (legacy Keras before TensorFlow)

import numpy as np
import tensorflow as tf


def scoring_times_us(model, one_user: dict, items: dict, repeats: int = 5) -> np.ndarray:
    """Microseconds per candidate of each of ``repeats`` calls scoring one user against a cached item corpus:
    the user state is computed once and the item states are precomputed (what each model caches offline);
    only ``pair_logits`` over every item (a compiled function, traced and warmed up first) is timed."""
    count = len(next(iter(items.values())))
    user_state = tf.nest.map_structure(lambda t: tf.repeat(t, count, axis=0), model.user_embedding(one_user))
    item_state = model.item_embedding(items)
    score = tf.function(model.pair_logits)
    score(user_state, item_state).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        score(user_state, item_state).numpy()
        times.append(time.perf_counter() - started)
    return 1e6 * np.asarray(times) / count


def microseconds_per_candidate(model, one_user: dict, items: dict, repeats: int = 5) -> float:
    """Median of ``scoring_times_us``: µs per candidate of scoring one user against a cached item corpus."""
    return float(np.median(scoring_times_us(model, one_user, items, repeats)))
