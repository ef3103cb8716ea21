import numpy as np
import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.training import Trainer
from tower_zoo.training.objectives import fuse_label_weights, movielens_objectives


def test_movielens_objectives_and_fused_weights():
    labels = movielens_objectives(np.array([5, 3, 4, 1]))
    assert labels["click"].tolist() == [1, 1, 1, 1] and labels["like"].tolist() == [1, 0, 1, 0]
    np.testing.assert_allclose(fuse_label_weights(labels, {"click": 1.0, "like": 2.5}), [3.5, 1, 3.5, 1])
    with pytest.raises(ValueError, match=r"unknown objective\(s\) \['share'\]"):
        fuse_label_weights(labels, {"share": 1.0})
    with pytest.raises(ValueError, match="NaN"):
        movielens_objectives(np.array([5.0, np.nan]))


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=60, num_items=30, interactions_per_user=8))


def test_fused_score_is_weighted_sum_of_head_scores(split):
    model = tower_zoo.create_model("multi_objective", split.data.feature_spec, head_dim=4,
                                   fusion_weights=(0.5, 2.0), base_overrides={"hidden_units": (8,)})
    examples = {k: v[:5] for k, v in split.examples("train").items()}
    users, items = model.objective_user_embedding(examples).numpy(), model.objective_item_embedding(examples).numpy()
    per_head = np.einsum("bkd,nkd->kbn", users, items)
    expected = (0.5 * per_head[0] + 2.0 * per_head[1]) / 0.05
    np.testing.assert_allclose(model.score_matrix(examples, examples).numpy(), expected, rtol=1e-4, atol=1e-4)
    items_before = model.item_embedding(examples).numpy()
    model.set_fusion_weights([1.0, 0.0])
    np.testing.assert_allclose(model.score_matrix(examples, examples).numpy(), per_head[0] / 0.05, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(model.item_embedding(examples).numpy(), items_before)


def test_multi_objective_training_needs_labels_and_learns(split):
    model = tower_zoo.create_model("multi_objective", split.data.feature_spec, head_dim=8)
    trainer = Trainer(model, epochs=3, batch_size=32)
    examples = split.examples("train")
    with pytest.raises(ValueError, match=r"pass objective_labels= with labels for \['click', 'like'\]"):
        trainer.fit(examples, verbose=False)
    labels = movielens_objectives(split.train["rating"].to_numpy())
    history = trainer.fit(examples, objective_labels=labels, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    single = Trainer(tower_zoo.create_model("mf", split.data.feature_spec), epochs=1)
    with pytest.raises(ValueError, match="has one objective"):
        single.fit(examples, objective_labels=labels, verbose=False)


def test_fuse_objective_scores_by_hand():
    from tower_zoo.training.objectives import fuse_objective_scores

    fused = fuse_objective_scores({"like": np.array([0.0, np.log(3.0)]), "love": np.array([0.0, 0.0])},
                                  {"like": 1.0, "love": 2.0})
    np.testing.assert_allclose(fused, [0.5 + 1.0, 0.75 + 1.0])
    with pytest.raises(ValueError, match="unknown objective"):
        fuse_objective_scores({"like": np.zeros(2)}, {"click": 1.0})
