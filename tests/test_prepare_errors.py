"""Bad data gets one clear error naming file, column and row; an interrupted prepare leaves nothing usable."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prepared_helpers import random_data, schema_dict, write_dataset
from tower_zoo.data.prepare import run as prepare_module
from tower_zoo.data.prepare.run import PrepareOptions, prepare
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.store.manifest import PreparedDataError


def _source(tmp_path, **schema_overrides):
    directory = tmp_path / "source"
    schema_file = write_dataset(random_data(seed=0, num_rows=200), directory, schema_dict(**schema_overrides))
    return directory, schema_file


def _rewrite(path, edit):
    table = pq.read_table(path).to_pandas()
    pq.write_table(pa.Table.from_pandas(edit(table), preserve_index=False), path)


def _float_user_with_nan(frame):
    frame["user_id"] = frame["user_id"].astype(float)
    frame.loc[3, "user_id"] = np.nan
    return frame


def _fractional_item(frame):
    frame["item_id"] = frame["item_id"].astype(float)
    frame.loc[7, "item_id"] = 2.5
    return frame


def _duplicate_item(frame):
    frame.loc[4, "item_id"] = frame.loc[2, "item_id"]
    return frame


def _null_gender(frame):
    frame.loc[5, "gender"] = None
    return frame


def _make_case(case, directory):
    """Damages the source files for ``case``; returns schema overrides (or None)."""
    ratings = directory / "ratings.parquet"
    if case == "missing_column":
        _rewrite(ratings, lambda f: f.drop(columns=["timestamp"]))
    elif case == "wrong_type":
        _rewrite(ratings, lambda f: f.assign(rating=f["rating"].astype(str)))
    elif case == "nan_id":
        _rewrite(ratings, _float_user_with_nan)
    elif case == "fractional_id":
        _rewrite(ratings, _fractional_item)
    elif case == "empty_shard":
        os.makedirs(directory / "shards")
        os.replace(ratings, directory / "shards" / "part-0.parquet")
        pq.write_table(pq.read_table(directory / "shards" / "part-0.parquet").slice(0, 0),
                       directory / "shards" / "part-1.parquet")
        return {"interactions": "shards/*.parquet"}
    elif case == "unreadable_file":
        ratings.write_bytes(b"PAR1 this is not parquet PAR1")
    elif case == "schema_names_absent_column":
        return {"features": {"user": {"age": {"kind": "numeric", "column": "agee"}}, "item": {}}}
    elif case == "duplicate_ids":
        _rewrite(directory / "items.parquet", _duplicate_item)
    elif case == "null_feature":
        _rewrite(directory / "users.parquet", _null_gender)
    elif case == "no_files":
        return {"interactions": "nothing/*.parquet"}
    elif case == "label_not_binary":
        _rewrite(ratings, lambda f: f.assign(click=(f["rating"] > 2).astype(int) + (f.index == 9)))
        return {"labels": {"click": "click"}}
    elif case == "mixed_id_types":
        os.makedirs(directory / "shards")
        frame = pq.read_table(ratings).to_pandas()
        pq.write_table(pa.Table.from_pandas(frame.iloc[:100]), directory / "shards" / "a.parquet")
        pq.write_table(pa.Table.from_pandas(frame.iloc[100:].assign(user_id=lambda f: "u" + f["user_id"].astype(str))),
                       directory / "shards" / "b.parquet")
        return {"interactions": "shards/*.parquet"}
    return None


CASES = {
    "missing_column": (ValueError, r"ratings\.parquet: column 'timestamp' \(columns\.timestamp in the schema\) does "
                                   r"not exist; the file has columns"),
    "wrong_type": (ValueError, r"ratings\.parquet: column 'rating' has type (large_)?string; expected numbers"),
    "nan_id": (ValueError, r"ratings\.parquet: column 'user_id' row 4: null/NaN id"),
    "fractional_id": (ValueError, r"ratings\.parquet: column 'item_id' row 8: id 2\.5 is not an integer or a string"),
    "empty_shard": (ValueError, r"part-1\.parquet: the file holds no rows \(an empty shard\)"),
    "unreadable_file": (ValueError, r"ratings\.parquet: unreadable parquet file"),
    "schema_names_absent_column": (ValueError, r"users\.parquet: column 'agee' \(features\.user\.age in the schema\) "
                                               r"does not exist"),
    "duplicate_ids": (ValueError, r"items table: duplicate id \d+ in column 'item_id' \(.*items\.parquet row 3 and "
                                  r".*items\.parquet row 5\)"),
    "null_feature": (ValueError, r"users\.parquet row 6: column 'gender' \(feature 'gender'\) is null/NaN"),
    "no_files": (FileNotFoundError, r"interactions: no files match '.*nothing/\*\.parquet'"),
    "label_not_binary": (ValueError, r"ratings\.parquet: column 'click' row 10: label 'click' must be 0 or 1"),
    "mixed_id_types": (ValueError, r"b\.parquet: column 'user_id' holds (large_)?string ids, but other files or tables hold "
                                   r"integer ids"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_is_one_clear_error_and_nothing_is_written(tmp_path, case):
    directory, schema_file = _source(tmp_path)
    overrides = _make_case(case, directory)
    if overrides:
        schema_file.write_text(json.dumps({**json.loads(schema_file.read_text()), **overrides}))
    error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        prepare(str(schema_file), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["source"]  # no output, no staging directory left behind


def test_a_failure_midway_leaves_the_previous_directory_untouched(tmp_path, monkeypatch):
    _, schema_file = _source(tmp_path)
    out = tmp_path / "out"
    prepare(str(schema_file), str(out))
    before = {name: (out / name).read_bytes() for name in ("manifest.json", "stats.json")}

    def failing_add(self, bucket):
        raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(prepare_module.BucketWriter, "add", failing_add)
    with pytest.raises(RuntimeError, match="injected"):
        prepare(str(schema_file), str(out), PrepareOptions(max_bucket_rows=50), overwrite=True)
    assert {name: (out / name).read_bytes() for name in before} == before
    assert sorted(os.listdir(tmp_path)) == ["out", "source"]
    PreparedDataset.open(out)
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        prepare(str(schema_file), str(out))


_KILLED_PREPARE = """
import sys, time
import tower_zoo
from tower_zoo.data.prepare import run as module
real_add = module.BucketWriter.add
def slow_add(self, bucket):
    real_add(self, bucket)
    print("one bucket written", flush=True)
    time.sleep(120)
