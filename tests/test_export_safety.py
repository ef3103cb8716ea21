"""Exports never destroy data: --overwrite replaces only a complete tower_zoo export, atomically (a kill at
any step leaves a complete export at the served path), leftovers are cleaned, relative paths load, and the
files follow the umask."""

import json
import os
import pathlib
import re
import signal
import stat

import numpy as np
import pytest

import tower_zoo
from tower_zoo import serving
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.serving import directory


def fake_export(path: pathlib.Path, content: str, version: int = directory.FORMAT_VERSION) -> pathlib.Path:
    """A small directory that passes as a complete export (no TensorFlow needed)."""
    (path / "sub").mkdir(parents=True)
    (path / "item_ids.npy").write_text(content)
    (path / "sub" / "part").write_text(content * 3)
    manifest = {"format_version": version, "files": directory.checksums(path), "model_name": content,
                "feature_spec": {}, "scann_config": {}, "scann_depth": 0}
    (path / directory.MANIFEST).write_text(json.dumps(manifest))
    return path


def served(path: pathlib.Path) -> str | None:
    """The content of the complete export at ``path``, None if there is none."""
    return directory.read_manifest(path)["model_name"] if directory.is_complete_export(path) else None


def _install_killed_at(step: int, target: pathlib.Path, exchange: bool) -> bool:
    """In a forked child, stages export "new" and installs it over ``target``, SIGKILLed at the ``step``-th
    file-system mutation. Returns True if the child was killed, False if it finished first."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            count = [0]

            def counted(function):
                def wrapper(*args, **kwargs):
                    count[0] += 1
                    if count[0] == step:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return function(*args, **kwargs)
                return wrapper

            for name in ("replace", "rename", "unlink", "rmdir", "mkdir"):
                setattr(os, name, counted(getattr(os, name)))
            directory._exchange = counted(directory._exchange if exchange else (lambda a, b: False))
            staging = directory.make_staging(target)
            (staging / "item_ids.npy").write_text("new")
            (staging / "sub").mkdir()
            (staging / "sub" / "part").write_text("new" * 3)
            manifest = {"format_version": directory.FORMAT_VERSION, "files": directory.checksums(staging),
                        "model_name": "new", "feature_spec": {}, "scann_config": {}, "scann_depth": 0}
            (staging / directory.MANIFEST).write_text(json.dumps(manifest))
            directory.install(staging, target)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


@pytest.mark.parametrize("exchange", [True, False], ids=["rename-exchange", "rename-aside"])
def test_a_kill_at_every_step_of_a_replace_leaves_a_complete_export(tmp_path, exchange):
    outcomes = []
    for step in range(1, 40):
        target = fake_export(tmp_path / f"s{step}" / "export", "old")
        killed = _install_killed_at(step, target, exchange)
        if exchange:  # one atomic swap: the served path is never empty or partial, even before any repair
            assert served(target) in ("old", "new"), step
        with_leftovers = len(directory.leftovers(target))
        directory.clean_leftovers(target)  # what the next export or load does
        assert served(target) in ("old", "new"), step
        assert directory.leftovers(target) == [] and sorted(os.listdir(target.parent)) == ["export"], step
        outcomes.append((served(target), with_leftovers))
        if not killed:
            break
    assert outcomes[-1][0] == "new" and len(outcomes) >= 6, outcomes   # the kill points were all visited
    assert any(n for _, n in outcomes)                                 # some kills did leave leftovers


def test_overwrite_refuses_anything_but_a_complete_export(tmp_path, monkeypatch):
    check = directory.check_target
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="replaces only a complete tower_zoo export.*manifest.json not found"):
        check(plain, overwrite=True)
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True"):
        check(plain, overwrite=False)
    export = fake_export(tmp_path / "export", "old")
    check(export, overwrite=True)                                       # a complete export may be replaced
    (export / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="does not list, e.g. 'notes.txt'"):
        check(export, overwrite=True)
    os.remove(export / "notes.txt")
    (export / "item_ids.npy").write_text("altered")
    with pytest.raises(ValueError, match="does not match its checksum"):
        check(export, overwrite=True)
    run = tmp_path / "run"
    for target in (run, run / "export", tmp_path):
        with pytest.raises(ValueError, match="run directory"):
            check(target, overwrite=True, protected=[run])
    monkeypatch.chdir(fake_export(tmp_path / "cwd", "old"))
    for target in (pathlib.Path.cwd(), tmp_path):
        with pytest.raises(ValueError, match="current directory"):
            check(target.resolve(), overwrite=True)
    assert (plain / "thesis.tex").read_text() == "years of work"


def test_leftovers_that_are_not_ours_are_left_alone(tmp_path):
    target = fake_export(tmp_path / "export", "old")
    foreign = tmp_path / ".export.tmp-mine"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    stale = tmp_path / ".export.tmp-dead"
    stale.mkdir()
    (stale / directory.STAGING_MARKER).touch()
    (stale / "item_ids.npy").write_text("half")
    directory.clean_leftovers(target)
    assert sorted(os.listdir(tmp_path)) == [".export.tmp-mine", "export"]
    assert (foreign / "data.csv").read_text() == "1,2"


@pytest.fixture(scope="module")
def small_model():
    split = leave_last_out(synthetic_interactions(num_users=60, num_items=300, interactions_per_user=5))
    model = tower_zoo.create_model("mf", split.data.feature_spec, embedding_dim=8)
    model.build_weights()
    items, ids = split.candidates()
    queries, _, _ = split.queries("test")
    return model, items, ids, queries


def test_real_export_replaced_in_place_from_a_relative_nested_path(small_model, tmp_path, monkeypatch):
    model, items, ids, queries = small_model
    monkeypatch.chdir(tmp_path)
    first = serving.export(model, items, ids, "exports/sub/mf")
    (tmp_path / "exports" / "sub" / ".mf.tmp-killed").mkdir()        # a staging directory a kill left behind
    (tmp_path / "exports" / "sub" / ".mf.tmp-killed" / directory.STAGING_MARKER).touch()
    second = serving.export(model, items, ids, "exports/sub/mf", overwrite=True)
    assert os.listdir(tmp_path / "exports" / "sub") == ["mf"]
    loaded = serving.load("exports/sub/mf")                            # ScaNN assets resolved once, absolutely
    expected, _ = second.search(queries, 5)
    np.testing.assert_array_equal(loaded.search(queries, 5)[0], expected)
    assert first is not second and directory.is_complete_export(tmp_path / "exports" / "sub" / "mf")
    with pytest.raises(ValueError, match="current directory"):
        serving.export(model, items, ids, ".", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["exports"]


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_export_files_follow_the_umask(small_model, tmp_path, umask, file_mode, dir_mode):
    model, items, ids, _ = small_model
    previous = os.umask(umask)
    try:
        serving.export(model, items, ids, str(tmp_path / "e"))
    finally:
        os.umask(previous)
    paths = [tmp_path / "e", *(tmp_path / "e").rglob("*")]
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in paths}
    assert modes["e"] == dir_mode and modes[os.path.join("e", "manifest.json")] == file_mode
    assert all(m == (dir_mode if (tmp_path / p).is_dir() else file_mode) for p, m in modes.items()), modes


VALID = {"format_version": 2, "files": {}, "model_name": "m", "feature_spec": {}, "kind": "retrieval",
         "raw_inputs": {}, "padding_id": -1, "k": 10, "scann_config": {}, "scann_depth": 0}


@pytest.mark.parametrize("manifest,message", [
    ([], "must hold a JSON object, got list"),
    ({"format_version": 1}, "lacks the field 'files'"),
    ({**VALID, "format_version": "1"}, "field 'format_version' must be an integer, got '1'"),
    ({**VALID, "files": {"a": 1}}, "field 'files' must map file names to SHA-256 strings"),
    ({**VALID, "format_version": 7}, "has format_version 7, newer than this tower_zoo reads (2): upgrade"),
    ({**VALID, "format_version": 1}, "has format_version 1, this tower_zoo reads 2 (raw-feature signatures): "
                                     "export the run again"),
    ({**VALID, "kind": "ranker"}, "field 'kind' must be one of ('retrieval', 'pre_ranking'), got 'ranker'"),
    ({**VALID, "kind": "pre_ranking"}, "lacks the field 'user_state'"),
    (VALID, "field 'feature_spec' is invalid"),
    ({**VALID, "scann_config": {"leaves": 3}, "feature_spec": {"user_id_feature": "u", "item_id_feature": "i",
      "features": [{"kind": "categorical", "name": "u", "side": "user", "vocabulary": [1]},
                   {"kind": "categorical", "name": "i", "side": "item", "vocabulary": [1]}]}},
     "field 'scann_config' is invalid"),
])
def test_malformed_export_manifests_are_one_clear_error(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        serving.load(str(tmp_path))
    assert "manifest.json" in str(caught.value) or "format_version" in str(caught.value)


def test_an_export_of_an_older_format_may_still_be_replaced(tmp_path):
    old = fake_export(tmp_path / "export", "old", version=1)   # ours and complete, but no longer served
    assert directory.is_complete_export(old)
    directory.check_target(old, overwrite=True)
    with pytest.raises(ValueError, match="format_version 1, this tower_zoo reads 2"):
        serving.load(str(old))


def test_an_export_inside_another_run_prepared_dataset_or_export_is_refused(tmp_path):
    """Not only the run being exported: any tower_zoo-managed directory above the target refuses it (an export
    written into another run's prepared data would break that data's exact file listing)."""
    other_run = tmp_path / "other_run"
    (other_run / "prepared").mkdir(parents=True)
    (other_run / "run.json").write_text("{}")
    (other_run / "prepared" / "manifest.json").write_text(json.dumps({"files": {}, "format_version": 1, "parts": {}}))
    export = fake_export(tmp_path / "export", "old")
    for target, owner in ((other_run / "prepared" / "x", "prepared dataset or export"),
                          (export / "nested", "prepared dataset or export"),
                          (other_run / "exports" / "x", "run directory")):
        parent = target.parent.parent if owner == "run directory" else target.parent
        with pytest.raises(ValueError, match=f"lies inside the {owner} {re.escape(repr(str(parent)))}"):
            directory.check_target(target, overwrite=False)
        assert not target.exists()
    foreign = tmp_path / "webapp"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"name": "an app", "files": {"a.js": "x"}}))  # another tool's
    directory.check_target(foreign / "export", overwrite=False)
