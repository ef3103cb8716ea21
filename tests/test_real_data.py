"""Learning on real MovieLens-100K (leave-last-out): models must beat the most-popular baseline."""

import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, movielens_100k
from tower_zoo.runs import evaluate_split
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return leave_last_out(movielens_100k())


@pytest.mark.parametrize("name,epochs,margin", [("dssm", 3, 1.5), ("mf", 3, 1.1), ("dat", 3, 1.5),
                                                ("poly_encoder", 3, 1.5)])
def test_model_beats_most_popular_on_recall_at_50(split, name, epochs, margin):
    model = tower_zoo.create_model(name, split.data.feature_spec)
    Trainer(model, epochs=epochs, batch_size=512, seed=0).fit(split.examples("train"), verbose=False)
    reports = evaluate_split(model, split, ks=(10, 50), use_scann=True)
    ours = reports["model"].metrics["exact"]["recall@50"]
    popular = reports["popularity"].metrics["exact"]["recall@50"]
    assert popular == pytest.approx(0.1983, abs=1e-3)   # deterministic: training counts only
    assert ours > margin * popular, (ours, popular)
    assert reports["model"].ann_recall["ann_recall@10"] > 0.7   # poly_encoder: ANN shortlist + exact re-score
