import json
import os
import subprocess
import sys

import pytest

from tower_zoo.cli import UsageError, parse_overrides

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _cli(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "tower_zoo.cli", *args], capture_output=True, text=True,
                            env=ENV, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"tower-zoo {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def test_parse_overrides_types_and_errors():
    assert parse_overrides("dssm", ["hidden_units=64,32", "temperature=0.1", "l2_normalize=false",
                                    "user_features=user_id,history"]) == {
        "hidden_units": (64, 32), "temperature": 0.1, "l2_normalize": False,
        "user_features": ("user_id", "history")}
    with pytest.raises(UsageError, match="unknown config key for model 'dssm'.*valid keys"):
        parse_overrides("dssm", ["hidden=3"])
    with pytest.raises(UsageError, match="embedding_dim=wide: expected an integer"):
        parse_overrides("dssm", ["embedding_dim=wide"])
    with pytest.raises(UsageError, match="key=value"):
        parse_overrides("dssm", ["embedding_dim"])


def test_list_names_every_model():
    out = _cli("list").stdout
    assert "dssm" in out and "mf" in out and "retrieval" in out


def test_train_then_evaluate_from_disk(tmp_path):
    run_dir = str(tmp_path / "run")
    train = _cli("train", "--model", "dssm", "--dataset", "synthetic", "--epochs", "2", "--batch_size", "64",
                 "--out", run_dir, "--set", "hidden_units=16,8")
    assert "Epoch 2/2" in train.stdout and "most-popular" in train.stdout
    first = json.load(open(os.path.join(run_dir, "metrics.json")))
    os.remove(os.path.join(run_dir, "metrics.json"))
    _cli("evaluate", "--run", run_dir)
    second = json.load(open(os.path.join(run_dir, "metrics.json")))
    # The restored model ranks exactly like the one in memory after training.
    assert second["model"]["metrics"]["exact"] == first["model"]["metrics"]["exact"]
    run = json.load(open(os.path.join(run_dir, "run.json")))
    assert run["model"] == "dssm" and run["status"] == "trained" and len(run["history"]) == 2


def test_errors_are_one_clear_line(tmp_path):
    result = _cli("train", "--model", "nope", "--dataset", "synthetic", "--out", str(tmp_path), check=False)
    assert result.returncode == 2 and "unknown model 'nope'" in result.stderr
    result = _cli("evaluate", "--run", str(tmp_path / "missing"), check=False)
    assert result.returncode == 2 and "not a tower_zoo run directory" in result.stderr
    result = _cli("frobnicate", check=False)
    assert result.returncode == 2 and "usage: tower-zoo" in result.stderr
    result = _cli("train", "--dataset", "movielens-1m", "--out", str(tmp_path), check=False)
    assert result.returncode == 2 and "needs --data_dir" in result.stderr
    result = _cli("train", "--dataset", "synthetic", "--loss", "hinge", "--logq", "--out", str(tmp_path / "h"),
                  check=False)
    assert result.returncode == 2 and "logQ correction is defined for the sampled softmax only" in result.stderr
    result = _cli("train", "--dataset", "synthetic", "--hard_negatives", "4", "--out", str(tmp_path / "x"),
                  check=False)
    assert result.returncode == 2 and "--hard_negatives_from" in result.stderr
    result = _cli("train", "--dataset", "synthetic", "--temperature", "0.1", "--set", "temperature=0.2",
                  "--out", str(tmp_path / "y"), check=False)
    assert result.returncode == 2 and "contradicts" in result.stderr
