import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.models import TwoTowerModel


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=40, num_items=30, interactions_per_user=6))


def test_list_models_names_and_filters():
    names = tower_zoo.list_models()
    assert {"dssm", "mf"} <= set(names) and names == sorted(names)
    assert tower_zoo.list_models("ds*") == ["dssm"]
    assert "mf" in tower_zoo.list_models(kind="retrieval")


def test_unknown_model_lists_registered_names(split):
    with pytest.raises(ValueError, match=r"unknown model 'dsm'; registered models: .*dssm.*mf"):
        tower_zoo.create_model("dsm", split.data.feature_spec)


def test_unknown_override_lists_valid_keys(split):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['hiden_units'\].*valid keys: .*hidden_units"):
        tower_zoo.create_model("dssm", split.data.feature_spec, hiden_units=(8,))


@pytest.mark.parametrize("override,message", [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"hidden_units": ()}, "hidden_units"),
    ({"embedding_dim": 0}, "embedding_dim"),
])
def test_invalid_override_values(split, override, message):
    with pytest.raises(ValueError, match=message):
        tower_zoo.create_model("dssm", split.data.feature_spec, **override)


def test_missing_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="needs feature_spec"):
        tower_zoo.create_model("mf")


def test_register_model_rejects_duplicates():
    @dataclasses.dataclass
    class Config:
        embedding_dim: int = 4

    with pytest.raises(ValueError, match="already registered"):
        tower_zoo.register_model("dssm", Config)(TwoTowerModel)


def test_dssm_towers_shapes_cosine_and_config_round_trip(split):
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8), temperature=0.1)
    examples = {k: v[:5] for k, v in split.examples("train").items()}
    towers = model(examples)
    assert towers["user"].shape == (5, 8) and towers["item"].shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(towers["user"].numpy(), axis=1), 1.0, rtol=1e-5)
    scores = model.score_matrix(examples, examples).numpy()
    assert scores.shape == (5, 5) and np.all(np.abs(scores) <= 10.0 + 1e-4)  # |cos| / 0.1
    np.testing.assert_allclose(model.score(examples, examples).numpy(), np.diag(scores), rtol=1e-5)
    clone = type(model).from_config(model.get_config())
    clone.build_weights()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.score_matrix(examples, examples).numpy(), scores, rtol=1e-5)


def test_mf_reads_only_ids(split):
    model = tower_zoo.create_model("mf", split.data.feature_spec, embedding_dim=6)
    examples = {k: v[:4] for k, v in split.examples("train").items()}
    before = model.user_embedding(examples).numpy()
    changed = dict(examples, segment=np.ones_like(examples["segment"]), history=np.zeros_like(examples["history"]))
    np.testing.assert_array_equal(model.user_embedding(changed).numpy(), before)
    assert before.shape == (4, 6)


def test_dssm_user_features_subset_and_unknown_feature(split):
    model = tower_zoo.create_model("dssm", split.data.feature_spec, user_features=("user_id",))
    examples = {k: v[:3] for k, v in split.examples("train").items()}
    before = model.user_embedding(examples).numpy()
    changed = dict(examples, history=np.zeros_like(examples["history"]))
    np.testing.assert_array_equal(model.user_embedding(changed).numpy(), before)
    with pytest.raises(ValueError, match=r"unknown user feature\(s\) \['nope'\]"):
        tower_zoo.create_model("dssm", split.data.feature_spec, user_features=("nope",))


def test_history_padding_never_changes_the_user_vector(split):
    model = tower_zoo.create_model("dssm", split.data.feature_spec)
    examples = {k: v[:3] for k, v in split.examples("train").items()}
    history = np.zeros_like(examples["history"])
    history[:, 0] = 5
    a = model.user_embedding(dict(examples, history=history)).numpy()
    # Same items at other positions with only padding around them: the masked mean is unchanged.
    shifted = np.zeros_like(history)
    shifted[:, 3] = 5
    b = model.user_embedding(dict(examples, history=shifted)).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert tf.reduce_all(tf.math.is_finite(model.user_embedding(dict(examples, history=np.zeros_like(history)))))
