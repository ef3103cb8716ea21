"""Fuzz pass over the CLI's arguments: every combination ends in success, a one-line usage error (exit 2)
or an absl flag-parse error, never an unhandled exception."""

import tempfile

import pytest
from absl import flags
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tower_zoo import cli

FLAG_VALUES = {
    "--model": ["dssm", "mf", "nope", ""],
    "--dataset": ["synthetic", "nope"],
    "--epochs": ["1", "0", "-3", "x"],
    "--batch_size": ["64", "1", "0", "big"],
    "--loss": ["softmax", "hinge", "bogus"],
    "--negatives": ["in_batch", "global", "mixed", "random"],
    "--ks": ["10,50", "0", "a,b", "5"],
    "--set": ["hidden_units=8", "nope=1", "temperature=-1", "embedding_dim=wide", "hidden_units"],
    "--learning_rate": ["0.01", "-1", "nan"],
    "--hard_negatives": ["0", "2"],
    "--logq": [None],
    "--nologq": [None],
    "--noscann": [None],
    "--run": ["/nonexistent/run"],
}


@st.composite
def argument_lists(draw):
    command = draw(st.sampled_from(["train", "evaluate", "list", "export", "query", "frobnicate"]))
    names = draw(st.lists(st.sampled_from(sorted(FLAG_VALUES)), max_size=5, unique=True))
    args = []
    for name in names:
        value = draw(st.sampled_from(FLAG_VALUES[name]))
        args.append(name if value is None else f"{name}={value}")
    return command, args


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argument_lists())
def test_cli_never_crashes(case):
    command, args = case
    out = tempfile.mkdtemp()
    argv = ["tower-zoo", command, *args, f"--out={out}/run", "--noevaluate", "--dataset=synthetic"] \
        if command == "train" else ["tower-zoo", command, *args]
    cli.FLAGS.unparse_flags()
    try:
        positional = cli.FLAGS(argv)
    except flags.Error:
        return                                   # absl prints usage; app.run exits 1
    try:
        code = cli.main(positional)
    finally:
        cli.FLAGS.unparse_flags()
    assert code in (0, 2)


@pytest.mark.parametrize("argv,message", [
    (["tower-zoo", "train", "--epochs=0", "--out=/tmp/x", "--dataset=synthetic"], "epochs must be >= 1"),
    (["tower-zoo", "train", "--ks=0", "--out=/tmp/x", "--dataset=synthetic"], "--ks must be positive"),
    (["tower-zoo", "train", "--set=nope=1", "--out=/tmp/x", "--dataset=synthetic"], "unknown config key"),
])
def test_cli_errors_name_the_problem(argv, message, capsys):
    cli.FLAGS.unparse_flags()
    positional = cli.FLAGS(argv)
    try:
        assert cli.main(positional) == 2
    finally:
        cli.FLAGS.unparse_flags()
    assert message in capsys.readouterr().err
