"""Every registered model is decomposable: its item side never reads a user feature, its user side never an
item feature (DESIGN.md: item vectors are cached offline, user vectors computed once per request).

The check runs over ``tower_zoo.list_models()`` at collection time, so a model registered later is covered
without touching this file. For each side it perturbs the other side's features (one at a time, then all at
once, the history included) and requires the side's outputs — tensors, multi-head tensors or nested dicts —
to stay bit-identical; it also requires the side's own features to move its outputs, so a side that reads
nothing cannot pass. Two toy models registered only inside a test, one whose item tower reads the user id and
one whose user tower reads the item's category, prove the check catches a leak.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo import registry
from tower_zoo.data import build_interaction_data, leave_last_out
from tower_zoo.data.schema.spec import NUM_RESERVED, NumericFeature, SequenceFeature
from tower_zoo.models.dssm import DSSM, DSSMConfig

ROWS = 6


@pytest.fixture(scope="module")
def interaction_data():
    """Data with every feature kind on both sides: ids, categoricals, a bucketized and a plain numeric,
    sequences (the user's history, the item's genres)."""
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"user_id": np.arange(1, 31), "segment": [f"s{i % 4}" for i in range(30)],
                          "age": rng.integers(15, 70, size=30), "activity": rng.normal(size=30)})
    items = pd.DataFrame({"item_id": np.arange(1, 41), "category": [f"c{i % 5}" for i in range(40)],
                          "genres": [(f"g{i % 3}", f"g{(i + 1) % 3}") for i in range(40)],
                          "price": rng.uniform(1, 9, size=40)})
    ratings = pd.DataFrame({"user_id": np.repeat(np.arange(1, 31), 8), "item_id": rng.integers(1, 41, size=240),
                            "rating": rng.integers(1, 6, size=240).astype(float),
                            "timestamp": np.arange(240)})
    data = build_interaction_data("decomposability", ratings, users, items, numeric_boundaries={"age": (25, 45)},
                                  sequence_columns=("genres",), history_length=6)
    return data


def batch_of(data):
    """(spec, the last ROWS training examples) of ``data``."""
    return data.feature_spec, {k: v[-ROWS:] for k, v in leave_last_out(data).examples("train").items()}


@pytest.fixture(scope="module")
def examples(interaction_data):
    return batch_of(interaction_data)


def perturbed(spec, examples, names, seed=1):
    """``examples`` with the features ``names`` replaced by other valid encoded values (every row changes)."""
    rng = np.random.default_rng(seed)
    out = dict(examples)
    for name in names:
        feature, values = spec.get(name), np.asarray(examples[name])
        if isinstance(feature, NumericFeature) and not feature.bucketized:
            out[name] = (values + rng.uniform(0.5, 2.0, size=values.shape)).astype(values.dtype)
        elif isinstance(feature, SequenceFeature):
            codes = rng.integers(NUM_RESERVED, feature.vocab_size, size=values.shape)
            lengths = rng.integers(1, values.shape[1] + 1, size=len(values))
            codes[np.arange(values.shape[1])[np.newaxis, :] >= lengths[:, np.newaxis]] = 0
            out[name] = codes.astype(values.dtype)
        else:  # an id, a category or a bucket: shift every code to another valid one
            span = feature.vocab_size - 1
            shift = rng.integers(1, span, size=values.shape) if span > 1 else 0
            out[name] = ((values - 1 + shift) % span + 1).astype(values.dtype)
    return out


def side_outputs(model, side, features):
    """The side's outputs flattened to a list of NumPy arrays (tensors, [B, H, D] heads, nested dicts)."""
    embed = model.user_embedding if side == "user" else model.item_embedding
    return [np.asarray(t) for t in tf.nest.flatten(embed(features, training=False))]


def identical(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def check_decomposable(model, spec, examples):
    """AssertionError naming the side and the feature when a side reads the other side's features (or
    when a side does not react to its own features at all)."""
    for side, other in (("item", "user"), ("user", "item")):
        before = side_outputs(model, side, examples)
        other_names = [f.name for f in spec.side(other)]
        for names in [[n] for n in other_names] + [other_names]:
            after = side_outputs(model, side, perturbed(spec, examples, names))
            assert identical(before, after), (f"{model.model_name}: the {side} side changed when the {other} "
                                              f"feature(s) {names} changed")
        own = side_outputs(model, side, perturbed(spec, examples, [f.name for f in spec.side(side)]))
        assert not identical(before, own), f"{model.model_name}: the {side} side ignores its own features"


@pytest.mark.parametrize("name", tower_zoo.list_models())
def test_every_registered_model_is_decomposable(name, interaction_data):
    # the data the model trains on (long_retriever derives item categories and category-tagged histories)
    spec, batch = batch_of(registry.prepare_data(name, interaction_data))
    model = tower_zoo.create_model(name, spec)
    model.build_weights()
    check_decomposable(model, spec, batch)


def test_perturbation_changes_every_value(examples):
    spec, batch = examples
    changed = perturbed(spec, batch, spec.names)
    for name in spec.names:
        rows = np.asarray(batch[name]).reshape(ROWS, -1) != np.asarray(changed[name]).reshape(ROWS, -1)
        assert rows.any(axis=1).all(), name


@dataclasses.dataclass
class LeakyConfig(DSSMConfig):
    """Which side leaks: "item" (its tower reads the user id) or "user" (its tower reads the category)."""

    leak: str = "item"


class LeakyToy(DSSM):
    """DSSM with one tower that also reads a feature of the other side: not decomposable."""

    config_class = LeakyConfig

    def item_embedding(self, features, training=False):
        vectors = super().item_embedding(features, training)
        if self.config.leak == "item":
            vectors += 1e-3 * tf.cast(features["user_id"], vectors.dtype)[:, tf.newaxis]
        return vectors

    def user_embedding(self, features, training=False):
        vectors = super().user_embedding(features, training)
        if self.config.leak == "user":
            vectors += 1e-3 * tf.cast(features["category"], vectors.dtype)[:, tf.newaxis]
        return vectors


@pytest.mark.parametrize("leak,message", [("item", r"item side changed when the user feature\(s\) \['user_id'\]"),
                                          ("user", r"user side changed when the item feature\(s\) \['category'\]")])
def test_the_check_catches_a_leaking_model(examples, monkeypatch, leak, message):
    spec, batch = examples
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))   # registered for this test only
    registry.register_model("leaky_toy", LeakyConfig)(LeakyToy)
    assert "leaky_toy" in tower_zoo.list_models()
    model = tower_zoo.create_model("leaky_toy", spec, leak=leak, hidden_units=(8,))
    model.build_weights()
    with pytest.raises(AssertionError, match=message):
        check_decomposable(model, spec, batch)
