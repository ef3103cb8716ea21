import numpy as np
import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.data.memory.categories import (long_history_examples, long_history_queries, rarest_labels,
                                              truncate_history, with_item_categories)
from tower_zoo.evaluation.multi_context import merge_lists, multi_context_top_k, quota, top_contexts
from tower_zoo.training import Trainer

from multifeedback_helpers import assert_decomposable


def test_rarest_label_truncation_quota_and_contexts_by_hand():
    assert rarest_labels([("a", "b"), ("b",), ("b", "c"), ("c", "a"), ("b",)]) == ["a", "b", "c", "c", "b"]  # a, c tie at 2: the earlier
    history = np.array([[5, 6, 7, 8, 0, 0], [9, 0, 0, 0, 0, 0], [0] * 6])
    np.testing.assert_array_equal(truncate_history(history, 3), [[6, 7, 8], [9, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(quota(np.array([3.0, 1.0]), 5), [4, 1])           # 3.75 + 1.25: remainder to 0
    contexts, counts = top_contexts(np.array([[4, 3, 4, 2, 0], [5, 5, 0, 0, 0], [0] * 5]), 2)
    np.testing.assert_array_equal(contexts, [[4, 2], [5, -1], [1, -1]])              # ties by smaller code
    np.testing.assert_array_equal(counts, [[2, 1], [2, 0], [1, 0]])
    ids = np.array([[10, 11, 12], [20, 21, 22]])
    scores = np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.6]])
    np.testing.assert_array_equal(merge_lists(ids, scores, np.array([1, 2]), 3, "score"), [10, 20, 21])
    np.testing.assert_array_equal(merge_lists(ids, scores, np.array([2, 1]), 3, "quota"), [10, 20, 11])


@pytest.fixture(scope="module")
def split():
    data = synthetic_interactions(num_users=80, num_items=60, interactions_per_user=10, history_length=12,
                                  signal=0.3)
    return leave_last_out(with_item_categories(data, data.items["category"]))


def _model(split):
    return tower_zoo.create_model("long_retriever", split.data.feature_spec, embedding_dim=8, hidden_units=(16, 8),
                                  recent_length=2)


def test_sub_sequence_search_score_and_decomposition(split):
    model = _model(split)
    examples = {k: v[-6:] for k, v in long_history_examples(split).items()}
    users = model.user_embedding(examples).numpy()                   # [B, V, D + V], V zeros appended
    assert np.all(users[:, :, 8:] == 0)
    users = users[:, :, :8]
    items = model.context_item_embedding(examples).numpy()
    category = examples["category"]
    expected = np.einsum("bnd,nd->bn", users[:, category], items) / 0.05
    np.testing.assert_allclose(model.score_matrix(examples, examples).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.context_user_embedding(examples, category).numpy(),
                               users[np.arange(6), category], rtol=1e-5, atol=1e-6)
    # the vector in context c ignores history items of other categories beyond the recent window
    row, context = 0, int(examples["history_category"][0, 0])
    changed = {k: v.copy() for k, v in examples.items()}
    others = np.flatnonzero((examples["history_category"][row] != context) & (examples["history"][row] > 0))[:-2]
    changed["history"][row, others] = (changed["history"][row, others] % 50) + 2
    before = model.context_user_embedding(examples, category * 0 + context).numpy()[row]
    after = model.context_user_embedding(changed, category * 0 + context).numpy()[row]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    same = np.flatnonzero(examples["history_category"][row] == context)[:1]
    changed["history"][row, same] = (changed["history"][row, same] % 50) + 3
    assert not np.allclose(model.context_user_embedding(changed, category * 0 + context).numpy()[row], before)
    assert_decomposable(model, split.data.feature_spec, examples)


def test_in_context_training_and_multi_context_retrieval(split):
    model = _model(split)
    history = Trainer(model, epochs=3, batch_size=32).fit(long_history_examples(split), verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    queries, targets, exclude = long_history_queries(split)
    items, ids = split.candidates()
    top, cost = multi_context_top_k(model, queries, items, ids, 10, num_contexts=2, exclude=exclude)
    assert cost["user_vectors_per_request"] <= 2
    categories = dict(zip(ids, items["category"]))
    contexts, _ = top_contexts(queries["history_category"], 2)
    for q in range(len(top)):   # every retrieved item is of a chosen context, never an excluded one
        assert set(categories[i] for i in top[q] if i >= 0) <= set(contexts[q])
        assert not np.isin(top[q], exclude[q]).any()
    everything, _ = multi_context_top_k(model, queries, items, ids, 10, num_contexts=60, exclude=exclude,
                                        merge="score")
    exhaustive = tower_zoo.evaluation.RetrievalEvaluator(ks=(10,), use_scann=False)._search(
        "exact", {"exact": None}, model, np.asarray(model.user_embedding(queries)),
        np.asarray(model.item_embedding(items)), ids, exclude)
    every_category, _ = top_contexts(queries["history_category"], 60)
    covered = (every_category >= 0).sum(axis=1) == len(set(items["category"]))
    assert covered.sum() > 10
    # a user whose history spans every category, all contexts merged by score = the model's full ranking
    np.testing.assert_array_equal(everything[covered], exhaustive[covered])
    with pytest.raises(ValueError, match="trains in context"):
        Trainer(_model(split), epochs=1, batch_size=32, negatives="mixed", num_global_negatives=8).fit(
            long_history_examples(split), item_table=items, verbose=False)
