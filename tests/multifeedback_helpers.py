"""Shared checks for the multi-feedback tests: side independence (decomposability) on encoded examples."""

import numpy as np
import tensorflow as tf

from tower_zoo.data.schema.spec import NUM_RESERVED, NumericFeature, SequenceFeature


def shuffled_side(spec, examples, side, seed=0):
    """``examples`` with every feature of ``side`` replaced by other valid codes / values (every row changes)."""
    rng = np.random.default_rng(seed)
    out = dict(examples)
    for feature in spec.side(side):
        values = np.asarray(examples[feature.name])
        if isinstance(feature, NumericFeature) and not feature.bucketized:
            out[feature.name] = (values + rng.uniform(0.5, 2.0, size=values.shape)).astype(values.dtype)
        elif isinstance(feature, SequenceFeature):
            codes = rng.integers(NUM_RESERVED, feature.vocab_size, size=values.shape)
            codes[:, values.shape[1] // 2:] = 0
            out[feature.name] = codes.astype(values.dtype)
        else:
            span = feature.vocab_size - 1
            out[feature.name] = ((values - 1 + rng.integers(1, max(span, 2), size=values.shape)) % span + 1
                                 ).astype(values.dtype)
    return out


def assert_decomposable(model, spec, examples):
    """The item side is bit-identical when every user feature changes, and the other way round; each side
    moves with its own features."""
    for side, other, embed in (("item", "user", model.item_embedding), ("user", "item", model.user_embedding)):
        before = [np.asarray(t) for t in tf.nest.flatten(embed(examples))]
        after = [np.asarray(t) for t in tf.nest.flatten(embed(shuffled_side(spec, examples, other)))]
        assert all(np.array_equal(a, b) for a, b in zip(before, after)), f"{side} side read a {other} feature"
        own = [np.asarray(t) for t in tf.nest.flatten(embed(shuffled_side(spec, examples, side)))]
        assert not all(np.array_equal(a, b) for a, b in zip(before, own)), f"{side} side ignores its own features"
