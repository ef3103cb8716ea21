"""The cascade simulation and list-wise cascade training (RankFlow, ARF)."""

import numpy as np
import pytest

import tower_zoo
from tower_zoo.cascade import CascadeSimulation, pair_scores
from tower_zoo.data import synthetic_interactions, time_split
from tower_zoo.training import Trainer

N, M, K = 20, 10, 5


class _Negated:
    """A pre-ranker that orders candidates exactly against the ranker."""

    def __init__(self, ranker):
        self.ranker, self.feature_spec = ranker, ranker.feature_spec

    def score(self, users, items):
        return -np.asarray(self.ranker.score(users, items))


@pytest.fixture(scope="module")
def cascade():
    split = time_split(synthetic_interactions(num_users=120, num_items=60, interactions_per_user=10), 0.2)
    retrieval = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
    Trainer(retrieval, epochs=2, batch_size=64).fit(split.examples("train"), verbose=False)
    ranker = tower_zoo.create_model("target_attention", split.data.feature_spec)
    Trainer(ranker, epochs=2, batch_size=64).fit(split.examples("train"), labels=split.labels("train")["like"],
                                                 verbose=False)
    return CascadeSimulation(split, retrieval, ranker, num_candidates=N)


def test_candidate_lists_exclude_seen_items_and_label_engaged_ones(cascade):
    lists = cascade.lists("test")
    split = cascade.split
    seen = split.train.groupby("user_id")["item_id"].unique()
    for request in range(lists.num_requests):
        ids = cascade.item_ids[lists.candidate_rows[request]]
        assert len(np.unique(ids)) == N and not np.isin(ids, seen.get(lists.user_ids[request], [])).any()
        np.testing.assert_array_equal(lists.labels[request], np.isin(ids, lists.engaged[request]))
    # the ranker's logits are its scores of each (request, candidate) pair
    np.testing.assert_allclose(lists.ranker_logits, pair_scores(cascade.ranker, lists.user_features,
                                                                cascade.item_features, lists.candidate_rows),
                               rtol=1e-5)


def test_recall_at_m_at_k_of_the_ranker_itself_and_of_its_opposite(cascade):
    itself = cascade.evaluate(cascade.ranker, M, K)
    assert itself[f"recall@{M}@{K}"] == 1.0
    assert itself[f"end_to_end_recall@{K}"] == itself[f"oracle_end_to_end_recall@{K}"]
    opposite = cascade.evaluate(_Negated(cascade.ranker), M, K)
    assert opposite[f"recall@{M}@{K}"] == 0.0          # its top 10 of 20 is the ranker's bottom 10
    with pytest.raises(ValueError, match="k <= m"):
        cascade.evaluate(cascade.ranker, 3, 5)


@pytest.mark.parametrize("task", ["rankflow", "arf"])
def test_list_wise_training_moves_the_pre_ranker_toward_the_ranker(cascade, task):
    pre_ranker = tower_zoo.create_model("dssm", cascade.split.data.feature_spec, hidden_units=(16, 8))
    pre_ranker.build_weights()
    before = cascade.evaluate(pre_ranker, M, K, part="train")[f"recall@{M}@{K}"]
    options = {"arf_m": M, "arf_k": K, "arf_temperature": 0.5} if task == "arf" else {}
    trainer = Trainer(pre_ranker, task=task, group_size=N, batch_size=8 * N, epochs=6, learning_rate=3e-3, **options)
    history = trainer.fit(**cascade.candidate_list_arrays("train"), verbose=False)
    after = cascade.evaluate(pre_ranker, M, K, part="train")[f"recall@{M}@{K}"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert after > before + 0.1, (before, after)
    if task == "arf":  # the uncertainty weights are learned with the model
        assert np.abs(trainer.loss_weights.log_variances.numpy()).min() > 1e-3
