"""Fuzz pass over the CLI's arguments: every combination ends in success or in exactly one line on stderr,
``tower-zoo[ COMMAND]: error: ...``, with exit status 2 — flag-parse errors included — never a traceback."""

import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tower_zoo import cli

FLAG_VALUES = {
    "--model": ["dssm", "mf", "nope", "", "target_attention"],
    "--dataset": ["synthetic", "nope"],
    "--epochs": ["1", "0", "-3", "x"],
    "--batch_size": ["64", "1", "0", "big", "1000000000"],
    "--loss": ["softmax", "hinge", "bogus"],
    "--negatives": ["in_batch", "global", "mixed", "random"],
    "--ks": ["10,50", "0", "a,b", "5", "1000000000"],
    "--set": ["hidden_units=8", "nope=1", "temperature=-1", "embedding_dim=wide", "hidden_units",
              "hidden_units=abc", "temperature=inf"],
    "--learning_rate": ["0.01", "-1", "nan", "inf"],
    "--margin": ["0.1", "nan"],
    "--seed": ["7", "-1"],
    "--hard_negatives": ["0", "2", "-4", "100000"],
    "--objective_weights": ["click=1", "click=nan", "bogus=1", "click=0,like=0"],
    "--downsample_threshold": ["0", "1e-300", "-1"],
    "--data_dir": ["/tmp"],
    "--k": ["5", "0", "10000000000"],
    "--bogus_flag": ["1"],
    "--logq": [None],
    "--nologq": [None],
    "--noscann": [None],
    "--run": ["/nonexistent/run"],
    "--users": ["/nonexistent/users.parquet"],
    "--chunk_size": ["16", "0", "x"],
}


def run_cli(argv):
    """Parses and runs ``argv`` as ``tower-zoo`` does; returns the exit status."""
    cli.FLAGS.unparse_flags()
    try:
        return cli.main(cli.parse_flags(argv))
    except SystemExit as exit_:
        return exit_.code
    finally:
        cli.FLAGS.unparse_flags()


def assert_one_error_line(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 0:
        assert code == 2 and len(lines) == 1 and lines[0].startswith("tower-zoo") and ": error: " in lines[0], err


@st.composite
def argument_lists(draw):
    command = draw(st.sampled_from(["train", "evaluate", "list", "export", "query", "recommend", "frobnicate"]))
    names = draw(st.lists(st.sampled_from(sorted(FLAG_VALUES)), max_size=5, unique=True))
    args = []
    for name in names:
        value = draw(st.sampled_from(FLAG_VALUES[name]))
        args.append(name if value is None else f"{name}={value}")
    return command, args


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=argument_lists())
def test_cli_never_crashes_and_every_error_is_one_line_with_exit_2(case, capsys):
    command, args = case
    with tempfile.TemporaryDirectory() as out:
        argv = ["tower-zoo", command, *args, f"--out={out}/run", "--noevaluate", "--epochs=1",
                "--dataset=synthetic"] if command == "train" else ["tower-zoo", command, *args]
        capsys.readouterr()
        code = run_cli(argv)
    assert code in (0, 2)
    assert_one_error_line(code, capsys.readouterr().err)


TRAIN = ["tower-zoo", "train", "--dataset=synthetic", "--noevaluate"]


