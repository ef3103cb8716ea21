"""The README's quick start runs as written: its schema file, each of its shell commands (in this process, through
``tower_zoo.cli.main``) and its Python block, on a small interaction log shaped as the schema's comments say.

tests/test_docs.py checks every other command of the README and docs/ against the CLI's flags without running it.
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex

import numpy as np
import pandas as pd
import pytest

from tower_zoo import cli

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
QUICK_START = README.read_text().split("## Quick start on your own data", 1)[1].split("\n## ", 1)[0]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", QUICK_START, re.S | re.M)


def _write_data(directory: pathlib.Path) -> None:
    """interactions.csv (user_id,item_id,ts), items.csv (item_id,title,genre) and users.csv (user_id,history):
    120 users, 150 items, Zipf-popular items, seeded."""
    rng = np.random.default_rng(0)
    rows = 3_000
    pd.DataFrame({"user_id": rng.integers(0, 120, rows), "item_id": rng.zipf(1.5, rows) % 150,
                  "ts": rng.integers(1_600_000_000, 1_700_000_000, rows)}).to_csv(directory / "interactions.csv",
                                                                                  index=False)
    pd.DataFrame({"item_id": range(150), "title": [f"item {i}" for i in range(150)],
                  "genre": [("a", "b", "c")[i % 3] for i in range(150)]}).to_csv(directory / "items.csv", index=False)
    (directory / "users.csv").write_text("user_id,history\n60,7 1 3\n91,1\n")


def _run_cli(line: str, capsys) -> str:
    words = shlex.split(line, comments=True)
    assert words[0] == "tower-zoo", line
    cli.FLAGS.unparse_flags()
    try:
        positional = cli.FLAGS(words)
        status = cli.main(positional)
    finally:
        cli.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    assert status == 0, f"{line}: exit {status}: {captured.err[-2000:]}"
    return captured.out


def test_the_quick_start_from_the_shell_runs_as_written(tmp_path, monkeypatch, capsys):
    (schema,) = _blocks("yaml")
    (commands,) = [block for block in _blocks("bash") if "tower-zoo describe" in block]
    monkeypatch.chdir(tmp_path)
    _write_data(tmp_path)
    (tmp_path / "my.yaml").write_text(schema)
    lines = [line for line in commands.splitlines() if line.strip()]
    assert [shlex.split(line)[1] for line in lines] == ["describe", "prepare", "train", "evaluate", "export",
                                                        "recommend"]
    metrics = tmp_path / "runs" / "my-dssm" / "metrics.json"
    outputs, exact = [], []
    for line in lines:
        outputs.append(_run_cli(line, capsys))
        if metrics.exists():
            exact.append(json.loads(metrics.read_text())["model"]["metrics"]["exact"])
    assert "3,000 interactions" in outputs[0] and (tmp_path / "popularity.png").stat().st_size > 1000
    assert "most-popular" in outputs[2] and exact[0] == exact[1]     # evaluate restores the trained weights
    recommendations = pd.read_parquet(tmp_path / "recs.parquet")
    assert list(recommendations.columns) == ["user_id", "rank", "item_id", "score"]
    assert sorted(recommendations.groupby("user_id").size().items()) == [(60, 10), (91, 10)]


def test_the_quick_start_from_python_runs_as_written(tmp_path, monkeypatch, capsys):
    (schema,) = _blocks("yaml")
    (source,) = _blocks("python")
    monkeypatch.chdir(tmp_path)
    _write_data(tmp_path)
    (tmp_path / "my.yaml").write_text(schema)
    namespace = {}
    exec(compile(source, f"{README}: quick start", "exec"), namespace)
    assert "recall@10" in capsys.readouterr().out
    assert namespace["ids"].shape == (2, 10) and (namespace["ids"] >= 0).all()


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
