"""The in-graph raw-feature encoding equals FeatureSpec.encode (random rows: out-of-vocabulary values, hash
buckets, empty and over-long histories, numbers exactly on bucket boundaries), and bad requests are refused
with the feature named, both by the graph and by the Python request check."""

import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tower_zoo  # noqa: F401  (legacy Keras before TensorFlow is used)
from tower_zoo.data.schema.spec import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature
from tower_zoo.serving.raw_features import RawFeatureEncoder, raw_signature
from tower_zoo.serving.requests import call_signature, id_matrix, request_arrays

BOUNDARIES = (-1.5, 0.0, 18.0, 25.0)
SPEC = FeatureSpec((
    CategoricalFeature("user_id", "user", (10, 20, 30, -7)),
    CategoricalFeature("item_id", "item", (1, 2, 3)),
    CategoricalFeature("city", "user", ("paris", "lyon", "new york", " x")),
    CategoricalFeature("device", "user", (5, 6), hash_buckets=7),
    CategoricalFeature("zip", "user", ("941", "021"), hash_buckets=3),
    NumericFeature("age", "user", boundaries=BOUNDARIES),
    NumericFeature("income", "user", mean=3.25, std=1.5),
    SequenceFeature("history", "user", (1, 2, 3, 4, 5, 6), max_length=3),
    SequenceFeature("tags", "user", ("a", "b", "c"), max_length=2, hash_buckets=5),
))
USER = [f.name for f in SPEC.user_features]
PADDING = {"history": -1, "tags": ""}


@pytest.fixture(scope="module")
def encode(tmp_path_factory):
    encoder = RawFeatureEncoder(SPEC, USER, str(tmp_path_factory.mktemp("assets")))
    function = tf.function(encoder.encode).get_concrete_function(encoder.signature)
    signature = encoder.signature

    def run(frame):
        arrays = request_arrays(signature, frame, PADDING)
        return {k: v.numpy() for k, v in function({k: tf.constant(v) for k, v in arrays.items()}).items()}
    return run


ids = st.sampled_from([10, 20, 30, -7, 0, 99, 2 ** 62])
numbers = st.one_of(st.sampled_from(BOUNDARIES + (18.000000000000004, 17.999999999999996, -5e-324, -0.0)),
                    st.floats(-100, 100, allow_nan=False))
rows = st.fixed_dictionaries({
    "user_id": ids, "city": st.sampled_from(["paris", "lyon", "new york", " x", "x", "Paris", ""]),
    "device": st.sampled_from([5, 6, 7, -1, 123456789]), "zip": st.sampled_from(["941", "021", "21", "99999"]),
    "age": numbers, "income": numbers,
    "history": st.lists(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 1000]), max_size=6),
    "tags": st.lists(st.sampled_from(["a", "b", "c", "d", "zz"]), max_size=4),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.lists(rows, min_size=1, max_size=8).map(pd.DataFrame))
def test_in_graph_encoding_equals_feature_spec_encode(encode, frame):
    expected = SPEC.encode(frame, side="user")
    got = encode(frame)
    for name in USER:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        assert got[name].dtype == expected[name].dtype, name


def test_hand_computed_codes(encode):
    frame = pd.DataFrame({"user_id": [20, 99], "city": ["lyon", "rome"], "device": [6, 7], "zip": ["021", "1"],
                          "age": [18.0, 17.9], "income": [4.75, 3.25],
                          "history": [[1, 2, 3, 4, 5], []], "tags": [["b", "q"], ["c"]]})
    got = encode(frame)
    assert got["user_id"].tolist() == [3, 1]                                     # position + 2, OOV = 1
    assert got["city"].tolist() == [3, 1]
    bucket = tf.strings.to_hash_bucket_fast(["7"], 7).numpy()[0]
    assert got["device"].tolist() == [3, 2 + 2 + bucket]                         # hash rows after the vocabulary
    assert got["age"].tolist() == [5, 4]          # 18.0 is on a boundary: searchsorted(side="right") + 2
    np.testing.assert_allclose(got["income"], [1.0, 0.0])
    assert got["history"].tolist() == [[4, 5, 6], [0, 0, 0]]       # ids 3, 4, 5 (the last 3), right-padded
    assert got["tags"][0, 0] == 3 and got["tags"][0, 1] >= 5 and got["tags"][1].tolist() == [4, 0]


