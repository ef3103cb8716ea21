import numpy as np
import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.models.fusion import CascadeFusion, ParallelFusion


@pytest.fixture(scope="module")
def setup():
    split = leave_last_out(synthetic_interactions(num_users=30, num_items=25, interactions_per_user=5))
    spec = split.data.feature_spec
    easy = tower_zoo.create_model("dssm", spec, hidden_units=(8,), temperature=0.1)
    hard = tower_zoo.create_model("mf", spec, embedding_dim=6)
    return split, easy, hard


def test_parallel_fusion_is_weighted_sum_of_logits(setup):
    split, easy, hard = setup
    queries, _, _ = split.queries("test")
    items, _ = split.candidates()
    fused = ParallelFusion(easy, hard, easy_weight=0.3, hard_weight=2.0)
    got = fused.user_embedding(queries).numpy() @ fused.item_embedding(items).numpy().T
    expected = 0.3 * easy.score_matrix(queries, items).numpy() + 2.0 * hard.score_matrix(queries, items).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_cascade_reranks_the_easy_first_stage(setup):
    split, easy, hard = setup
    queries, _, exclude = split.queries("test")
    items, ids = split.candidates()
    top = CascadeFusion(easy, hard, first_stage_k=8).retrieve(queries, items, ids, k=3, exclude=exclude)
    easy_scores = easy.score_matrix(queries, items).numpy()
    hard_scores = hard.score_matrix(queries, items).numpy()
    for q in range(len(top)):
        allowed = ~np.isin(ids, exclude[q])
        first = [i for i in np.argsort(-easy_scores[q], kind="stable") if allowed[i]][:8]
        expected = [ids[i] for i in sorted(first, key=lambda i: -hard_scores[q, i])[:3]]
        assert top[q].tolist() == expected
    with pytest.raises(ValueError, match="exceeds first_stage_k"):
        CascadeFusion(easy, hard, first_stage_k=2).retrieve(queries, items, ids, k=3)
