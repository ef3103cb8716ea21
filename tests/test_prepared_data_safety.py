"""Prepared data is never destroyed or silently swapped (issue 21: items 1, 3, 4, 5, 7, 10).

* ``prepare --overwrite`` replaces only a complete prepared dataset: never the current directory, the schema's
  or its sources' directory, a run, an export or another tool's folder (item 1);
* a replace killed or failing between its renames leaves the data recoverable (item 4);
* prepared directories are locked: readers shared, writers exclusive, one clear error either way (item 5);
* a resumed ``train --data SCHEMA`` checks the data before it rebuilds anything, and a new shard matching
  the schema's glob is a data change (items 3, 7);
* the shards train and evaluate read are checked against their SHA-256 (item 10).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from prepared_helpers import random_data, schema_dict, write_dataset
from tower_zoo import cli
from tower_zoo.data.prepare import run as prepare_module
from tower_zoo.data.prepare.run import PrepareOptions, prepare
from tower_zoo.data.read.prepared import PreparedDataset
from tower_zoo.data.store.manifest import PreparedDataError

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(sys.path)}


def write_source(directory: pathlib.Path, num_rows: int = 400) -> pathlib.Path:
    """A schema whose interactions are two Parquet shards matching ``ratings/*.parquet``; its path."""
    schema_file = write_dataset(random_data(seed=3, num_rows=num_rows), directory,
                                schema_dict(interactions="ratings/*.parquet"))
    ratings = pq.read_table(directory / "ratings.parquet").to_pandas()
    (directory / "ratings").mkdir()
    half = len(ratings) // 2
    ratings.iloc[:half].to_parquet(directory / "ratings" / "part-0.parquet", index=False)
    ratings.iloc[half:].to_parquet(directory / "ratings" / "part-1.parquet", index=False)
    os.remove(directory / "ratings.parquet")
    return schema_file


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(source directory, prepared directory) written once; tests copy them."""
    root = tmp_path_factory.mktemp("original")
    schema_file = write_source(root / "source")
    prepare(str(schema_file), str(root / "prepared"), PrepareOptions(rows_per_shard=100))
    return root / "source", root / "prepared"


@pytest.fixture
def copies(original, tmp_path):
    """(schema file, prepared directory): fresh copies under ``tmp_path``."""
    source, prepared = (shutil.copytree(path, tmp_path / path.name) for path in original)
    return pathlib.Path(source) / "schema.json", pathlib.Path(prepared)


def snapshot(root: pathlib.Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys, *args) -> tuple[int, str, list[str]]:
    """``tower-zoo ARGS`` in this process: (exit status, stdout, the non-empty stderr lines)."""
    cli.FLAGS.unparse_flags()
    try:
        status = cli.main(cli.FLAGS(["tower-zoo", *args]))
    finally:
        cli.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return status, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def flip_a_byte(path: pathlib.Path) -> None:
    """Changes one byte in the middle of ``path``, keeping its size."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ============================================================================= item 1: what --overwrite replaces
def _fake_export(path: pathlib.Path) -> None:
    path.mkdir()
    (path / "item_ids.npy").write_text("ids")
    manifest = {"format_version": 2, "files": {"item_ids.npy": "0" * 64}, "model_name": "mf", "feature_spec": {}}
    (path / "manifest.json").write_text(json.dumps(manifest))


def _target(case: str, schema_file: pathlib.Path, prepared: pathlib.Path, monkeypatch) -> str:
    """Sets up ``case``; the --out that must be refused."""
    if case == "current_directory":
        monkeypatch.chdir(prepared)
        return "."
    if case == "ancestor_of_current_directory":
        monkeypatch.chdir(prepared / "train")
        return str(prepared)
    if case == "schema_directory":  # the user's folder: schema, sources and a manifest.json of its own
        shutil.copy(prepared / "manifest.json", schema_file.parent / "manifest.json")
        return str(schema_file.parent)
    if case == "foreign_manifest":
        folder = prepared.parent / "thesis"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"name": "another tool", "files": ["thesis.tex"]}))
        (folder / "thesis.tex").write_text("years of work")
        return str(folder)
    if case == "run_directory":
        (prepared / "run.json").write_text(json.dumps({"model": "mf"}))
        return str(prepared)
    if case == "export":
        _fake_export(prepared.parent / "export")
        return str(prepared.parent / "export")
    (prepared / "notes.txt").write_text("mine")      # unlisted_file: a prepared dataset plus a file of the user's
    return str(prepared)


REFUSALS = {
    "current_directory": "it is or holds the current directory",
    "ancestor_of_current_directory": "it is or holds the current directory",
    "schema_directory": "it holds the schema file",
    "foreign_manifest": "is not the manifest of a prepared dataset",
    "run_directory": "is a tower_zoo run directory (run.json)",
    "export": "is a tower_zoo export",
    "unlisted_file": "holds files its manifest.json does not list, e.g. 'notes.txt'",
}


def test_prepare_inside_a_prepared_dataset_or_export_is_refused(copies):
    schema_file, prepared = copies
    _fake_export(prepared.parent / "export")
    before = snapshot(prepared.parent)
    for inside in (prepared / "again", prepared.parent / "export" / "data"):
        with pytest.raises(ValueError, match=f"refusing to prepare into '{inside}': it lies inside the prepared "
                                             "dataset or export"):
            prepare(str(schema_file), str(inside))
    assert snapshot(prepared.parent) == before


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_overwrite_replaces_only_a_complete_prepared_dataset(copies, tmp_path, monkeypatch, capsys, case):
    schema_file, prepared = copies
    out = _target(case, schema_file, prepared, monkeypatch)
    before = snapshot(tmp_path)
    status, _, errors = run_cli(capsys, "prepare", "--data", str(schema_file), "--out", out, "--overwrite")
    assert status == 2 and len(errors) == 1, errors
    assert errors[0].startswith("tower-zoo prepare: error: refusing to replace") and REFUSALS[case] in errors[0], errors
    assert "--overwrite" in errors[0]
    assert snapshot(tmp_path) == before                                   # no file removed, none left behind


# ============================================================================= item 4: a replace cut short
def test_a_failure_between_the_renames_puts_the_old_data_back(copies, monkeypatch):
    """Without an atomic exchange, prepare renames the old directory aside and the new one into place: the
    second rename failing (injected) must leave the old data where it was."""
    from tower_zoo import fileio

    schema_file, prepared = copies
    before = snapshot(prepared)
    real_replace, failed = os.replace, []

    def failing_second_rename(source, destination, **kwargs):
        if os.path.abspath(destination) == str(prepared) and not failed:   # the new data into place
            failed.append(source)
            raise OSError(28, "No space left on device (injected)", str(destination))
        return real_replace(source, destination, **kwargs)

    monkeypatch.setattr(fileio, "exchange_paths", lambda a, b: False, raising=False)
    monkeypatch.setattr(os, "replace", failing_second_rename)
    with pytest.raises(OSError, match="injected"):
        prepare(str(schema_file), str(prepared), PrepareOptions(seed=1), overwrite=True)
    monkeypatch.undo()
    assert snapshot(prepared) == before
    assert sorted(os.listdir(prepared.parent)) == ["prepared", "source"]
    assert PreparedDataset.open(prepared).manifest["options"]["seed"] == 0


_KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from tower_zoo import fileio
from tower_zoo.data.prepare.run import PrepareOptions, prepare
target = os.path.abspath(sys.argv[2])
fileio.exchange_paths = lambda a, b: False     # the two-rename fallback
real_replace = os.replace
def replace(source, destination, **kwargs):
    real_replace(source, destination, **kwargs)
    if os.path.abspath(source) == target:        # the old data renamed aside, the new not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
prepare(sys.argv[1], target, PrepareOptions(seed=1), overwrite=True)
"""


def test_a_kill_between_the_renames_is_repaired_by_the_next_open(copies):
    schema_file, prepared = copies
    killed = subprocess.run([sys.executable, "-c", _KILLED_BETWEEN_RENAMES, str(schema_file), str(prepared)],
                            env=ENV, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not prepared.exists()                                          # the state the kill left
    assert len([p for p in prepared.parent.iterdir() if p.name.startswith(".prepared.partial-")]) == 2
    repaired = PreparedDataset.open(prepared)                             # the new, complete data goes in place
    assert repaired.manifest["options"]["seed"] == 1 and repaired.num_rows("train") > 0
    assert sorted(os.listdir(prepared.parent)) == ["prepared", "source"]
    prepare(str(schema_file), str(prepared), PrepareOptions(seed=2), overwrite=True)
    assert PreparedDataset.open(prepared).manifest["options"]["seed"] == 2
    assert sorted(os.listdir(prepared.parent)) == ["prepared", "source"]


# ============================================================================= item 5: locks
def test_prepare_refuses_to_replace_data_a_running_trainer_reads(copies, tmp_path, capsys):
    schema_file, prepared = copies
    run = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "tower_zoo.cli", "train", "--data", str(prepared), "--model",
                                "mf", "--epochs", "1000", "--batch_size", "16", "--out", str(run), "--noevaluate"],
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and trainer.poll() is None:
            if (run / "run.json").is_file() and json.loads((run / "run.json").read_text())["status"] == "training":
                break
            time.sleep(0.2)
        assert trainer.poll() is None, trainer.stderr.read()[-2000:]
        before = snapshot(prepared)
        status, _, errors = run_cli(capsys, "prepare", "--data", str(schema_file), "--out", str(prepared),
                                    "--overwrite")
        assert status == 2 and len(errors) == 1, errors
        assert errors[0].startswith(f"tower-zoo prepare: error: prepared directory {str(prepared)!r} is in use by "
                                    "another tower-zoo process"), errors
        assert snapshot(prepared) == before
    finally:
        trainer.kill()
        trainer.wait()
    prepare(str(schema_file), str(prepared), PrepareOptions(seed=1), overwrite=True)   # the lock died with it
    assert PreparedDataset.open(prepared).manifest["options"]["seed"] == 1
    assert sorted(os.listdir(tmp_path)) == ["prepared", "run", "source"]


def test_a_reader_is_refused_while_prepare_replaces_the_directory(copies, monkeypatch):
    schema_file, prepared = copies
    seen = []
    real_add = prepare_module.BucketWriter.add

    def add_and_open(self, bucket):
        real_add(self, bucket)
        if not seen:
            try:
                PreparedDataset.open(prepared)
                seen.append("opened")
            except OSError as err:
                seen.append(str(err))

    monkeypatch.setattr(prepare_module.BucketWriter, "add", add_and_open)
    prepare(str(schema_file), str(prepared), PrepareOptions(seed=1), overwrite=True)
    assert seen == [f"prepared directory {str(prepared)!r} is being written by a running `tower-zoo prepare`; "
                    "wait for it to finish"]
    assert PreparedDataset.open(prepared).manifest["options"]["seed"] == 1


# ============================================================================= items 3, 7, 10: resume and verify
def _add_shard(source: pathlib.Path, new_item: bool) -> pathlib.Path:
    """A third shard matching the glob: 50 later interactions, one of them with an item never seen before;
    or (not ``new_item``) every interaction again, which keeps the vocabularies (each count doubles)."""
    frame = pd.concat([pd.read_parquet(source / "ratings" / f"part-{i}.parquet") for i in (0, 1)], ignore_index=True)
    if new_item:
        frame = frame.iloc[:50].copy()
        frame.loc[0, "item_id"] = 999
    frame["timestamp"] += 1_000
    path = source / "ratings" / "part-2.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_a_refused_resume_leaves_the_prepared_data_and_a_new_shard_is_a_change(copies, tmp_path, capsys):
    schema_file, _ = copies
    source, run = schema_file.parent, tmp_path / "run"
    train = ["train", "--data", str(schema_file), "--model", "mf", "--batch_size", "64", "--out", str(run),
             "--noevaluate", "--noscann"]
    status, _, errors = run_cli(capsys, *train, "--epochs", "1")
    assert status == 0, errors
    trained_on = snapshot(run / "prepared")
    shard = _add_shard(source, new_item=True)
    status, _, errors = run_cli(capsys, *train, "--epochs", "2")
    assert status == 2 and len(errors) == 1, errors
    assert f"{shard} (new)" in errors[0] and "--allow_data_change" in errors[0], errors
    assert snapshot(run / "prepared") == trained_on                       # checked first, nothing rebuilt
    status, out, errors = run_cli(capsys, "describe", "--data", str(schema_file))
    assert status == 0 and "450 interactions in 3 file(s)" in out, errors
    status, out, errors = run_cli(capsys, "describe", "--data", str(run / "prepared"))
    assert status == 0 and "400 interactions prepared in" in out, errors
    assert f"the sources changed since prepare: {shard} (new)" in out
    status, _, errors = run_cli(capsys, "evaluate", "--run", str(run), "--noscann", "--ks", "10")
    assert status == 0, errors                                            # the run's data is still there
    assert len(errors) == 1 and "changed since it was prepared" in errors[0] and f"{shard} (new)" in errors[0], \
        errors                                                            # ... and the changed sources are said
    status, _, errors = run_cli(capsys, "evaluate", "--run", str(run), "--noscann", "--ks", "10,1000000")
    assert status == 2 and errors == [f"tower-zoo evaluate: error: --ks 1000000 exceeds the 40 items of "
                                      f"{run / 'prepared'}"], errors
    status, _, errors = run_cli(capsys, *train, "--epochs", "2", "--allow_data_change")
    assert status == 2 and len(errors) == 1 and "gives other vocabularies (feature spec)" in errors[0], errors
    assert snapshot(run / "prepared") == trained_on                       # item 999: the model cannot go on

    _add_shard(source, new_item=False)
    status, _, errors = run_cli(capsys, *train, "--epochs", "2", "--allow_data_change")
    assert status == 0, errors
    assert PreparedDataset.open(run / "prepared").stats["interactions"] == 800
    status, out, _ = run_cli(capsys, "describe", "--data", str(schema_file))
    assert "800 interactions in 3 file(s)" in out                         # what training read, describe counts
    record = json.loads((run / "run.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert "data_fingerprint" in record["setting_changes"][-1]["changes"]
    assert sorted(os.listdir(run)) == ["checkpoints", "metrics.json", "prepared", "run.json"]   # no leftovers

    edited = pd.read_parquet(source / "ratings" / "part-1.parquet")      # an edited shard
    edited.loc[0, "rating"] = 6 - edited.loc[0, "rating"]
    edited.to_parquet(source / "ratings" / "part-1.parquet", index=False)
    trained_on = snapshot(run / "prepared")
    status, _, errors = run_cli(capsys, *train, "--epochs", "3")
    assert status == 2 and f"{source / 'ratings' / 'part-1.parquet'} (changed)" in errors[0], errors
    assert snapshot(run / "prepared") == trained_on

    shard = sorted((run / "prepared" / "test_queries").glob("part-*.parquet"))[0]
    flip_a_byte(shard)                                                    # item 10: evaluate reads verified shards
    status, _, errors = run_cli(capsys, "evaluate", "--run", str(run), "--noscann", "--ks", "10")
    assert status == 2 and len(errors) == 1, errors
    assert errors[0] == f"tower-zoo evaluate: error: {shard}: SHA-256 differs from the manifest (corrupt or " \
                        "modified since prepare); prepare the data again"


def test_a_modified_shard_of_the_same_size_is_refused_before_it_is_read(copies, tmp_path, capsys):
    _, prepared = copies
    shard = prepared / "train" / "part-00001.parquet"
    flip_a_byte(shard)
    data = PreparedDataset.open(prepared)                                 # sizes only: opening stays cheap
    with pytest.raises(PreparedDataError, match=f"{shard}: SHA-256 differs from the manifest"):
        data.example_source("train")
    with pytest.raises(PreparedDataError, match=f"{shard}: SHA-256 differs from the manifest"):
        next(data.exposure_chunks("train"))
    status, _, errors = run_cli(capsys, "train", "--data", str(prepared), "--model", "mf", "--epochs", "1",
                                "--batch_size", "64", "--out", str(tmp_path / "run"), "--noevaluate")
    assert status == 2 and len(errors) == 1 and f"{shard}: SHA-256 differs from the manifest" in errors[0], errors
    next(data.query_chunks("test"))                                       # the parts left alone still read
