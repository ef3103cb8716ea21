"""Readers of a run never change it: export, evaluate, hard-negative mining and warm starts read only verified
checkpoints and delete nothing, even in the window of a save where TensorFlow's checkpoint files are written but
not yet listed in the manifest; the save waits for no reader beyond its checkpoint read, and completes."""

import json
import os
import subprocess
import sys

import pytest

import tower_zoo
from tower_zoo import runs
from tower_zoo.training import Trainer
from tower_zoo.training import checkpoints as checkpoints_module

from test_cli_fuzz import assert_one_error_line, run_cli

FAST = {"epochs": 2, "batch_size": 64, "seed": 3}
# Another process trying a shared (reader's) lock on a directory, without waiting: exit 0 if it got it.
TRY_SHARED_LOCK = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
                   "try:\n    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(1)")


def _train(run_dir, **kwargs):
    return runs.train_run(str(run_dir), "mf", "synthetic", model_overrides={"embedding_dim": 8},
                          trainer_overrides=FAST, verbose=False, **kwargs)


def _listed(checkpoint_dir):
    return [e["name"] for e in json.loads((checkpoint_dir / "manifest.json").read_text())["checkpoints"]]


def test_readers_in_a_saves_window_delete_nothing_and_the_save_completes(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    checkpoint_dir = run / runs.CHECKPOINT_SUBDIR
    real_write = checkpoints_module.write_json_atomic
    seen = {}

    def readers_in_the_window(path, payload):
        names = [e["name"] for e in payload.get("checkpoints", [])]
        if "ckpt-2" in names and not seen:   # ckpt-2.* written by TensorFlow, the manifest still lists ckpt-1 only
            new_files = sorted(f for f in os.listdir(checkpoint_dir) if f.startswith("ckpt-2."))
            assert new_files and _listed(checkpoint_dir) == ["ckpt-1"]
            seen["export"] = run_cli(["tower-zoo", "export", f"--run={run}", f"--export_dir={tmp_path}/export"])
            seen["evaluate"] = run_cli(["tower-zoo", "evaluate", f"--run={run}", "--noscann", "--ks=5"])
            model, _, _ = runs.load_run(str(run))                   # what --hard_negatives_from RUN does
            Trainer(tower_zoo.create_model("mf", model.feature_spec, embedding_dim=8)).warm_start(str(checkpoint_dir))
            seen["files after the readers"] = sorted(f for f in os.listdir(checkpoint_dir) if f.startswith("ckpt-2."))
            seen["new files"] = new_files
            seen["another reader"] = subprocess.run([sys.executable, "-c", TRY_SHARED_LOCK, str(checkpoint_dir)]
                                                    ).returncode
        return real_write(path, payload)

    monkeypatch.setattr(checkpoints_module, "write_json_atomic", readers_in_the_window)
    _, _, history = _train(run)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert seen["export"] == 0 and seen["evaluate"] == 0, err
    assert seen["files after the readers"] == seen["new files"]           # nothing of the save was removed
    assert seen["another reader"] == 1             # another process's reader waits while the save is under way
    assert [h["epoch"] for h in history] == [1, 2] and _listed(checkpoint_dir) == ["ckpt-1", "ckpt-2"]
    assert run_cli(["tower-zoo", "evaluate", f"--run={run}", "--noscann", "--ks=5"]) == 0   # epoch 2 restores
    assert subprocess.run([sys.executable, "-c", TRY_SHARED_LOCK, str(checkpoint_dir)]).returncode == 0


def test_hard_negatives_from_a_run_on_another_dataset_names_both(tmp_path):
    from tower_zoo.data import synthetic_interactions

    miner = tmp_path / "miner"
    runs.train_run(str(miner), "mf", "movielens-100k", data=synthetic_interactions(num_users=40, seed=1),
                   trainer_overrides={"epochs": 1, "batch_size": 64}, verbose=False)
    with pytest.raises(ValueError) as caught:
        runs.train_run(str(tmp_path / "b"), "mf", "synthetic", data=synthetic_interactions(num_users=50, seed=2),
                       trainer_overrides={"epochs": 1, "batch_size": 64, "hard_negatives": 1},
                       hard_negatives_from=str(miner), hard_rank_range=(2, 5), verbose=False)
    assert (f"--hard_negatives_from {miner}: that run was trained on another dataset, 'movielens-100k', and this "
            "run trains on 'synthetic'") in str(caught.value)
    assert "data changed" not in str(caught.value) and not (tmp_path / "b").exists()


def test_a_run_file_that_cannot_be_read_is_not_reported_as_missing(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    path = str(run / "run.json")
    (run / "run.json").write_text("{}")
    real_stat, real_open = os.stat, open

    def stat_denied(target, *args, **kwargs):   # a directory on the way that this user may not search
        if os.fspath(target) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_stat(target, *args, **kwargs)

    def open_denied(target, *args, **kwargs):   # a 0600 run.json of another user (root reads anything)
        if os.fspath(target) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(target, *args, **kwargs)

    for function, replacement in (("os.stat", stat_denied), ("builtins.open", open_denied)):
        with monkeypatch.context() as patch:
            patch.setattr(function, replacement)
            codes = [run_cli(["tower-zoo", command, f"--run={run}", f"--export_dir={tmp_path}/e"])
                     for command in ("export", "evaluate")]
        err = capsys.readouterr().err
        assert codes == [2, 2], err
        for line in err.splitlines():
            assert_one_error_line(2, line)
            assert f"run file '{path}' cannot be read (permission denied)" in line, err
    (run / "run.json").unlink()
    (run / "run.json").mkdir()
    assert run_cli(["tower-zoo", "evaluate", f"--run={run}"]) == 2
    assert f"run file '{path}' is a directory, not a file" in capsys.readouterr().err
