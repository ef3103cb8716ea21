"""Batch recommendation: every stored user (or a Parquet/CSV file of users) through the top-k SavedModel in
chunks, equal to exact search with each user's items excluded; an interrupted run resumes from its finished
chunks; the output appears whole or not at all; mistakes are one line from the CLI."""

import errno
import os
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
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
    with pytest.raises(ValueError, match=r"users file '.*bad.csv': feature 'history': row 1 holds '1 x 2', not int"):
        recommend(str(path), str(tmp_path / "bad.parquet"), k=5, users=str(tmp_path / "bad.csv"))
    subset.assign(user_id=[4.0, 1.5, 43.0]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=r"users file '.*bad.parquet', rows 1-3: feature 'user_id': id 1.5 at row 2 "):
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


def test_a_users_file_replaced_with_the_same_size_and_time_starts_over(exported, tmp_path):
    path, rows, want_ids, _ = exported
    users, out = tmp_path / "users.parquet", tmp_path / "recs.parquet"
    first = rows.iloc[10:20].reset_index(drop=True)
    first.to_parquet(users)
    status = os.stat(users)

    def stop_after_one(chunk, _):
        if chunk == 1:
            raise Interrupted
    with pytest.raises(Interrupted):
        recommend(str(path), str(out), k=5, users=str(users), chunk_size=5, progress=stop_after_one)
    second = first.assign(user_id=rows["user_id"].iloc[30:40].to_numpy())  # other users, same byte size
    second.to_parquet(users)
    os.utime(users, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert os.path.getsize(users) == status.st_size and os.stat(users).st_mtime_ns == status.st_mtime_ns
    assert recommend(str(path), str(out), k=5, users=str(users), chunk_size=5)["resumed"] == 0
    assert sorted(pd.read_parquet(out)["user_id"].unique()) == sorted(second["user_id"])


def test_recommend_errors_name_the_users_file_its_row_and_the_file_not_written(exported, tmp_path, monkeypatch,
                                                                              capsys):
    path, rows, _, _ = exported
    bad = rows.iloc[:8].assign(user_id=[1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 7.0, 8.0])
    bad.to_parquet(tmp_path / "bad.parquet")
    csv = rows.iloc[:8].assign(history=[" ".join(map(str, h)) for h in rows["history"].iloc[:8]],
                               exclude=[" ".join(map(str, e)) for e in rows["exclude"].iloc[:8]])
    csv.loc[5, "exclude"] = "7 seven"
    csv.to_csv(tmp_path / "bad.csv", index=False)
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet at all")
    rows.iloc[:3].drop(columns=["history"]).to_parquet(tmp_path / "nohistory.parquet")
    (tmp_path / "adir.parquet").mkdir()
    (tmp_path / "empty.csv").write_text("user_id,segment,history,exclude\n")
    cases = [("bad.parquet", f"users file '{tmp_path}/bad.parquet', rows 5-8: feature 'user_id': id 6.5 at row 6 "),
             ("bad.csv", f"users file '{tmp_path}/bad.csv': feature 'exclude': row 6 holds '7 seven'"),
             ("garbage.parquet", f"users file '{tmp_path}/garbage.parquet': "),
             ("nohistory.parquet", f"users file '{tmp_path}/nohistory.parquet', rows 1-3: the request lacks "
                                   "feature(s) ['history']"),
             ("adir.parquet", f"users file '{tmp_path}/adir.parquet' is a directory, not a file"),
             ("empty.csv", f"users file '{tmp_path}/empty.csv' holds no user rows")]
    for name, message in cases:
        code = run_cli(["tower-zoo", "recommend", f"--export_dir={path}", f"--out={tmp_path}/r.parquet", "--k=3",
                        "--chunk_size=4", f"--users={tmp_path / name}"])
        err = capsys.readouterr().err
        assert_one_error_line(code, err)
        assert code == 2 and message in err, err
    real_write, calls = pq.write_table, []

    def disk_full_at_the_second_chunk(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(table, where, *args, **kwargs)
    monkeypatch.setattr(pq, "write_table", disk_full_at_the_second_chunk)
    out = tmp_path / "recs.parquet"
    code = run_cli(["tower-zoo", "recommend", f"--export_dir={path}", f"--out={out}", "--k=3", "--chunk_size=16"])
    err = capsys.readouterr().err
    assert_one_error_line(code, err)
    assert f"'{tmp_path}/.recs.parquet.parts/chunk-000002.parquet': cannot write it: No space left on device" in err
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / ".recs.parquet.parts")) == ["chunk-000001.parquet", "progress.json"]
    assert recommend(str(path), str(out), k=3, chunk_size=16) == {"users": 60, "chunks": 4, "resumed": 1}


@pytest.fixture(scope="module")
def whole_corpus_export(tmp_path_factory):
    """An export whose top-k model returns the whole corpus, so seen items are either all there or all gone."""
    data = synthetic_interactions(num_users=20, num_items=30, interactions_per_user=5)
    model = tower_zoo.create_model("mf", data.feature_spec, embedding_dim=8)
    model.build_weights()
    rows = raw_user_rows(data)
    path = tmp_path_factory.mktemp("exports") / "whole"
    serving.export(model, data.encode_table("item"), data.items["item_id"].to_numpy(np.int64), str(path),
                   users=rows, k=30)
    return path, rows


def test_seen_items_are_left_out_by_default_in_query_recommend_and_search_users(whole_corpus_export, tmp_path,
                                                                               capsys):
    path, rows = whole_corpus_export
    seen = {int(u): set(e) for u, e in zip(rows["user_id"], rows["exclude"])}
    users = [int(u) for u in rows["user_id"].iloc[:3]]
    retriever = serving.load(str(path))
    for include_seen in (False, True):
        ids, _ = retriever.search_users(users, 30, **({"include_seen": True} if include_seen else {}))
        capsys.readouterr()
        flag = ["--include_seen"] if include_seen else []
        assert run_cli(["tower-zoo", "query", f"--export_dir={path}", f"--user_id={users[0]}", "--k=30", *flag]) == 0
        printed = [int(m) for m in re.findall(r"^ +\d+\. (\d+)  \(", capsys.readouterr().out, re.MULTILINE)]
        out = tmp_path / f"recs-{include_seen}.parquet"
        assert run_cli(["tower-zoo", "recommend", f"--export_dir={path}", f"--out={out}", "--k=30", *flag]) == 0
        recommended = as_lists(pd.read_parquet(out), 30)
        for user, got in [*zip(users, [list(r[r >= 0]) for r in ids]), (users[0], printed), *recommended.items()]:
            want = 30 if include_seen else 30 - len(seen[user])
            assert len(got) == len(set(got)) == want and bool(set(got) & seen[user]) == include_seen, (user, got)
    with pytest.raises(ValueError, match=r"k must be an integer from 1 to the corpus size \(30 items\), got "
                                         r"k=10000000000"):
        retriever.search_raw(rows.iloc[:2], k=10 ** 10)
    with pytest.raises(ValueError, match=r"corpus size \(30 items\), got k=10000000000"):
        retriever.search({"user_id": np.zeros(2, np.int64)}, k=10 ** 10)
    with pytest.raises(ValueError, match=r"corpus size \(30 items\), got k=31"):
        retriever.search_users(users, k=31)
