"""tf.data pipelines over encoded example arrays."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf


def num_rows(arrays: Mapping[str, np.ndarray]) -> int:
    """The shared first dimension of ``arrays``; ValueError naming the array that disagrees."""
    if not arrays:
        raise ValueError("no feature arrays given")
    sizes = {name: len(values) for name, values in arrays.items()}
    lengths = list(sizes.values())
    first = max(set(lengths), key=lengths.count)  # the length most arrays share
    odd = {name: size for name, size in sizes.items() if size != first}
    if odd:
        raise ValueError(f"feature arrays have different lengths: {odd} where the others have {first}")
    if first == 0:
        raise ValueError("feature arrays are empty (0 rows)")
    return first


def make_dataset(arrays: Mapping[str, np.ndarray], batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """A batched dataset of ``{name: [batch, ...]}`` dicts from row-aligned arrays.

    With ``shuffle``, rows are reshuffled each epoch from ``seed`` (deterministic given the seed).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    size = num_rows(arrays)
    dataset = tf.data.Dataset.from_tensor_slices(dict(arrays))
    if shuffle:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
