"""Small random datasets written as Parquet + schema, and decoding of prepared examples, for the tests of
``tower-zoo prepare`` (schema path) against the in-memory splits (``tower_zoo.data.memory.splits``)."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd

from tower_zoo.data.builtin.resolve import write_interaction_data
from tower_zoo.data.memory.dataset import build_interaction_data
from tower_zoo.data.schema.spec import FeatureSpec

HISTORY_LENGTH = 4


def random_data(seed: int = 0, num_users: int = 30, num_items: int = 40, num_rows: int = 600):
    """An InteractionData with timestamp ties, users of 1..many rows, a categorical, a bucketized and a
    multi-valued feature."""
    rng = np.random.default_rng(seed)
    activity = rng.zipf(1.6, size=num_users).clip(1, 60).astype(float)
    users_of_rows = rng.choice(num_users, size=num_rows, p=activity / activity.sum()) + 1
    ratings = pd.DataFrame({"user_id": users_of_rows, "item_id": rng.integers(1, num_items + 1, size=num_rows),
                            "rating": rng.integers(1, 6, size=num_rows).astype(np.float32),
                            "timestamp": rng.integers(0, 40, size=num_rows)})  # many ties
    users = pd.DataFrame({"user_id": np.arange(1, num_users + 1), "age": rng.integers(10, 70, size=num_users),
                          "gender": rng.choice(["F", "M"], size=num_users)})
    items = pd.DataFrame({"item_id": np.arange(1, num_items + 1),
                          "category": rng.choice(["a", "b", "c"], size=num_items),
                          "tags": [tuple(rng.choice(["x", "y", "z", "w"], size=rng.integers(1, 4), replace=False))
                                   for _ in range(num_items)]})
    return build_interaction_data("random", ratings, users, items, numeric_boundaries={"age": (20, 40, 60)},
                                  sequence_columns=("tags",), history_length=HISTORY_LENGTH)


def schema_dict(split: dict | None = None, **overrides) -> dict:
    schema = {"name": "random", "interactions": "ratings.parquet",
              "users": {"path": "users.parquet", "id": "user_id"},
              "items": {"path": "items.parquet", "id": "item_id"},
              "columns": {"user_id": "user_id", "item_id": "item_id", "timestamp": "timestamp", "rating": "rating"},
              "labels": {"like": "rating >= 4"},
              "features": {"user": {"age": {"kind": "numeric", "boundaries": [20, 40, 60]},
                                    "gender": {"kind": "categorical"}},
                           "item": {"category": {"kind": "categorical"},
                                    "tags": {"kind": "multi_valued", "max_length": 3}}},
              "history_length": HISTORY_LENGTH, "split": split or {"method": "leave_last_out", "num_test": 1}}
    schema.update(overrides)
    return schema


def write_dataset(data, directory: pathlib.Path, schema: dict) -> pathlib.Path:
    """Writes ``data`` as Parquet into ``directory`` and ``schema`` beside it; the schema file's path."""
    write_interaction_data(data, directory)
    path = directory / "schema.json"
    path.write_text(json.dumps(schema))
    return path


def decoder(spec: FeatureSpec, name: str):
    """Codes of feature ``name`` -> raw values (PAD -> None, OOV -> "<oov>")."""
    vocabulary = np.asarray(["<pad>", "<oov>", *spec.get(name).vocabulary], dtype=object)
    return lambda codes: vocabulary[np.asarray(codes)]


def example_rows(arrays: dict, spec: FeatureSpec, names=("user_id", "item_id", "history", "gender", "age",
                                                            "category", "tags")) -> list[tuple]:
    """Each example as a tuple of raw values, comparable across vocabularies."""
    columns = []
    for name in names:
        values = np.asarray(arrays[name])
        feature = spec.get(name)
        if getattr(feature, "vocabulary", None) is None:  # bucketized numeric: the bucket index is raw
            columns.append([(int(v),) for v in values])
            continue
        decoded = decoder(spec, name)(values)
        columns.append([tuple(x for x in row if x != "<pad>") if values.ndim == 2 else (row,) for row in decoded])
    return sorted(zip(*columns))


def raw_vocab_sizes(spec: FeatureSpec) -> dict[str, int]:
    return {f.name: f.vocab_size for f in spec.features if hasattr(f, "vocabulary")}

