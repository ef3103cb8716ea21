import math
import time

import numpy as np
import pytest

from tower_zoo.evaluation import (ExactIndex, RetrievalEvaluator, ScannConfig, ScannIndex, per_query_metrics,
                                  ranking_metrics)


def _brute_force(retrieved, targets, k):
    """Reference written with explicit rank positions."""
    recall, hit, ndcg, mrr = [], [], [], []
    for row, relevant in zip(retrieved, targets):
        relevant = set(int(t) for t in relevant)
        ranks = [i + 1 for i, item in enumerate(row[:k]) if int(item) in relevant and item != -1]
        recall.append(len(ranks) / len(relevant))
        hit.append(1.0 if ranks else 0.0)
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
        ndcg.append(sum(1 / math.log2(r + 1) for r in ranks) / ideal)
        all_ranks = [i + 1 for i, item in enumerate(row) if int(item) in relevant]
        mrr.append(1 / all_ranks[0] if all_ranks else 0.0)
    return {f"recall@{k}": np.mean(recall), f"hit_rate@{k}": np.mean(hit), f"ndcg@{k}": np.mean(ndcg)}, np.mean(mrr)


def test_hand_computed_cases():
    retrieved = np.array([[5, 6, 7, -1], [9, 8, 7, 6], [1, 2, 3, 4]])
    targets = [np.array([7]), np.array([8, 6]), np.array([-1])]
    m = per_query_metrics(retrieved, targets, ks=(2, 4))
    assert m["recall@2"].tolist() == [0.0, 0.5, 0.0]
    assert m["ndcg@4"][0] == pytest.approx(1 / math.log2(4))          # target at rank 3
    assert m["ndcg@4"][1] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    assert m["mrr@4"].tolist() == pytest.approx([1 / 3, 1 / 2, 0.0])    # -1 padding never matches a -1 target
    with pytest.raises(ValueError, match="query 1 has no target"):
        ranking_metrics(retrieved[:2], [np.array([1]), np.array([])])


def test_metrics_match_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    retrieved = np.stack([rng.permutation(200)[:60] for _ in range(300)])
    targets = [rng.choice(200, size=rng.integers(1, 4), replace=False) for _ in range(300)]
    got = ranking_metrics(retrieved, targets, ks=(10, 60))
    for k in (10, 60):
        expected, mrr = _brute_force(retrieved, targets, k)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-9)
    assert got["mrr@60"] == pytest.approx(mrr)


def test_exact_index_exclusion_and_ties():
    items = np.array([[1.0], [3.0], [3.0], [2.0]])
    index = ExactIndex(items, np.array([10, 11, 12, 13]))
    ids, scores = index.search(np.array([[1.0], [1.0]]), k=3, exclude=[np.array([11]), np.array([])])
    assert ids.tolist() == [[12, 13, 10], [11, 12, 13]]     # ties in corpus order
    ids, scores = index.search(np.array([[1.0]]), k=3, exclude=[np.array([10, 11, 12])])
    assert ids.tolist() == [[13, -1, -1]] and np.isneginf(scores[0, 1])
    with pytest.raises(ValueError, match=r"queries must have shape \[Q, 1\]"):
        index.search(np.ones((1, 2)), k=1)
    with pytest.raises(ValueError, match="id 5 appears"):
        ExactIndex(np.ones((2, 1)), np.array([5, 5]))
    with pytest.raises(ValueError, match="NaN/inf"):
        ExactIndex(np.array([[np.nan]]), np.array([1]))


