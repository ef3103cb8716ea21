"""`tower-zoo prepare` and `tower-zoo describe` from the shell."""

import os
import subprocess
import sys

import numpy as np
import pytest

from prepared_helpers import random_data, schema_dict, write_dataset
from tower_zoo import cli
from tower_zoo.data.read.describe import describe, describe_schema, format_description
from tower_zoo.data.schema.loading import load_schema


def _cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "tower_zoo.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_prepare_then_describe(tmp_path):
    schema_file = write_dataset(random_data(seed=0), tmp_path / "source", schema_dict())
    out, plot = tmp_path / "prepared", tmp_path / "popularity.png"
    prepared = _cli("prepare", "--data", str(schema_file), "--out", str(out), "--memory_budget_mb", "64")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert f"prepared {out}" in prepared.stdout and (out / "manifest.json").is_file()
    described = _cli("describe", "--data", str(schema_file), "--plot", str(plot))
    assert described.returncode == 0, described.stderr[-2000:]
    assert "random: 600 interactions in 1 file(s)" in described.stdout and plot.stat().st_size > 1000
    assert "random: 600 interactions prepared in" in describe(str(out))  # a prepared directory


def test_describe_counts_coverage_and_popularity(tmp_path):
    data = random_data(seed=0)
    schema = schema_dict(columns={"user_id": "user_id", "item_id": {"column": "item_id", "max_size": 10},
                                  "timestamp": "timestamp"})
    description = describe_schema(load_schema(write_dataset(data, tmp_path / "source", schema)))
    counts = data.ratings["item_id"].value_counts().sort_values(ascending=False)
    assert description["interactions"] == 600 and description["items"]["distinct"] == len(counts)
    assert description["items"]["vocabulary"] == 10
    assert description["items"]["coverage"] == counts.iloc[:10].sum() / 600
    assert list(description["item_popularity"]) == list(counts)
    assert description["users"]["interactions_per_user"]["max"] == data.ratings["user_id"].value_counts().max()
    text = format_description(description)
    assert "coverage" in text and "item_id 12" in text


@pytest.mark.parametrize("args,message", [
    (["prepare", "--out=/tmp/x"], "prepare needs --data SCHEMA"),
    (["prepare", "--data=synthetic"], "prepare needs --data SCHEMA (a schema file or built-in dataset) and --out DIR"),
    (["prepare", "--data=synthetic", "--out=/tmp/x", "--memory_budget_mb=1"], "--memory_budget_mb must be >= 16"),
    (["prepare", "--data=/nonexistent.yaml", "--out=/tmp/x"], "is neither a schema file nor a built-in dataset"),
    (["describe"], "describe needs --data SCHEMA"),
    (["describe", "--data=nope"], "'nope' is neither a schema file nor a built-in dataset"),
])
def test_prepare_and_describe_usage_errors_exit_2(args, message, capsys):
    cli.FLAGS.unparse_flags()
    positional = cli.FLAGS(["tower-zoo", *args])
    try:
        assert cli.main(positional) == 2
    finally:
        cli.FLAGS.unparse_flags()
    assert message in capsys.readouterr().err


def test_train_on_prepared_data_streams_and_evaluate_reproduces(tmp_path):
    """`train --data` prepares the schema into the run, trains from the shards and evaluates streaming;
    `evaluate --run` restores the run and gives the same numbers."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    run = str(tmp_path / "run")
    train = subprocess.run([sys.executable, "-m", "tower_zoo.cli", "train", "--data", "synthetic", "--model", "dssm",
                            "--epochs", "2", "--batch_size", "64", "--set", "hidden_units=16,8", "--out", run,
                            "--noscann"], capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert os.path.isdir(os.path.join(run, "prepared")) and "most-popular" in train.stdout
    first = json.load(open(os.path.join(run, "metrics.json")))["model"]["metrics"]["exact"]
    record = json.load(open(os.path.join(run, "run.json")))
    assert record["dataset"] == "prepared" and [h["epoch"] for h in record["history"]] == [1, 2]
    again = subprocess.run([sys.executable, "-m", "tower_zoo.cli", "evaluate", "--run", run, "--noscann"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.load(open(os.path.join(run, "metrics.json")))["model"]["metrics"]["exact"] == first
    popular = json.load(open(os.path.join(run, "metrics.json")))["popularity"]["metrics"]["exact"]
    assert first["recall@10"] > popular["recall@10"]                  # learned beyond popularity
    export = str(tmp_path / "export")
    exported = subprocess.run([sys.executable, "-m", "tower_zoo.cli", "export", "--run", run, "--export_dir", export],
                              capture_output=True, text=True, env=env, timeout=600)
    assert exported.returncode == 0, exported.stderr[-2000:]
    manifest = json.load(open(os.path.join(export, "manifest.json")))
    assert manifest["kind"] == "retrieval" and manifest["num_items"] == 100
    # raw features in, the same top 5 as the restored model on the encoded features
    import pandas as pd

    from tower_zoo import serving
    from tower_zoo.prepared_runs import load_prepared_run

    model, prepared, _, _ = load_prepared_run(run)
    rows = pd.DataFrame({"user_id": [3, 7], "segment": ["s1", "s0"], "history": [[4, 8, 12], [1]]})
    ids, _ = serving.load(export).search_raw(rows, k=5)
    items, item_ids = prepared.item_corpus()
    vectors = model.user_embedding(prepared.feature_spec.encode(rows, side="user")).numpy()
    scores = vectors @ model.item_embedding(items).numpy().T
    np.testing.assert_array_equal(ids, item_ids[np.argsort(-scores, axis=1, kind="stable")[:, :5]])
