"""The IntTower-protocol row features: the released (leaky) form and the leak-free one, by hand."""

import numpy as np
import pandas as pd
import pytest

import tower_zoo
from benchmarks.dnn_baseline import ConcatDNN, ConcatDNNConfig
from benchmarks.protocol_features import label_rates, positive_histories, with_label_rates, with_positive_history
from tower_zoo.data import ExposureSplit, synthetic_interactions


def _split(parts):
    data = synthetic_interactions(num_users=5, num_items=9, interactions_per_user=2)
    frames = {name: pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "label"]).assign(rating=4.0)
              for name, rows in parts.items()}
    spec = data.feature_spec.select(["segment", "category"])
    return ExposureSplit(data, spec, frames, {})


@pytest.fixture
def split():
    return _split({
        "train": [(1, 1, 10, 1), (1, 2, 20, 0), (1, 3, 30, 1), (2, 1, 40, 0)],
        "valid": [(1, 4, 50, 1), (2, 5, 60, 1)],
        "test": [(1, 5, 70, 0), (1, 6, 80, 0), (3, 2, 90, 1)],
    })


def test_leak_free_rates_use_training_labels_only_leave_one_out(split):
    # user 1's training labels 1, 0, 1: leave-one-out rates 1/2, 2/2, 1/2; user 2 has one row -> the global
    # training rate 2/4; on validation and test, user 1 gets 2/3, user 3 (never in train) 2/4.
    np.testing.assert_allclose(label_rates(split, "train", "user", leaky=False), [0.5, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(label_rates(split, "valid", "user", leaky=False), [2 / 3, 0.0])
    np.testing.assert_allclose(label_rates(split, "test", "user", leaky=False), [2 / 3, 2 / 3, 0.5])
    # item 1: training labels 1 (user 1) and 0 (user 2): leave-one-out 0 and 1.
    np.testing.assert_allclose(label_rates(split, "train", "item", leaky=False)[[0, 3]], [0.0, 1.0])


def test_released_rates_are_computed_inside_each_split(split):
    # train and valid together: user 1 has labels 1, 0, 1, 1 -> 3/4 (own label included), user 2: 0, 1 -> 1/2.
    np.testing.assert_allclose(label_rates(split, "train", "user", leaky=True), [0.75, 0.75, 0.75, 0.5])
    # test from test labels: user 1's two test rows are both 0 -> rate 0, user 3's one row is 1 -> rate 1.
    np.testing.assert_allclose(label_rates(split, "test", "user", leaky=True), [0.0, 0.0, 1.0])
    encoded = with_label_rates(split, leaky=True).examples("test")
    assert {"user_label_rate", "item_label_rate"} <= set(encoded)
    assert encoded["user_label_rate"][2] > encoded["user_label_rate"][0]       # standardized, same order


def test_positive_histories(split):
    leaky = positive_histories(split, "train", leaky=True, max_length=3)
    # train + valid positives of user 1 by time: items 1, 3, 4. Row (1, 1) is positive: its own item stays in.
    assert list(leaky[0]) == [3, 4, 1] and list(leaky[1]) == [1, 3, 4] and list(leaky[2]) == [1, 4, 3]
    test_leaky = positive_histories(split, "test", leaky=True, max_length=3)
    assert list(test_leaky[2]) == [2] and len(test_leaky[0]) == 0              # from the test labels themselves
    free = positive_histories(split, "train", leaky=False, max_length=3)
    assert list(free[0]) == [3] and list(free[1]) == [1, 3] and list(free[2]) == [1]   # training only, not own
    assert list(positive_histories(split, "test", leaky=False, max_length=1)[0]) == [3]  # the latest one
    codes = with_positive_history(split, leaky=False, max_length=3).examples("train")["history"]
    assert codes.shape == (4, 3) and (codes[0] > 0).sum() == 1 and (codes[3] == 0).all()


def test_cold_style_dnn_scores_pairs_with_one_mlp(split):
    model = ConcatDNN(split.feature_spec, ConcatDNNConfig(embedding_dim=4, hidden_units=(8,)))
    examples = split.examples("train")
    full = model.score_matrix(examples, examples).numpy()
    np.testing.assert_allclose(model.score(examples, examples).numpy(), np.diag(full), rtol=1e-5)
    assert full.shape == (4, 4) and not np.allclose(full[0], full[0, 0])
    assert "cold_style_dnn" not in tower_zoo.list_models()