@pytest.mark.parametrize("argv,message", [
    (TRAIN + ["--epochs=0"], "epochs must be >= 1"),
    (TRAIN + ["--ks=0"], "--ks must be positive"),
    (TRAIN + ["--set=nope=1"], "unknown config key"),
    (TRAIN + ["--bogus=1"], "tower-zoo: error: Unknown command line flag 'bogus'"),
    (TRAIN + ["--epochs=abc"], "tower-zoo: error: flag --epochs=abc: invalid literal for int()"),
    (TRAIN + ["--negatives=x"], "flag --negatives=x: value should be one of"),
    (TRAIN + ["--set=hidden_units=abc"], "--set hidden_units=abc: expected integers separated by commas"),
    (TRAIN + ["--seed=-1"], "flag --seed=-1: --seed must be an integer in [0, 4294967295]"),
    (TRAIN + ["--objective_weights=click=nan"], "--objective_weights click=nan: the weight must be a finite number"),
    (TRAIN + ["--objective_weights=bogus=1"], "--objective_weights bogus=1: unknown objective 'bogus'"),
    (TRAIN + ["--hard_negatives=-4"], "flag --hard_negatives=-4: --hard_negatives must be >= 0"),
    (TRAIN + ["--downsample_threshold=1e-300"], "--downsample_threshold 1e-300 keeps about 0 of"),
    (TRAIN + ["--learning_rate=inf"], "flag --learning_rate=inf: --learning_rate must be a finite number > 0"),
    (TRAIN + ["--margin=nan"], "flag --margin=nan: --margin must be a finite number >= 0"),
    (TRAIN + ["--data_dir=/tmp"], "dataset 'synthetic' is generated in memory and reads no --data_dir (got '/tmp')"),
    (TRAIN + ["--batch_size=1000000000"], "--batch_size 1000000000 exceeds the 2200 training interactions"),
    (TRAIN + ["--ks=1000000000", "--evaluate"], "--ks 1000000000 exceeds the 100 items"),
    (["tower-zoo", "query", "--export_dir=/x", "--user_id=1", "--k=0"], "flag --k=0: --k must be >= 1"),
])
def test_cli_errors_name_the_flag_and_value_on_one_line(argv, message, capsys, tmp_path):
    code = run_cli(argv + [f"--out={tmp_path}/run"] if argv[1] == "train" else argv)
    err = capsys.readouterr().err
    assert_one_error_line(code, err)
    assert code == 2 and message in err, err


def _raise(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def test_file_system_failures_are_one_line_naming_the_file(tmp_path, capsys, monkeypatch):
    import errno

    import tensorflow as tf

    from tower_zoo import runs

    (tmp_path / "file").write_text("not a directory")
    train = ["tower-zoo", "train", "--dataset=synthetic", "--epochs=1", "--noevaluate"]
    assert run_cli(train + [f"--out={tmp_path}/file/run"]) == 2
    err = capsys.readouterr().err
    assert_one_error_line(2, err)
    assert f"'{tmp_path}/file/run': Not a directory" in err
    for error, message in [
        (OSError(errno.EROFS, "Read-only file system", f"{tmp_path}/ro/run.json"), "run.json': Read-only file system"),
        (OSError(errno.ENOSPC, "No space left on device", f"{tmp_path}/ro/run.json"), "No space left on device"),
        (tf.errors.ResourceExhaustedError(None, None, "{{function_node __SaveV2}} /x/ckpt-1_temp/part; No space "
                                                      "left on device [Op:SaveV2]"),
         "error: /x/ckpt-1_temp/part; No space left on device [Op:SaveV2]"),
    ]:
        monkeypatch.setattr(runs, "write_json_atomic", _raise(error))
        assert run_cli(train + [f"--out={tmp_path}/ro"]) == 2
        err = capsys.readouterr().err
        assert_one_error_line(2, err)
        assert message in err, err


def test_benchmark_twice_into_one_directory(tmp_path, capsys):
    argv = ["tower-zoo", "benchmark", "--models=mf", "--dataset=synthetic", "--epochs=1", "--batch_size=64",
            "--noscann", f"--out={tmp_path}"]
    assert run_cli(argv) == 0
    assert run_cli(argv) == 0                            # nothing left to train: the recorded epochs are reused
    assert "seconds per epoch: mf " in capsys.readouterr().out
    assert run_cli(argv[:2] + ["--models=hit"] + argv[3:]) == 2
    assert "benchmark compares retrieval models, and 'hit' is pre_ranking" in capsys.readouterr().err


def test_a_loss_that_diverges_is_one_line(tmp_path, capsys, monkeypatch):
    from tower_zoo import runs

    monkeypatch.setattr(runs.Trainer, "fit", _raise(FloatingPointError("training loss became nan at epoch 1, step 3")))
    argv = ["tower-zoo", "train", "--dataset=synthetic", "--learning_rate=1e30", f"--out={tmp_path}/run"]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert_one_error_line(2, err)
    assert "training loss became nan at epoch 1" in err