def test_vocabularies_travel_as_asset_files_and_a_padding_id_in_a_vocabulary_is_refused(tmp_path):
    encoder = RawFeatureEncoder(SPEC, USER, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"vocabulary_{n}.txt" for n in
                                                          ("city", "device", "history", "tags", "user_id", "zip")]
    assert (tmp_path / "vocabulary_user_id.txt").read_text() == "10\n20\n30\n-7\n"
    assert encoder.signature["age"].dtype == tf.float64 and encoder.signature["history"].shape.rank == 2
    spec = FeatureSpec((CategoricalFeature("user_id", "user", (1,)), CategoricalFeature("item_id", "item", (-1, 2)),
                        SequenceFeature("history", "user", (-1, 2), 3)))
    with pytest.raises(ValueError, match=r"feature 'history': its vocabulary holds the padding sentinel -1"):
        RawFeatureEncoder(spec, ["user_id", "history"], str(tmp_path))
    RawFeatureEncoder(spec, ["user_id", "history"], str(tmp_path), padding_id=-999)


GOOD = {"user_id": [10], "city": ["paris"], "device": [5], "zip": ["941"], "age": [3.0], "income": [1.0],
        "history": [[1, 2]], "tags": [["a"]]}


@pytest.mark.parametrize("change,message", [
    ({"color": ["red"]}, "unknown feature 'color' in the request; this export takes: age, city"),
    ({"age": None}, "the request lacks feature(s) ['age']"),
    ({"user_id": [1.5]}, "feature 'user_id': id 1.5 at row 0 is not an integer"),
    ({"user_id": ["10"]}, "feature 'user_id': id '10' at row 0 is not an integer"),
    ({"user_id": [2 ** 64]}, "feature 'user_id': id 18446744073709551616 at row 0 is outside the int64 range"),
    ({"city": [941]}, "feature 'city': expected strings, got 941 (int) at row 0"),
    ({"age": ["old"]}, "feature 'age': expected numbers, got 'old' at row 0"),
    ({"age": [float("nan")]}, "feature 'age': non-finite value nan at row 0"),
    ({"age": np.ones((1, 2))}, "feature 'age': expected one value per row (shape [rows]), got shape (1, 2)"),
    ({"age": [[1.0], 2.0]}, "feature 'age': expected one value per row, got a list at row 0"),
    ({"history": [7]}, "feature 'history': expected a list of values at row 0, got 7"),
    ({"history": [[1, 2.5]]}, "feature 'history': id 2.5 at row 0 is not an integer"),
    ({"income": [1.0, 2.0]}, "feature 'income' has 2 rows where 'user_id' has 1"),
    ({name: [] for name in GOOD}, "empty batch: feature 'user_id' has 0 rows"),
])
def test_the_request_check_names_the_feature_and_value(change, message):
    values = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=re.escape(message)):
        request_arrays(raw_signature(SPEC.user_features), values, PADDING)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The encoder saved as a SavedModel and loaded back (signatures do not check shapes by themselves)."""
    directory = tmp_path_factory.mktemp("saved")
    module = tf.Module()
    module.encoder = RawFeatureEncoder(SPEC, USER, str(directory))
    module.serve = tf.function(lambda **raw: module.encoder.encode(raw)).get_concrete_function(
        **module.encoder.signature)
    tf.saved_model.save(module, str(directory / "model"), signatures={"serving_default": module.serve})
    return tf.saved_model.load(str(directory / "model")).signatures["serving_default"]


def _good_arrays():
    arrays = request_arrays(raw_signature(SPEC.user_features), GOOD, PADDING)
    return {**arrays, "history": id_matrix([[1, 2, -1, -1]], -1, "history")}


@pytest.mark.parametrize("change,message", [
    ({"age": np.array([np.inf])}, "feature 'age': non-finite value] [inf]"),
    ({"age": np.array([[3.0]])}, "Shape of tensor age [1,1] is not compatible with expected shape [?]"),
    ({"history": np.array([1, 2])}, "Shape of tensor history [2] is not compatible with expected shape [?,?]"),
    ({"history": np.array([[1, -1, 2]])}, "feature 'history': a value follows a padding slot"),
    ({"income": np.array([1.0, 2.0])}, "feature 'income' has a different number of rows than 'user_id':] [2] [1]"),
    ("empty", "empty batch: feature 'user_id' has 0 rows"),
])
def test_the_saved_graph_refuses_bad_requests_naming_the_feature(loaded, change, message):
    arrays = _good_arrays()
    if change == "empty":
        arrays = {k: v[:0] for k, v in arrays.items()}
    else:
        arrays.update(change)
    with pytest.raises(ValueError, match=re.escape(message)):
        call_signature(loaded, arrays)


def test_the_saved_graph_encodes_as_in_memory(loaded, encode):
    arrays = _good_arrays()
    got = call_signature(loaded, arrays)
    expected = SPEC.encode(pd.DataFrame(GOOD), side="user")
    for name in USER:
        np.testing.assert_array_equal(got[name], expected[name])
