"""Values are never silently misread: wrong types or non-finite numbers in model configs, float or huge
ids, and encoded arrays that do not fit the feature spec are each one error naming the field and value."""

import re

import numpy as np
import pandas as pd
import pytest

import tower_zoo
from tower_zoo.data import build_interaction_data, synthetic_interactions
from tower_zoo.data.schema.spec import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature

DATA = synthetic_interactions(num_users=20, num_items=12, interactions_per_user=4)


@pytest.mark.parametrize("model,overrides,message", [
    ("dssm", {"hidden_units": "128"}, "hidden_units must be a list of integers, got '128' (str)"),
    ("dssm", {"hidden_units": (64.5, 32)}, "hidden_units[0] must be an integer, got 64.5 (float)"),
    ("dssm", {"embedding_dim": 32.0}, "embedding_dim must be an integer, got 32.0 (float)"),
    ("dssm", {"embedding_dim": True}, "embedding_dim must be an integer, got True (bool)"),
    ("dssm", {"temperature": "0.1"}, "temperature must be a number, got '0.1' (str)"),
    ("dssm", {"temperature": float("inf")}, "temperature must be finite, got inf"),
    ("dat", {"amm_weight": float("nan")}, "amm_weight must be finite, got nan"),
    ("dssm", {"l2_normalize": "false"}, "l2_normalize must be true or false, got 'false' (str)"),
    ("dssm", {"activation": "sigmoidal"}, "activation 'sigmoidal' is not a Keras activation"),
    ("dssm", {"user_features": "user_id"}, "user_features must be a list of strings, got 'user_id' (str)"),
    ("multi_objective", {"fusion_weights": (1.0, float("nan"))}, "fusion_weights[1] must be finite, got nan"),
    ("rq_target_attention", {"codebook_size": 0}, "codebook_size must be >= 2, got 0"),
    ("rq_target_attention", {"commitment": -1.0}, "commitment must be >= 0, got -1.0"),
    ("hit", {"generator_units": (0,)}, "generator_units must be positive integers (at least one), got (0,)"),
    ("target_attention", {"num_heads": 0}, "num_heads must be >= 1, got 0"),
])
def test_config_values_of_a_wrong_type_or_range_are_one_clear_error(model, overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tower_zoo.create_model(model, DATA.feature_spec, **overrides)


def test_configs_still_accept_json_shapes_and_numpy_scalars():
    model = tower_zoo.create_model("dssm", DATA.feature_spec, hidden_units=[np.int64(16), 8],
                                   temperature=np.float32(0.5), embedding_dim=np.int32(8), dropout=0)
    assert model.config.hidden_units == (16, 8) and type(model.config.hidden_units[0]) is int
    assert type(model.config.temperature) is float and type(model.config.dropout) is float


def _frames(user_ids=(1, 2), rated=(1, 2)):
    ratings = pd.DataFrame({"user_id": list(rated), "item_id": [7, 7], "rating": [4.0, 5.0], "timestamp": [1, 2]})
    return ratings, pd.DataFrame({"user_id": list(user_ids)}), pd.DataFrame({"item_id": [7]})


@pytest.mark.parametrize("user_ids,rated,message", [
    ((1.5, 2.0), (1.5, 2.0), "table 'users' column 'user_id': id 1.5 is not an integer"),
    ((1, 2), (1.0, 2.5), "table 'ratings' column 'user_id': id 2.5 is not an integer"),
    ((1, 2**63), (1, 2**63), "table 'users' column 'user_id': id 9223372036854775808 is outside the int64 range"),
    ((1, "2"), (1, "2"), "table 'users' column 'user_id': id '2' is not an integer"),
])
def test_ids_that_are_not_int64_integers_are_refused_at_load(user_ids, rated, message):
    ratings, users, items = _frames(user_ids, rated)
    with pytest.raises(ValueError, match=re.escape(message)):
        build_interaction_data("t", ratings, users, items, history_length=0)


def test_integral_float_ids_are_read_as_integers():
    ratings, users, items = _frames((1.0, 2.0), (1.0, 2.0))
    data = build_interaction_data("t", ratings, users, items, history_length=0)
    assert data.feature_spec.user_id.vocabulary in ((1, 2), (2, 1)) and data.ratings["user_id"].dtype == np.int64


SPEC = FeatureSpec((CategoricalFeature("user_id", "user", (10, 20)), CategoricalFeature("item_id", "item", (5, 6)),
                    NumericFeature("price", "item"), SequenceFeature("history", "user", (5, 6), max_length=4)))


@pytest.mark.parametrize("column,value,message", [
    ("user_id", 10.5, "feature 'user_id': id 10.5 at row 0 is not an integer"),
    ("user_id", "10", "feature 'user_id': id '10' at row 0 is not an integer"),
    ("user_id", 2**64, "feature 'user_id': id 18446744073709551616 at row 0 is outside the int64 range"),
    ("history", [5, 6.5], "feature 'history': id 6.5 at row 0 is not an integer"),
])
def test_encode_refuses_ids_that_would_be_misread(column, value, message):
    frame = pd.DataFrame({"user_id": [10], "item_id": [5], "price": [1.0], "history": [[5]]})
    frame[column] = pd.Series([value], dtype=object)
    with pytest.raises(ValueError, match=re.escape(message)):
        SPEC.encode(frame)


def _encoded(**changes):
    arrays = {"user_id": np.array([2, 3], np.int32), "item_id": np.array([2, 1], np.int32),
              "price": np.array([0.5, -1.0], np.float32), "history": np.array([[2, 3, 0, 0], [0, 0, 0, 0]], np.int32)}
    return {**arrays, **changes}


@pytest.mark.parametrize("changes,message", [
    ({"history": np.ones((2, 3), np.int32)}, "feature 'history' in test: expected shape [rows, 4], got (2, 3)"),
    ({"user_id": np.array([2, 4], np.int32)}, "feature 'user_id' in test: code 4 at row 1 is outside [0, 4)"),
    ({"user_id": np.array([2, -1], np.int32)}, "feature 'user_id' in test: code -1 at row 1 is outside [0, 4)"),
    ({"item_id": np.array([2.0, 1.5])}, "feature 'item_id' in test: expected integer codes, got float64"),
    ({"price": np.array([1.0, np.nan], np.float32)}, "feature 'price' in test: non-finite value nan at row 1"),
    ({"price": np.array(["a", "b"])}, "feature 'price' in test: expected numbers, got <U1"),
    ({"price": np.ones(3, np.float32)}, "feature 'price' in test: 3 rows where 'user_id' has 2"),
])
def test_check_encoded_names_the_feature_and_the_value(changes, message):
    SPEC.check_encoded(_encoded(), where="test")
    with pytest.raises(ValueError, match=re.escape(message)):
        SPEC.check_encoded(_encoded(**changes), where="test")


def test_serving_checks_encoded_user_features():
    from tower_zoo import serving
    from tower_zoo.data import leave_last_out

    split = leave_last_out(DATA)
    model = tower_zoo.create_model("mf", DATA.feature_spec, embedding_dim=4)
    model.build_weights()
    items, ids = split.candidates()
    retriever = serving.Retriever.from_model(model, items, ids)
    queries, _, _ = split.queries("test")
    assert retriever.search(queries, 3)[0].shape == (len(queries["user_id"]), 3)
    bad = {**queries, "history": queries["history"][:, :3]}
    with pytest.raises(ValueError, match=r"feature 'history' in user features: expected shape \[rows, 10\]"):
        retriever.search(bad, 3)


def test_serving_known_users_refuses_ids_that_would_be_misread():
    from tower_zoo import serving
    from tower_zoo.data import leave_last_out

    split = leave_last_out(DATA)
    model = tower_zoo.create_model("mf", DATA.feature_spec, embedding_dim=4)
    model.build_weights()
    items, ids = split.candidates()
    from tower_zoo.runs import raw_user_rows

    retriever = serving.Retriever.from_model(model, items, ids, users=raw_user_rows(DATA))
    assert retriever.search_users([1], 2)[0].shape == (1, 2)
    for bad, reason in ((1.5, "is not an integer"), ("1", "is not an integer"), (2**64, "is outside the int64 range")):
        with pytest.raises(ValueError, match=re.escape(f"user_id {bad!r} {reason}")):
            retriever.search_users([bad], 2)
