"""Schema files: YAML and JSON, one clear error per problem naming the file and the key."""

import json

import pytest
import yaml

from prepared_helpers import random_data, schema_dict, write_dataset
from tower_zoo.data.builtin.resolve import SCHEMA_DIR, builtin_schema_names
from tower_zoo.data.schema.dataset_schema import LabelDef, SchemaError, VocabOptions, parse_schema
from tower_zoo.data.schema.loading import load_schema


def _parse(**overrides):
    return parse_schema({**schema_dict(), **overrides}, "my.yaml", "/data")


def test_yaml_and_json_give_the_same_schema(tmp_path):
    schema_file = write_dataset(random_data(), tmp_path / "source", schema_dict())
    (tmp_path / "source" / "schema.yaml").write_text(yaml.safe_dump(schema_dict()))
    from_json, from_yaml = load_schema(schema_file), load_schema(tmp_path / "source" / "schema.yaml")
    assert from_json.features == from_yaml.features and from_json.interactions == from_yaml.interactions
    assert from_json.interactions.path == str(tmp_path / "source" / "ratings.parquet")
    assert from_json.interactions.format == "parquet"


def test_roles_labels_features_and_defaults():
    schema = _parse(columns={"user_id": "u", "item_id": {"column": "i", "max_size": 100, "hash_buckets": 8},
                             "weight": "w"},
                    labels={"click": "clicked", "like": "stars >= 4", "bad": "stars<2"})
    assert schema.columns == {"user_id": "u", "item_id": "i", "timestamp": None, "rating": None, "weight": "w"}
    assert schema.id_vocab["item_id"] == VocabOptions(min_count=0, max_size=100, hash_buckets=8)
    assert schema.id_vocab["user_id"] == VocabOptions(min_count=0)
    assert schema.labels == (LabelDef("click", "clicked"), LabelDef("like", "stars", ">=", 4.0),
                             LabelDef("bad", "stars", "<", 2.0))
    assert schema.interaction_columns() == ["u", "i", "w", "clicked", "stars"]
    tags = next(f for f in schema.features if f.name == "tags")
    assert (tags.kind, tags.side, tags.column, tags.max_length, tags.vocab.min_count) == (
        "multi_valued", "item", "tags", 3, 1)
    assert schema.split.method == "leave_last_out" and schema.history_length == 4


@pytest.mark.parametrize("overrides,message", [
    ({"colums": {}}, "my.yaml: unknown key 'colums' at the top level; valid keys: name, interactions, users"),
    ({"columns": {"user_id": "u"}}, "my.yaml: columns.item_id: is required"),
    ({"columns": {"user_id": "u", "item_id": "i", "time": "t"}},
     "unknown key 'time' in 'columns'; valid keys: user_id, item_id, timestamp, rating, weight"),
    ({"features": {"user": {"age": {"kind": "numerical"}}}},
     "my.yaml: features.user.age.kind: expected one of categorical, numeric, multi_valued, got 'numerical'"),
    ({"features": {"user": {"age": {"kind": "numeric", "max_size": 3}}}},
     "unknown key 'max_size' in 'features.user.age'; valid keys: kind, column, allow_missing, boundaries"),
    ({"features": {"user": {"age": {"kind": "numeric", "boundaries": [3, 2]}}}},
     "features.user.age.boundaries: expected strictly increasing numbers, got [3, 2]"),
    ({"features": {"item": {"tags": {"kind": "multi_valued", "max_length": 0}}}},
     "features.item.tags.max_length: expected an integer >= 1, got 0"),
    ({"features": {"user": {"history": {"kind": "categorical"}}}}, "features.user.history: this name is reserved"),
    ({"labels": {"like": "rating >> 4"}}, "labels.like: expected a 0/1 column name or 'column OP number'"),
    ({"split": {"method": "time", "test_fraction": 0.9, "valid_fraction": 0.2}},
     "my.yaml: split: need 0 < test_fraction and test_fraction + valid_fraction < 1"),
    ({"split": {"method": "leave_last_out", "seed": 3}},
     "unknown key 'seed' in 'split'; valid keys: method, num_test, num_valid"),
    ({"split": {"method": "time"}, "columns": {"user_id": "u", "item_id": "i"}},
     "split.method: a time split needs columns.timestamp"),
    ({"interactions": "data/*.txt"}, "interactions.path: cannot infer the format of '/data/data/*.txt'"),
    ({"users": {"path": "users.parquet"}}, "my.yaml: users: needs 'id'"),
    ({"items": None}, "features.item.category: item features need a 'items' table"),
    ({"history_length": -1}, "history_length: expected an integer >= 0, got -1"),
])
def test_each_problem_is_one_error_naming_file_and_key(overrides, message):
    with pytest.raises(SchemaError) as error:
        _parse(**overrides)
    assert message in str(error.value)


def test_unparsable_files_and_absent_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(SchemaError, match="bad.yaml: cannot parse YAML"):
        load_schema(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(SchemaError, match="list.json: expected a mapping at the top level"):
        load_schema(tmp_path / "list.json")
    with pytest.raises(FileNotFoundError, match="schema file .*absent.yaml' does not exist"):
        load_schema(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", builtin_schema_names())
def test_builtin_schemas_parse(name):
    raw = yaml.safe_load((SCHEMA_DIR / f"{name}.yaml").read_text())
    schema = parse_schema(raw, f"{name}.yaml", "/cache")
    assert schema.name == name and schema.split.method == "leave_last_out"
    assert schema.history_length == (10 if name == "synthetic" else 50)
