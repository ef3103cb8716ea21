"""Property-based tests (hypothesis) over metrics, encoding and splits: random shapes, empty inputs,
duplicates and NaN."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tower_zoo.data import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature, build_interaction_data
from tower_zoo.data.memory.splits import leave_last_out
from tower_zoo.evaluation.metrics import per_query_metrics
from tower_zoo.evaluation.preranking import auc, gauc

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

id_lists = st.lists(st.integers(-1, 30), min_size=1, max_size=25)


@SETTINGS
@given(st.lists(st.tuples(id_lists, st.sets(st.integers(0, 30), min_size=1, max_size=5)), min_size=1, max_size=8),
       st.sets(st.integers(1, 25), min_size=1, max_size=3))
def test_ranking_metrics_bounds_and_relations(rows, ks):
    width = max(len(r) for r, _ in rows)
    retrieved = np.array([r + [-1] * (width - len(r)) for r, _ in rows])
    targets = [np.array(sorted(t)) for _, t in rows]
    metrics = per_query_metrics(retrieved, targets, ks)
    for name, values in metrics.items():
        assert np.all((values >= 0) & (values <= 1 + 1e-12)), name
    for k in sorted(ks):
        assert np.all((metrics[f"recall@{k}"] > 0) == (metrics[f"hit_rate@{k}"] > 0))
        assert np.all((metrics[f"ndcg@{k}"] > 0) == (metrics[f"hit_rate@{k}"] > 0))
    ks_sorted = sorted(ks)
    for small, large in zip(ks_sorted, ks_sorted[1:]):
        assert np.all(metrics[f"recall@{large}"] >= metrics[f"recall@{small}"] - 1e-12)
    # Appending padding or repeating an already-retrieved id never changes a metric.
    padded = np.concatenate([retrieved, np.full((len(rows), 3), -1)], axis=1)
    repeated = np.concatenate([retrieved, retrieved[:, :1]], axis=1)
    for other in (padded, repeated):
        again = per_query_metrics(other, targets, ks)
        for name in metrics:
            if not name.startswith("mrr"):
                np.testing.assert_allclose(again[name], metrics[name])


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-5000, 5000).map(lambda v: v / 1000), st.integers(0, 4)),
                min_size=2, max_size=60))
def test_auc_is_symmetric_and_gauc_bounded(rows):
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows])
    groups = np.array([r[2] for r in rows])
    value = auc(labels, scores)
    if 0 < labels.sum() < len(labels):
        assert 0 <= value <= 1
        assert auc(1 - labels, scores) == pytest.approx(1 - value)      # swapping classes mirrors the AUC
        assert auc(labels, -scores) == pytest.approx(1 - value)
        assert auc(labels, 3 * scores + 1) == pytest.approx(value)      # invariant to monotone transforms
    else:
        assert math.isnan(value)
    grouped, used = gauc(labels, scores, groups)
    assert used == 0 and math.isnan(grouped) or 0 <= grouped <= 1


SPEC = FeatureSpec((CategoricalFeature("user_id", "user", (1, 2, 3)),
                    CategoricalFeature("item_id", "item", ("a", "b")),
                    NumericFeature("price", "item", 1.0, 2.0),
                    SequenceFeature("tags", "item", ("x", "y"), max_length=3)))


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["a", "b", "zz"]),
                          st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan"))),
                          st.lists(st.sampled_from(["x", "y", "q"]), max_size=5)), max_size=12))
def test_encode_never_returns_garbage(rows):
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "price", "tags"])
    if not rows:
        with pytest.raises(ValueError, match="empty"):
            SPEC.encode(frame)
        return
    if frame["price"].isna().any():
        with pytest.raises(ValueError, match="'price'"):
            SPEC.encode(frame)
        return
    out = SPEC.encode(frame)
    assert all(len(v) == len(rows) for v in out.values())
    assert out["user_id"].min() >= 1 and out["user_id"].max() < SPEC.get("user_id").vocab_size
    assert out["tags"].shape == (len(rows), 3) and out["tags"].max() < SPEC.get("tags").vocab_size
    np.testing.assert_allclose(out["price"], (frame["price"].to_numpy() - 1.0) / 2.0, rtol=1e-5, atol=1e-6)


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 8), st.integers(0, 20)), min_size=1, max_size=40))
def test_leave_last_out_partitions_and_holds_out_the_latest(rows):
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(rating=3.0)
    users = pd.DataFrame({"user_id": range(1, 7)})
    items = pd.DataFrame({"item_id": range(1, 9)})
    data = build_interaction_data("p", ratings, users, items, history_length=4)
    split = leave_last_out(data)
    assert len(split.train) + len(split.test) == len(ratings)
    for user, test_row in split.test.set_index("user_id").iterrows():
        own = split.train[split.train["user_id"] == user]
        assert len(own) >= 1 and own["timestamp"].max() <= test_row["timestamp"]
    assert split.train_history.shape == (len(split.train), 4)
