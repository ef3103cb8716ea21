import json

from benchmarks.baselines import regressions


def test_regressions_flag_only_drops_beyond_tolerance(tmp_path):
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"movielens-100k": {"8": {"dssm": {"recall@50": 0.45, "tolerance": 0.02},
                                                         "mf": {"recall@50": 0.34, "tolerance": 0.02}}}}))
    rows = {"dssm": {"recall@50": 0.44}, "mf": {"recall@50": 0.30}}
    flagged = regressions(rows, "movielens-100k", 8, str(path))
    assert len(flagged) == 1 and flagged[0].startswith("REGRESSION mf: Recall@50 0.3000 < baseline 0.3400")
    assert regressions(rows, "movielens-1m", 8, str(path)) == []


def test_committed_baselines_cover_every_retrieval_model():
    import tower_zoo

    baselines = json.load(open("benchmarks/baselines.json"))["movielens-100k"]["8"]
    assert set(tower_zoo.list_models(kind="retrieval")) <= set(baselines)
    assert all(0 < b["recall@50"] < 1 and b["tolerance"] > 0 for b in baselines.values())
