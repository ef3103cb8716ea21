"""Python API mistakes (issue 21, item 16): each is one ValueError / TypeError naming the argument and the
value, raised before any work, never a ZeroDivisionError, AttributeError, KeyError or a TensorFlow graph error."""

import re

import numpy as np
import pandas as pd
import pytest

import tower_zoo
from tower_zoo.data import build_interaction_data, leave_last_out, synthetic_interactions
from tower_zoo.data.prepare.run import PrepareOptions, prepare
from tower_zoo.data.schema.spec import CategoricalFeature, FeatureSpec, NumericFeature
from tower_zoo.evaluation.preranking import PreRankingEvaluator
from tower_zoo.evaluation.retrieval import RetrievalEvaluator
from tower_zoo.training.trainer import Trainer

DATA = synthetic_interactions(num_users=20, num_items=12, interactions_per_user=4)


@pytest.mark.parametrize("fields,error,message", [
    ({"rows_per_shard": 0}, ValueError, "PrepareOptions.rows_per_shard must be >= 1, got 0"),
    ({"memory_budget_mb": "1024"}, TypeError, "PrepareOptions.memory_budget_mb must be an integer, got '1024' (str)"),
    ({"memory_budget_mb": 8}, ValueError, "PrepareOptions.memory_budget_mb must be >= 16, got 8"),
    ({"max_open_shards": 2.0}, TypeError, "PrepareOptions.max_open_shards must be an integer, got 2.0 (float)"),
    ({"batch_rows": True}, TypeError, "PrepareOptions.batch_rows must be an integer, got True (bool)"),
    ({"seed": -1}, ValueError, "PrepareOptions.seed must be >= 0, got -1"),
    ({"max_bucket_rows": 0}, ValueError, "PrepareOptions.max_bucket_rows must be >= 1, got 0"),
])
def test_prepare_options_name_the_field_and_value(fields, error, message):
    with pytest.raises(error, match=re.escape(message)):
        PrepareOptions(**fields)
    assert PrepareOptions(max_bucket_rows=None, seed=np.int64(3)).seed == 3  # NumPy integers are integers


