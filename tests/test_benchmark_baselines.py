import json

import tower_zoo
from benchmarks.baselines import regressions


def test_regressions_flag_only_drops_beyond_tolerance(tmp_path):
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"movielens-100k": {"retrieval": {"metric": "recall@50", "models": {
        "dssm": {"recall@50": 0.45, "tolerance": 0.02}, "mf": {"recall@50": 0.34, "tolerance": 0.02}}}}}))
    rows = {"dssm": {"recall@50": 0.44}, "mf": {"recall@50": 0.30}}
    flagged = regressions(rows, "movielens-100k", "retrieval", str(path))
    assert len(flagged) == 1 and flagged[0].startswith("REGRESSION mf: recall@50 0.3000 < baseline 0.3400")
    assert regressions(rows, "movielens-1m", "retrieval", str(path)) == []
    assert regressions(rows, "movielens-100k", "preranking", str(path)) == []


def test_committed_baselines_cover_every_registered_model():
    baselines = json.load(open("benchmarks/baselines.json"))["movielens-100k"]
    assert set(tower_zoo.list_models(kind="retrieval")) <= set(baselines["retrieval"]["models"])
    assert set(tower_zoo.list_models(kind="pre_ranking")) <= {label.split(" (")[0]
                                                              for label in baselines["preranking"]["models"]}
    for benchmark in baselines.values():
        metric = benchmark["metric"]
        assert all(0 < b[metric] < 1 and b["tolerance"] > 0 for b in benchmark["models"].values())
