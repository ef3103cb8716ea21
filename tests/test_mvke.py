import numpy as np
import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.evaluation import ExactIndex
from tower_zoo.evaluation.expert_search import per_expert_top_k
from tower_zoo.training import Trainer
from tower_zoo.training.objectives import movielens_objectives

from multifeedback_helpers import assert_decomposable


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=80, num_items=60, interactions_per_user=8))


def _model(split, **overrides):
    options = dict(embedding_dim=8, num_kernels=3, objective_kernels=((0, 1), (1, 2)), expert_units=(16, 8),
                   item_units=(16, 8), fusion_weights=(1.0, 0.5))
    options.update(overrides)
    return tower_zoo.create_model("mvke", split.data.feature_spec, **options)


def test_gates_and_the_exact_factorization(split):
    model = _model(split)
    examples = {k: v[:5] for k, v in split.examples("train").items()}
    experts = model.expert_vectors(examples).numpy()                   # [B, K, D]
    vectors, gates = (t.numpy() for t in model.objective_item_vectors(examples))
    kernels = model.kernels.numpy()
    # the gate of objective 0 mixes kernels 0..1 only: softmax of <v, c_k>, by hand
    logits = vectors[:, 0] @ kernels[:2].T
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(gates[:, 0, :2], expected, rtol=1e-5)
    assert np.all(gates[:, 0, 2] == 0) and np.all(gates[:, 1, 0] == 0)
    # the paper's item-dependent user vector, Σ_k g_k(v) E_k(u), dotted with v_t, for every (user, item) pair
    paper = np.einsum("ntk,bkd,ntd->bnt", gates, experts, vectors)
    fused = (paper * np.array([1.0, 0.5])).sum(-1)
    np.testing.assert_allclose(model.score_matrix(examples, examples).numpy(), fused, rtol=1e-4, atol=1e-5)
    gated = model.gated_user_vectors(examples, examples).numpy()
    np.testing.assert_allclose(np.einsum("btd,btd->bt", gated, vectors), np.diagonal(paper).T, rtol=1e-4, atol=1e-5)
    assert_decomposable(model, split.data.feature_spec, examples)


def test_per_expert_search_equals_exact_with_a_full_shortlist_and_misses_nothing_it_contains():
    rng = np.random.default_rng(0)
    users, items, ids = rng.normal(size=(7, 3, 4)), rng.normal(size=(40, 3, 4)), np.arange(100, 140)
    exact, _ = ExactIndex(items.reshape(40, -1), ids).search(users.reshape(7, -1), 5)
    np.testing.assert_array_equal(per_expert_top_k(users, items, ids, 5, shortlist=40), exact)
    short = per_expert_top_k(users, items, ids, 5, shortlist=6)
    scores = np.einsum("qkd,nkd->qn", users, items)
    for q in range(7):   # whatever it returns is ranked exactly, best first
        rows = short[q] - 100
        assert np.all(np.diff(scores[q, rows]) <= 1e-9)
    exclude = [np.array([exact[q, 0]]) for q in range(7)]
    assert not np.any(per_expert_top_k(users, items, ids, 5, 40, exclude)[:, 0] == exact[:, 0])


def test_trains_one_loss_per_objective(split):
    model = _model(split)
    labels = movielens_objectives(split.train["rating"].to_numpy())
    history = Trainer(model, epochs=3, batch_size=32).fit(split.examples("train"), objective_labels=labels,
                                                          verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    with pytest.raises(ValueError, match="objective_kernels for 'like' must be 0 <= first <= last"):
        _model(split, objective_kernels=((0, 1), (1, 3)))
    with pytest.raises(ValueError, match="expert_units must end at embedding_dim=8"):
        _model(split, expert_units=(16,))