@pytest.mark.parametrize("args,message", [
    ((123, "out"), "prepare: schema must be a DatasetSchema or a schema file path, got 123 (int)"),
    (("s.yaml", None), "prepare: out must be a directory path, got None (NoneType)"),
    (("s.yaml", "out", {"rows_per_shard": 0}), "prepare: options must be a PrepareOptions, got {'rows_per_shard': 0}"),
])
def test_prepare_refuses_arguments_of_the_wrong_type_before_any_work(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match=re.escape(message)):
        prepare(*args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("feature_spec,error,message", [
    ("abc", TypeError, "model 'dssm': feature_spec must be a tower_zoo.data.FeatureSpec (or the dict of its "
                       "to_dict()), got 'abc' (str)"),
    ({}, ValueError, "model 'dssm': feature_spec: FeatureSpec.from_dict: missing key(s) ['features', "
                     "'user_id_feature', 'item_id_feature']"),
    (42, TypeError, "feature_spec must be a tower_zoo.data.FeatureSpec (or the dict of its to_dict()), got 42 (int)"),
])
def test_create_model_names_a_feature_spec_that_is_not_one(feature_spec, error, message):
    with pytest.raises(error, match=re.escape(message)):
        tower_zoo.create_model("dssm", feature_spec)


def test_a_feature_spec_dict_round_trips_and_a_malformed_one_is_named():
    spec_dict = DATA.feature_spec.to_dict()
    model = tower_zoo.create_model("mf", spec_dict, embedding_dim=4)   # the dict of to_dict() is accepted
    assert model.feature_spec == DATA.feature_spec
    for data, error, message in [
        ("abc", TypeError, "FeatureSpec.from_dict: expected the mapping FeatureSpec.to_dict() writes, got 'abc'"),
        ({**spec_dict, "features": "user_id"}, TypeError, "'features' must be a list of feature mappings"),
        ({**spec_dict, "features": [7]}, ValueError, "features[0] must be a mapping with a 'kind', got 7"),
        ({**spec_dict, "features": [{**spec_dict["features"][0], "width": 3}]}, ValueError,
         "features[0] ('user_id', categorical) has unknown field(s) ['width']"),
    ]:
        with pytest.raises(error, match=re.escape(message)):
            FeatureSpec.from_dict(data)


def _train_examples():
    return leave_last_out(DATA).examples("train")


def _with(arrays, name, position, value, dtype=None):
    changed = arrays[name].astype(dtype or arrays[name].dtype)
    changed.flat[position] = value
    return {**arrays, name: changed}


@pytest.mark.parametrize("change,message", [
    (lambda a: _with(a, "user_id", 3, 999), "feature 'user_id' in training examples: code 999 at row 3 is outside "
                                            "[0, 22)"),
    (lambda a: _with(a, "item_id", 5, -2), "feature 'item_id' in training examples: code -2 at row 5 is outside"),
    (lambda a: _with(a, "item_id", 4, 2.5, np.float64),
     "feature 'item_id' in training examples: expected integer codes, got float64 (value 2.5 at row 4)"),
    (lambda a: _with(a, "user_id", 6, np.nan, np.float64),
     "feature 'user_id' in training examples: expected integer codes, got float64 (value nan at row 6)"),
    (lambda a: {**a, "user_id": a["user_id"].astype(float)},
     "feature 'user_id' in training examples: expected integer codes, got float64 (integral values: cast them"),
    (lambda a: {**a, "segment": a["segment"].astype(str)},
     "feature 'segment' in training examples: expected integer codes, got <U"),
    (lambda a: {**a, "history": a["history"][:, :3]},
     "feature 'history' in training examples: expected shape [rows, 10], got (60, 3)"),
    (lambda a: _with(a, "history", 2 * 10 + 4, 999), "feature 'history' in training examples: code 999 at row 2"),
])
def test_fit_names_the_feature_value_and_row_of_a_bad_code_before_training(change, message):
    model = tower_zoo.create_model("mf", DATA.feature_spec, embedding_dim=4)
    trainer = Trainer(model, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match=re.escape(message)):
        trainer.fit(change(_train_examples()), verbose=False)
    assert int(trainer.optimizer.iterations.numpy()) == 0                    # refused before any step


def test_a_non_finite_numeric_in_a_frame_names_the_column_and_row():
    spec = FeatureSpec((CategoricalFeature("user_id", "user", (10, 20)), CategoricalFeature("item_id", "item", (5,)),
                        NumericFeature("price", "item"), NumericFeature("age", "user", boundaries=(1.0, 2.0))))
    for column in ("price", "age"):
        frame = pd.DataFrame({"user_id": [10, 20, 10], "item_id": [5, 5, 5], "price": [1.0, 2.0, 3.0],
                              "age": [1.0, 2.0, 3.0]}, index=[7, 8, 9])
        frame.loc[8, column] = -np.inf
        with pytest.raises(ValueError, match=re.escape(f"feature {column!r}: non-finite value -inf at row 8")):
            spec.encode(frame)
    ratings = pd.DataFrame({"user_id": [1, 2, 1], "item_id": [7, 8, 8], "rating": [4.0, 5.0, 3.0],
                            "timestamp": [1, 2, 3]})
    items = pd.DataFrame({"item_id": [7, 8], "price": [1.0, 2.0]})
    for boundaries in ({}, {"age": (10, 30)}):
        users = pd.DataFrame({"user_id": [1, 2], "age": [20.0, np.inf]})
        with pytest.raises(ValueError, match=re.escape("t: user feature column 'age' has a non-finite value inf at "
                                                       "row 1")):
            build_interaction_data("t", ratings, users, items, history_length=0, numeric_boundaries=boundaries)


@pytest.mark.parametrize("ks,message", [
    (("a",), "RetrievalEvaluator: ks must be positive integers, got ('a',): 'a' is not one"),
    ((10, 2.5), "RetrievalEvaluator: ks must be positive integers, got (10, 2.5): 2.5 is not one"),
    ((True,), "got (True,): True is not one"),
    ((0, 10), "got (0, 10): 0 is not one"),
    ("10", "RetrievalEvaluator: ks must be a list of positive integers, got '10'"),
    (10, "RetrievalEvaluator: ks must be a list of positive integers, got 10"),
    ((), "RetrievalEvaluator: ks must name at least one cut-off K, got ()"),
])
def test_retrieval_evaluator_names_a_bad_cutoff(ks, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RetrievalEvaluator(ks=ks)
    assert RetrievalEvaluator(ks=[np.int64(50), 10, 10]).ks == (10, 50)


def test_preranking_evaluator_refuses_an_empty_evaluation_and_a_bad_batch_size():
    model = tower_zoo.create_model("logistic_regression", DATA.feature_spec)
    model.build_weights()
    empty = {name: values[:0] for name, values in _train_examples().items()}
    with pytest.raises(ValueError, match=re.escape("PreRankingEvaluator.evaluate: no impressions to evaluate "
                                                   "(labels 'click' are empty)")):
        PreRankingEvaluator().evaluate(model, empty, {"click": np.zeros(0)})
    with pytest.raises(ValueError, match=re.escape("PreRankingEvaluator: batch_size must be an integer >= 1, got 0")):
        PreRankingEvaluator(batch_size=0)
