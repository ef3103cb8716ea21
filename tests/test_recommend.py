"""Batch recommendation: every stored user (or a Parquet/CSV file of users) through the top-k SavedModel in
chunks, equal to exact search with each user's items excluded; an interrupted run resumes from its finished
chunks; the output appears whole or not at all; mistakes are one line from the CLI."""

import os

import numpy as np
import pandas as pd
import pytest

import tower_zoo
from tower_zoo import serving
from tower_zoo.data import synthetic_interactions
from tower_zoo.evaluation.index import ExactIndex
from tower_zoo.runs import raw_user_rows
from tower_zoo.serving.batch import recommend

from test_cli_fuzz import assert_one_error_line, run_cli


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    data = synthetic_interactions(num_users=60, num_items=300, interactions_per_user=5)
    model = tower_zoo.create_model("mf", data.feature_spec, embedding_dim=8)
    model.build_weights()
    items, ids = data.encode_table("item"), data.items["item_id"].to_numpy(np.int64)
    rows = raw_user_rows(data)
    path = tmp_path_factory.mktemp("exports") / "mf"
    serving.export(model, items, ids, str(path), users=rows, k=20)
    features = data.feature_spec.encode(rows, side="user")
    want_ids, want_scores = ExactIndex(model.item_embedding(items).numpy(), ids).search(
        model.user_embedding(features).numpy(), 20, list(rows["exclude"]))
    return path, rows, want_ids, want_scores


def as_lists(frame: pd.DataFrame, k: int) -> dict[int, list[int]]:
    assert (frame.groupby("user_id")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))).all()
    return {int(u): list(g.sort_values("rank")["item_id"]) for u, g in frame.groupby("user_id")}


def test_every_stored_user_in_chunks_equals_exact_search_excluding_seen_items(exported, tmp_path):
    path, rows, want_ids, want_scores = exported
    summary = recommend(str(path), str(tmp_path / "recs.parquet"), k=10, chunk_size=7)
    assert summary == {"users": 60, "chunks": 9, "resumed": 0}
    recs = pd.read_parquet(tmp_path / "recs.parquet")
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score"] and len(recs) == 600
    got = as_lists(recs, 10)
    for row, user in enumerate(rows["user_id"]):
        assert got[user] == list(want_ids[row, :10]), user
    first = recs[recs.user_id == rows["user_id"][0]].sort_values("rank")["score"].to_numpy()
    np.testing.assert_allclose(first, want_scores[0, :10], rtol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["recs.parquet"]                # the chunk files are gone


def test_an_interrupted_run_resumes_from_its_finished_chunks(exported, tmp_path):
    path, rows, want_ids, _ = exported
    out = tmp_path / "recs.parquet"

    def stop_after_three(chunk, _):
        if chunk == 3:
            raise Interrupted
    with pytest.raises(Interrupted):
        recommend(str(path), str(out), k=5, chunk_size=10, progress=stop_after_three)
    assert not out.exists() and len(os.listdir(tmp_path / ".recs.parquet.parts")) == 4   # 3 chunks + progress
    summary = recommend(str(path), str(out), k=5, chunk_size=10)
    assert summary == {"users": 60, "chunks": 6, "resumed": 3}
    assert as_lists(pd.read_parquet(out), 5) == {u: list(want_ids[r, :5]) for r, u in enumerate(rows["user_id"])}
    with pytest.raises(Interrupted):                                         # other settings start over
        recommend(str(path), str(tmp_path / "again.parquet"), k=5, chunk_size=10, progress=stop_after_three)
    assert recommend(str(path), str(tmp_path / "again.parquet"), k=4, chunk_size=10)["resumed"] == 0


def test_users_from_a_csv_file_with_space_separated_histories(exported, tmp_path):
    path, rows, want_ids, _ = exported
    subset = rows.iloc[[3, 10, 42]]
    csv = subset.assign(history=[" ".join(map(str, h)) for h in subset["history"]],
                        exclude=[" ".join(map(str, e)) for e in subset["exclude"]])
    csv.to_csv(tmp_path / "users.csv", index=False)
    recommend(str(path), str(tmp_path / "recs.parquet"), k=20, users=str(tmp_path / "users.csv"), chunk_size=2)
    got = as_lists(pd.read_parquet(tmp_path / "recs.parquet"), 20)
    assert got == {int(rows["user_id"][r]): list(want_ids[r]) for r in (3, 10, 42)}
    csv.assign(history=["1 x 2", "", ""]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="feature 'history': row 0 holds '1 x 2', not integer ids"):
        recommend(str(path), str(tmp_path / "bad.parquet"), k=5, users=str(tmp_path / "bad.csv"))
    subset.assign(user_id=[4.0, 1.5, 43.0]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"users rows 0-2 of .*bad.parquet'?: feature 'user_id': id 1.5 at row 1"):
        recommend(str(path), str(tmp_path / "out.parquet"), k=5, users=str(tmp_path / "bad.parquet"))


def test_cli_recommend_and_its_one_line_errors(exported, tmp_path, capsys):
    path = exported[0]
    out = tmp_path / "recs.parquet"
    assert run_cli(["tower-zoo", "recommend", f"--export_dir={path}", f"--out={out}", "--k=3",
                    "--chunk_size=16"]) == 0
    assert "top-3 for 60 users written to" in capsys.readouterr().out and len(pd.read_parquet(out)) == 180
    for argv, message in [
        ([f"--out={out}", "--k=3"], "exists; pass --overwrite to replace it"),
        ([f"--out={tmp_path}/r.parquet", "--k=21"], "--k 21: the top-k model of export"),
        ([f"--out={tmp_path}/r.parquet", "--users=/nonexistent.parquet"], "'/nonexistent.parquet': no such users"),
        ([f"--out={tmp_path}/r.parquet", "--chunk_size=0"], "--chunk_size must be >= 1"),
        ([], "recommend needs --export_dir DIR (a retrieval export) and --out FILE"),
    ]:
        code = run_cli(["tower-zoo", "recommend", f"--export_dir={path}", *argv])
        err = capsys.readouterr().err
        assert_one_error_line(code, err)
        assert code == 2 and message in err, err


def test_a_pre_ranking_export_is_refused_by_recommend_and_query(tmp_path, capsys):
    data = synthetic_interactions(num_users=20, num_items=50, interactions_per_user=3)
    model = tower_zoo.create_model("int_tower", data.feature_spec)
    model.build_weights()
    serving.export(model, data.encode_table("item"), data.items["item_id"].to_numpy(np.int64),
                   str(tmp_path / "e"), users=raw_user_rows(data))
    for argv, message in [(["recommend", f"--out={tmp_path}/r.parquet"], "is a pre_ranking export (int_tower)"),
                          (["query", "--user_id=1"], "query serves retrieval exports")]:
        code = run_cli(["tower-zoo", argv[0], f"--export_dir={tmp_path}/e", *argv[1:]])
        err = capsys.readouterr().err
        assert_one_error_line(code, err)
        assert code == 2 and message in err, err
