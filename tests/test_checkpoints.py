"""Checkpoint store: crash-safe write order, fallback to the newest intact checkpoint, settings on resume."""

import json
import os

import numpy as np
import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.training import Trainer
from tower_zoo.training import checkpoints as checkpoints_module


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=60, num_items=30, interactions_per_user=8))


def _trainer(split, directory, epochs, **overrides):
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(8, 4))
    options = {"epochs": epochs, "batch_size": 32, "seed": 5, "checkpoint_dir": str(directory), **overrides}
    return Trainer(model, **options), model


def _fit(split, directory, epochs, **overrides):
    trainer, model = _trainer(split, directory, epochs, **overrides)
    history = trainer.fit(split.examples("train"), item_table=split.candidates()[0], verbose=False)
    return trainer, model, history


def _manifest(directory):
    return json.loads((directory / "manifest.json").read_text())


def test_killed_save_leaves_the_previous_checkpoint_usable_and_is_cleaned_up(split, tmp_path, monkeypatch):
    _fit(split, tmp_path, epochs=1)

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed while recording the checkpoint")

    monkeypatch.setattr(checkpoints_module, "write_json_atomic", die)  # epoch 2's files written, manifest not
    with pytest.raises(KeyboardInterrupt):
        _fit(split, tmp_path, epochs=2)
    monkeypatch.undo()
    assert any(name.startswith("ckpt-2.") for name in os.listdir(tmp_path))
    assert [e["name"] for e in _manifest(tmp_path)["checkpoints"]] == ["ckpt-1"]
    trainer, _, history = _fit(split, tmp_path, epochs=2)
    assert [h["epoch"] for h in history] == [2]                     # resumed from epoch 1, not from scratch
    assert [e["name"] for e in _manifest(tmp_path)["checkpoints"]] == ["ckpt-1", "ckpt-2"]


def test_state_file_is_irrelevant_and_temp_leftovers_are_removed(split, tmp_path):
    _fit(split, tmp_path, epochs=2)
    (tmp_path / "checkpoint").write_text("model_checkpoint_path: \"ckpt-0\"\n")  # a stale TF state file
    (tmp_path / "ckpt-3_temp").mkdir()                                         # a killed TF write
    (tmp_path / "ckpt-3_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    _, _, history = _fit(split, tmp_path, epochs=3)
    assert [h["epoch"] for h in history] == [3]
    assert not (tmp_path / "ckpt-3_temp").exists()
    assert [e["name"] for e in _manifest(tmp_path)["checkpoints"]] == ["ckpt-2", "ckpt-3"]


def test_damaged_newest_checkpoint_falls_back_to_the_one_before(split, tmp_path):
    _fit(split, tmp_path, epochs=2)
    newest = next(p for p in tmp_path.iterdir() if p.name.startswith("ckpt-2.data"))
    newest.write_bytes(newest.read_bytes()[:50])
    trainer, _ = _trainer(split, tmp_path, epochs=3)
    assert trainer.restore() == 1
    for entry in _manifest(tmp_path)["checkpoints"]:
        for file_name in entry["files"]:
            (tmp_path / file_name).write_bytes(b"")
    with pytest.raises(ValueError, match="no intact checkpoint"):
        _trainer(split, tmp_path, epochs=3)[0].restore()


@pytest.mark.parametrize("content, message", [
    ("[]", "malformed"), ('{"model_name": "dssm"}', "malformed"), ("{not json", "unreadable"),
    ('{"checkpoints": [{"name": "ckpt-1"}]}', "malformed checkpoint entry"),
])
def test_malformed_manifest_is_one_clear_error(split, tmp_path, content, message):
    _fit(split, tmp_path, epochs=1)
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        _trainer(split, tmp_path, epochs=2)[0].restore()
    assert "manifest.json" in str(error.value)


def test_checkpoints_without_manifest_are_refused(split, tmp_path):
    _fit(split, tmp_path, epochs=1)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ValueError, match="no manifest.json"):
        _trainer(split, tmp_path, epochs=2)[0].restore()


def test_resume_with_other_settings_is_refused_unless_allowed_and_then_recorded(split, tmp_path):
    _fit(split, tmp_path, epochs=1)
    with pytest.raises(ValueError, match=r"learning_rate 0.001 -> 0.01.*allow"):
        _fit(split, tmp_path, epochs=2, learning_rate=0.01)
    _, _, history = _fit(split, tmp_path, epochs=2, learning_rate=0.01, allow_setting_changes=True)
    assert [h["epoch"] for h in history] == [2]
    changes = _manifest(tmp_path)["setting_changes"]
    assert changes == [{"epoch": 2, "changed": {"learning_rate": [0.001, 0.01]}}]
    _fit(split, tmp_path, epochs=3, learning_rate=0.01)            # the recorded settings are the new ones


@pytest.mark.parametrize("overrides", [
    {}, {"negatives": "global", "num_global_negatives": 8}, {"negatives": "mixed", "num_global_negatives": 8},
    {"downsample_threshold": 0.01}, {"dropout": 0.3},
], ids=["in_batch", "global", "mixed", "downsample", "dropout"])
def test_resume_equals_uninterrupted_for_every_random_source(split, tmp_path, overrides):
    model_overrides = {k: overrides.pop(k) for k in list(overrides) if k == "dropout"}

    def run(directory, epochs):
        model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(8, 4), **model_overrides)
        trainer = Trainer(model, epochs=epochs, batch_size=32, seed=5, steps_per_execution=3,
                          checkpoint_dir=directory, **overrides)
        trainer.fit(split.examples("train"), item_table=split.candidates()[0], verbose=False)
        return model

    full = run(None, 3)
    run(str(tmp_path), 1)
    resumed = run(str(tmp_path), 3)
    for a, b in zip(full.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.name)