def test_scann_overlaps_exact_and_respects_exclusion():
    # A clustered corpus (200 centres), like trained item embeddings; structureless Gaussian vectors are
    # ANN's worst case (see ScannConfig's docstring for those numbers).
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(200, 32))
    items = (centres[rng.integers(200, size=20_000)] + 0.5 * rng.normal(size=(20_000, 32))).astype(np.float32)
    ids = np.arange(20_000) + 1_000
    queries = (centres[rng.integers(200, size=200)] + 0.5 * rng.normal(size=(200, 32))).astype(np.float32)
    exact_ids, _ = ExactIndex(items, ids).search(queries, 10)
    exclude = [exact_ids[q, :3] for q in range(200)]          # drop each query's true top 3
    scann = ScannIndex(items, ids)
    ann_ids, _ = scann.search(queries, 10)
    overlap = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(ann_ids, exact_ids)])
    assert overlap >= 0.9, overlap
    excluded_ids, _ = scann.search(queries, 10, exclude=exclude)
    assert not any(np.isin(excluded_ids[q], exclude[q]).any() for q in range(200))


def test_scann_queries_per_second_leave_out_the_one_off_build(monkeypatch):
    # The first search builds the index; a slow build must show in scann_build_seconds, not in scann_qps.
    rng = np.random.default_rng(2)
    items, queries = rng.normal(size=(2_000, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    build = ScannIndex.build

    def slow_build(self, depth):
        build(self, depth)
        time.sleep(1.0)  # as if training the partitioning had taken a second longer
        self.build_seconds += 1.0

    monkeypatch.setattr(ScannIndex, "build", slow_build)
    report = RetrievalEvaluator(ks=(10,)).evaluate_embeddings(queries, items, np.arange(2_000),
                                                              [np.array([0])] * 40)
    assert report.timings["scann_build_seconds"] >= 1.0
    search_seconds = report.num_queries / report.timings["scann_qps"]
    assert 0 < search_seconds < 0.5, search_seconds


def test_tiny_corpus_falls_back_to_exact_with_a_note():
    rng = np.random.default_rng(2)
    items, queries = rng.normal(size=(100, 8)), rng.normal(size=(5, 8))
    index = ScannIndex(items, np.arange(100), ScannConfig(min_corpus_size=256))
    assert "below min_corpus_size" in index.fallback_reason
    np.testing.assert_array_equal(index.search(queries, 5)[0], ExactIndex(items, np.arange(100)).search(queries, 5)[0])
    report = RetrievalEvaluator(ks=(5,)).evaluate_embeddings(queries, items, np.arange(100),
                                                             [np.array([0])] * 5)
    assert list(report.metrics) == ["exact"] and "below min_corpus_size" in report.notes[0]


class _LookupModel:
    """Towers that look up fixed vectors by encoded id."""

    def __init__(self, users, items):
        self.users, self.items = np.asarray(users, np.float32), np.asarray(items, np.float32)

    def user_embedding(self, features, training=False):
        return self.users[features["user_id"]]

    def item_embedding(self, features, training=False):
        return self.items[features["item_id"]]


def test_evaluate_with_a_model_by_hand():
    # 3 items on a line, user 0 prefers item id 102 > 101 > 100; user 1 the reverse.
    model = _LookupModel(users=[[1.0], [-1.0]], items=[[0.0], [1.0], [2.0]])
    report = RetrievalEvaluator(ks=(1, 2), use_scann=False).evaluate(
        model, {"user_id": np.array([0, 1])}, {"item_id": np.array([0, 1, 2])}, np.array([100, 101, 102]),
        targets=[np.array([101]), np.array([101])], exclude=[np.array([102]), np.array([])])
    # user 0: 102 excluded -> [101, 100]: hit at rank 1. user 1: [100, 101]: hit at rank 2.
    assert report.metrics["exact"]["recall@1"] == 0.5
    assert report.metrics["exact"]["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert report.metrics["exact"]["mrr@2"] == pytest.approx(0.75)
    assert "| recall@1 | 0.5000 |" in report.to_markdown()
    with pytest.raises(ValueError, match="same D"):
        RetrievalEvaluator().evaluate_embeddings(np.ones((2, 3)), np.ones((4, 2)), np.arange(4), [[1], [1]])


def test_mean_popularity_of_recommended_items():
    from tower_zoo.evaluation.retrieval import mean_popularity

    ids = np.array([30, 10, 20])
    popularity = np.array([5.0, 100.0, 1.0])      # id 30 -> 5, id 10 -> 100, id 20 -> 1
    got = mean_popularity(np.array([[10, 20, 30], [30, -1, -1]]), ids, popularity, k=2)
    assert got == {"mean_popularity@2": pytest.approx((100 + 1 + 5) / 3)}


def test_repeated_ids_count_once_and_scann_padding_is_not_a_hit():
    m = per_query_metrics(np.array([[4, 4, 4]]), [np.array([4])], ks=(3,))
    assert m["recall@3"].tolist() == [1.0] and m["ndcg@3"].tolist() == [1.0]
    # Probing 1 of 20 leaves finds fewer than k items: ScaNN pads with row 0 / NaN, which must become -1.
    rng = np.random.default_rng(3)
    items = rng.normal(size=(400, 8)).astype(np.float32)
    index = ScannIndex(items, np.arange(400) + 7, ScannConfig(num_leaves=20, num_leaves_to_search=1))
    ids, _ = index.search(rng.normal(size=(5, 8)), k=300)
    for row in ids:
        found = row[row >= 0]
        assert len(found) == len(np.unique(found)) and len(found) < 300


def test_ndcg_ideal_does_not_shrink_with_a_short_list():
    # Found by hypothesis: one retrieved item, two relevant, k = 5. IDCG counts two positions.
    m = per_query_metrics(np.array([[0]]), [np.array([0, 1])], ks=(5,))
    assert m["ndcg@5"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_blocked_exact_search_equals_brute_force_with_exclusion_and_ties():
    # Quarter-integer vectors make every dot product exact in float32 whatever order a BLAS kernel sums in, so
    # tied items score exactly equal (with normal floats, identical rows differ by an ulp between kernel tiles
    # and the tie order then depends on the CPU).
    rng = np.random.default_rng(4)
    items = (rng.integers(-8, 9, size=(1000, 8)) / 4).astype(np.float32)
    items[::7] = items[0]                                     # many exact ties across blocks
    ids = rng.permutation(5000)[:1000]
    queries = (rng.integers(-8, 9, size=(300, 8)) / 4).astype(np.float32)
    exclude = [rng.choice(ids, size=rng.integers(0, 50), replace=False) for _ in range(300)]
    got, _ = ExactIndex(items, ids, query_chunk=64, item_block=97).search(queries, 20, exclude)
    scores = queries @ items.T
    for q in range(300):
        scores[q, np.isin(ids, exclude[q])] = -np.inf
    np.testing.assert_array_equal(got, ids[np.argsort(-scores, axis=1, kind="stable")[:, :20]])


def test_chunked_evaluation_equals_one_pass():
    rng = np.random.default_rng(5)
    model = _LookupModel(users=rng.normal(size=(90, 4)), items=rng.normal(size=(400, 4)))
    users, items, item_ids = np.arange(90), {"item_id": np.arange(400)}, np.arange(400) + 10
    targets = [rng.choice(item_ids, size=2, replace=False) for _ in range(90)]
    exclude = [rng.choice(item_ids, size=rng.integers(0, 30), replace=False) for _ in range(90)]
    popularity = rng.integers(0, 50, size=400).astype(float)
    evaluator = RetrievalEvaluator(ks=(5, 20))
    whole = evaluator.evaluate(model, {"user_id": users}, items, item_ids, targets, exclude, popularity)
    chunks = [({"user_id": users[s:s + 32]}, targets[s:s + 32], exclude[s:s + 32]) for s in range(0, 90, 32)]
    chunked = evaluator.evaluate_chunks(model, chunks, items, item_ids, popularity)
    assert chunked.num_queries == 90
    for name, value in whole.metrics["exact"].items():
        assert chunked.metrics["exact"][name] == pytest.approx(value, rel=1e-9)
    assert set(chunked.ann_recall) == {"ann_recall@5", "ann_recall@20"}  # ScaNN is re-trained: values differ