module.BucketWriter.add = slow_add
module.prepare(sys.argv[1], sys.argv[2], module.PrepareOptions(max_bucket_rows=50))
"""


def test_a_killed_prepare_leaves_no_directory_that_open_accepts(tmp_path):
    _, schema_file = _source(tmp_path)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-c", _KILLED_PREPARE, str(schema_file), str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert process.stdout.readline().strip() == "one bucket written"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not out.exists()
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    assert len(partial) == 1 and any(path.is_file() for path in partial[0].rglob("*"))
    with pytest.raises(PreparedDataError, match="no manifest.json"):
        PreparedDataset.open(partial[0])
    time.sleep(0.1)
    prepare(str(schema_file), str(out))  # a later prepare removes the dead one's staging directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "source"]
    assert PreparedDataset.open(out).num_rows("train") > 0


def test_csv_interactions_with_a_header_and_a_delimiter(tmp_path):
    directory, schema_file = _source(tmp_path)
    frame = pq.read_table(directory / "ratings.parquet").to_pandas()
    frame.to_csv(directory / "ratings.csv", sep=";", index=False)
    os.remove(directory / "ratings.parquet")
    schema = json.loads(schema_file.read_text())
    schema["interactions"] = {"path": "ratings.csv", "delimiter": ";"}
    schema_file.write_text(json.dumps(schema))
    prepare(str(schema_file), str(tmp_path / "out"))
    assert PreparedDataset.open(tmp_path / "out").stats["interactions"] == len(frame)
    bad = frame.astype({"user_id": object})
    bad.loc[11, "user_id"] = ""
    bad.to_csv(directory / "ratings.csv", sep=";", index=False)
    with pytest.raises(ValueError, match=r"ratings\.csv: column 'user_id' row 12: null/NaN id"):
        prepare(str(schema_file), str(tmp_path / "out2"))


def test_missing_values_are_allowed_when_the_schema_says_so(tmp_path):
    directory, schema_file = _source(tmp_path)
    _rewrite(directory / "users.parquet", _null_gender)
    schema = json.loads(schema_file.read_text())
    schema["features"]["user"]["gender"] = {"kind": "categorical", "allow_missing": True}
    schema_file.write_text(json.dumps(schema))
    prepare(str(schema_file), str(tmp_path / "out"))
    users, ids = PreparedDataset.open(tmp_path / "out").user_table()
    assert users["gender"][list(ids).index(6)] == 1  # OOV
    assert pd.Series(users["gender"]).value_counts()[1] == 1


def test_a_source_changed_during_prepare_is_an_error(tmp_path, monkeypatch):
    directory, schema_file = _source(tmp_path)
    real_add = prepare_module.BucketWriter.add

    def add_then_touch(self, bucket):
        real_add(self, bucket)
        with open(directory / "items.parquet", "ab") as handle:
            handle.write(b"\0")

    monkeypatch.setattr(prepare_module.BucketWriter, "add", add_then_touch)
    with pytest.raises(ValueError, match=r"items\.parquet: the file changed while it was being prepared"):
        prepare(str(schema_file), str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path)) == ["source"]
