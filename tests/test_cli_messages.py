"""CLI messages that misled (issue 21, item 15): each mistake is one stderr line naming the flag and value,
exit status 2, and nothing is written; a file the CLI reports writing is the file it wrote."""

import os
import subprocess
import sys

import pytest

from prepared_helpers import random_data, schema_dict, write_dataset
from test_cli_fuzz import assert_one_error_line, run_cli


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory):
    return write_dataset(random_data(seed=0), tmp_path_factory.mktemp("data") / "source", schema_dict())


def _error(argv, capsys) -> str:
    capsys.readouterr()
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert_one_error_line(code, err)
    assert code == 2, err
    return err


def test_a_directory_given_to_data_says_what_it_is_and_what_data_takes(tmp_path, capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    for command in ("describe", "prepare"):
        err = _error(["tower-zoo", command, f"--data={plain}", f"--out={tmp_path}/out"], capsys)
        assert (f"--data '{plain}' is a directory, but neither a prepared dataset (it has no manifest.json) nor a "
                "schema file; --data takes a schema file (YAML or JSON) or a built-in dataset") in err, err
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text("{}")
    err = _error(["tower-zoo", "prepare", f"--data={prepared}", f"--out={tmp_path}/out"], capsys)
    assert f"--data '{prepared}' is a prepared directory, which holds encoded shards rather than a schema" in err
    assert sorted(os.listdir(tmp_path)) == ["plain", "prepared"]


def test_data_dir_is_refused_where_data_names_its_own_files(schema_file, tmp_path, capsys):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text("{}")
    for argv, kind in [(["describe", f"--data={schema_file}"], "schema file"),
                       (["prepare", f"--data={schema_file}", f"--out={tmp_path}/out"], "schema file"),
                       (["train", f"--data={schema_file}", f"--out={tmp_path}/run"], "schema file"),
                       (["describe", f"--data={prepared}"], "prepared directory"),
                       (["train", f"--data={prepared}", f"--out={tmp_path}/run"], "prepared directory")]:
        err = _error(["tower-zoo", *argv, "--data_dir=/tmp"], capsys)
        assert "--data_dir '/tmp' is read only with a built-in --data name (movielens-100k, movielens-1m, " in err
        assert f"is a {kind}, which names its own files: drop --data_dir" in err, err
    assert sorted(os.listdir(tmp_path)) == ["prepared"]                       # no run, no prepared output


def test_describe_plot_writes_exactly_the_path_it_reports(schema_file, tmp_path, capsys):
    for path, message in [(tmp_path / "p_noext", "the plot is a PNG image; give a file name ending in .png"),
                          (tmp_path / "p.pdf", "the plot is a PNG image; give a file name ending in .png"),
                          (tmp_path / "missing" / "p.png", f"directory '{tmp_path / 'missing'}' does not exist")]:
        err = _error(["tower-zoo", "describe", f"--data={schema_file}", f"--plot={path}"], capsys)
        assert f"--plot '{path}': {message}" in err, err
    assert os.listdir(tmp_path) == []                                         # neither p_noext nor p_noext.png
    plot = tmp_path / "Popularity.PNG"
    assert run_cli(["tower-zoo", "describe", f"--data={schema_file}", f"--plot={plot}"]) == 0
    assert f"popularity plot written to {plot}" in capsys.readouterr().out
    assert os.listdir(tmp_path) == ["Popularity.PNG"] and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("models,message", [
    ("", "--models is empty: benchmark needs at least one retrieval model, e.g. --models=mf,dssm"),
    ("mf,mf", "--models mf,mf names mf more than once"),
])
def test_benchmark_without_models_is_an_error(models, message, tmp_path, capsys):
    err = _error(["tower-zoo", "benchmark", f"--models={models}", "--dataset=synthetic", f"--out={tmp_path}/b"],
                 capsys)
    assert f"tower-zoo benchmark: error: {message}" in err and not os.path.exists(tmp_path / "b")


def test_an_error_after_a_restore_is_still_one_line(tmp_path, capsys):
    """absl.app.run raises an unset --verbosity to INFO: the checkpoint restore's INFO line must not join the
    error on stderr (only a real ``tower-zoo`` process goes through app.run)."""
    run = str(tmp_path / "run")
    assert run_cli(["tower-zoo", "train", "--model=mf", "--dataset=synthetic", "--epochs=1", "--batch_size=512",
                    "--noevaluate", f"--out={run}"]) == 0
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "tower_zoo.cli", "evaluate", f"--run={run}", "--ks=1000000000",
                             "--noscann"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "tower-zoo evaluate: error: --ks 1000000000 exceeds the 100 items of the synthetic corpus"], result.stderr
