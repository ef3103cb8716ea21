"""Run directories keep honest records: settings changed on resume are refused or recorded, history
accumulates, the data a run was trained on is fingerprinted and checked, one process at a time writes a
run, data-dependent values are checked before training, and every registered model trains and evaluates."""

import dataclasses
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

import tower_zoo
from tower_zoo import runs
from tower_zoo.data import synthetic_interactions

DATA = synthetic_interactions(num_users=60, num_items=40, interactions_per_user=6)
FAST = {"epochs": 1, "batch_size": 32}
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _train(run_dir, trainer=FAST, data=DATA, model="mf", **kwargs):
    return runs.train_run(str(run_dir), model, "synthetic", trainer_overrides=trainer, data=data, verbose=False,
                          **kwargs)


def _record(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_resume_with_other_trainer_settings_is_refused_unless_allowed_and_then_recorded(tmp_path):
    _train(tmp_path, {**FAST, "learning_rate": 0.01})
    changed = {"epochs": 2, "batch_size": 16, "learning_rate": 0.05}
    with pytest.raises(ValueError, match=r"batch_size 32 -> 16, learning_rate 0\.01 -> 0\.05.*allow_setting_change"):
        _train(tmp_path, changed)
    record = _record(tmp_path)
    assert record["trainer"]["learning_rate"] == 0.01 and [h["epoch"] for h in record["history"]] == [1]
    _train(tmp_path, changed, allow_setting_change=True)
    record = _record(tmp_path)
    assert record["trainer"]["learning_rate"] == 0.05
    assert record["setting_changes"] == [{"after_epoch": 1, "changes": {"batch_size": [32, 16],
                                                                       "learning_rate": [0.01, 0.05]}}]
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    _train(tmp_path, changed)                               # re-running a finished run keeps its history
    assert [h["epoch"] for h in _record(tmp_path)["history"]] == [1, 2]
    with pytest.raises(ValueError, match="model_overrides"):  # the model itself can never change
        _train(tmp_path, changed, model_overrides={"embedding_dim": 8}, allow_setting_change=True)


def test_epochs_trained_by_a_killed_process_stay_in_the_history(tmp_path):
    _train(tmp_path, {**FAST, "epochs": 3})
    record = _record(tmp_path)
    record["history"] = record["history"][:1]               # what a process killed after epoch 3 left on disk
    (tmp_path / "run.json").write_text(json.dumps(record))
    _train(tmp_path, {**FAST, "epochs": 4})
    history = _record(tmp_path)["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4] and "not recorded" in history[1]["note"]


def _fewer_ratings(data):
    return dataclasses.replace(data, ratings=data.ratings.iloc[:-7].reset_index(drop=True))


def test_changed_data_is_refused_on_resume_and_evaluate_unless_allowed(tmp_path):
    _train(tmp_path)
    fingerprint = _record(tmp_path)["data_fingerprint"]
    assert fingerprint["ratings"] == len(DATA.ratings) and len(fingerprint["sha256"]) == 64
    other = _fewer_ratings(DATA)
    with pytest.raises(ValueError, match=r"data changed since run .* was trained: ratings 360 -> 353, sha256"):
        runs.load_run(str(tmp_path), data=other)
    with pytest.raises(ValueError, match="allow_data_change"):
        _train(tmp_path, {**FAST, "epochs": 2}, data=other)
    result = runs.evaluate_run(str(tmp_path), data=other, ks=(5,), allow_data_change=True, use_scann=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["data_fingerprint"] == runs.data_fingerprint(other) != fingerprint
    assert "not the data it was trained on" in metrics["warning"] and result["warning"] == metrics["warning"]
    runs.evaluate_run(str(tmp_path), data=DATA, ks=(5,), use_scann=False)
    assert "warning" not in json.loads((tmp_path / "metrics.json").read_text())


@pytest.mark.parametrize("content,message", [
    ("[]", "must hold a JSON object, got list"),
    ("{}", "lacks the field 'model'"),
    ('{"model": 3}', "field 'model' must be a string, got 3"),
    ("{not json", "is corrupt"),
])
def test_malformed_run_files_are_one_clear_error(tmp_path, content, message):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(ValueError, match=message) as caught:
        runs.read_run(str(tmp_path))
    assert "run.json" in str(caught.value)


@pytest.mark.parametrize("trainer,extras,message", [
    (FAST, {"ks": (10, 1_000_000_000)}, r"--ks 1000000000 exceeds the 40 items"),
    ({"epochs": 1, "batch_size": 10**9}, {}, r"--batch_size 1000000000 exceeds the 300 training"),
    ({**FAST, "hard_negatives": 100_000}, {"hard_negatives_from": "x"}, r"--hard_negatives 100000 exceeds the"),
    ({**FAST, "downsample_threshold": 1e-300}, {}, r"--downsample_threshold 1e-300 keeps about 0 of 300"),
])
def test_values_impossible_for_the_data_are_refused_before_training(tmp_path, trainer, extras, message):
    with pytest.raises(ValueError, match=message):
        _train(tmp_path / "run", trainer, **extras)
    assert not (tmp_path / "run").exists()                 # nothing written, not even the directory


@pytest.mark.parametrize("name", tower_zoo.list_models())
def test_every_registered_model_trains_and_evaluates_as_its_kind_needs(tmp_path, name):
    _train(tmp_path, model=name)
    result = runs.evaluate_run(str(tmp_path), data=DATA, ks=(5, 10), use_scann=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["model"]["metrics"]
    if tower_zoo.registry.model_kind(name) == "retrieval":
        assert 0 <= metrics["exact"]["recall@10"] <= 1 and _record(tmp_path)["split"]["method"] == "leave_last_out"
    else:
        assert 0 <= metrics["like"]["auc"] <= 1 and _record(tmp_path)["split"]["method"] == "time_split"
    assert result["table"].startswith("|")


def _hold_lock_and(action, run_dir):
    code = (f"import os, signal, time; from tower_zoo.fileio import directory_lock\n"
            f"with directory_lock({str(run_dir)!r}):\n    print('locked', flush=True)\n    {action}")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)


def test_one_process_at_a_time_writes_a_run_and_a_crash_releases_the_lock(tmp_path):
    holder = _hold_lock_and("time.sleep(600)", tmp_path)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(runs.RunInUseError, match="in use by another tower-zoo process"):
            _train(tmp_path)
        assert not (tmp_path / "run.json").exists()
        second = subprocess.run([sys.executable, "-m", "tower_zoo.cli", "train", "--dataset", "synthetic",
                                 "--out", str(tmp_path)], capture_output=True, text=True, env=ENV, timeout=300)
        assert second.returncode == 2 and second.stderr.strip().splitlines()[-1].startswith("tower-zoo train: error")
        assert "in use by another tower-zoo process" in second.stderr
    finally:
        holder.kill()
        holder.wait()
    crashed = _hold_lock_and("os.kill(os.getpid(), signal.SIGKILL)", tmp_path)
    assert crashed.wait() == -signal.SIGKILL
    _train(tmp_path)                                        # the kernel released the dead process's lock


@pytest.mark.parametrize("umask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_run_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    previous = os.umask(umask)
    try:
        _train(tmp_path / "run")
    finally:
        os.umask(previous)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").rglob("*")}
    assert modes["run/run.json"] == file_mode and modes["run/checkpoints/manifest.json"] == file_mode, modes
    assert all(m == (dir_mode if (tmp_path / p).is_dir() else file_mode) for p, m in modes.items()), modes


def test_a_run_recorded_before_effective_trainer_options_resumes(tmp_path):
    _train(tmp_path)
    record = _record(tmp_path)
    record["trainer"] = {**FAST, "logq_correction": None, "negatives": "in_batch"}   # the older, sparse form
    (tmp_path / "run.json").write_text(json.dumps(record))
    _train(tmp_path, {**FAST, "epochs": 2})
    assert [h["epoch"] for h in _record(tmp_path)["history"]] == [1, 2]


def test_hard_negatives_need_a_retrieval_run_to_mine_them(tmp_path):
    _train(tmp_path / "teacher", model="target_attention")
    with pytest.raises(ValueError, match="'target_attention' is pre_ranking: hard negatives are mined"):
        _train(tmp_path / "run", {**FAST, "hard_negatives": 2}, hard_negatives_from=str(tmp_path / "teacher"),
               hard_rank_range=(5, 20))
