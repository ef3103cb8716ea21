import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "kill_mid_epoch.py")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=ENV, timeout=600)


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tmp_path):
    """Every random state (sampled and hard negatives, dropout, down-sampling, batch order) is in the
    checkpoint or a function of it: a resumed run equals an uninterrupted one tensor by tensor."""
    killed = _run(str(tmp_path), "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "manifest.json").exists() and not (tmp_path / "checkpoint").exists()
    resumed = _run(str(tmp_path), "resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    full = _run(str(tmp_path / "unused"), "full")
    resumed_report = json.loads(resumed.stdout.strip().splitlines()[-1])
    full_report = json.loads(full.stdout.strip().splitlines()[-1])
    assert resumed_report["epochs_run"] == [2, 3]             # epoch 1 came from the checkpoint
    assert sorted(resumed_report["weights"]) == sorted(full_report["weights"])
    differing = [name for name, value in full_report["weights"].items()
                 if not np.allclose(value, resumed_report["weights"][name], rtol=1e-5, atol=1e-6)]
    assert differing == [], f"{len(differing)} of {len(full_report['weights'])} tensors differ: {differing}"


def test_truncated_checkpoint_is_refused(tmp_path):
    import tower_zoo
    from tower_zoo.data import leave_last_out, synthetic_interactions
    from tower_zoo.training import Trainer

    split = leave_last_out(synthetic_interactions(num_users=40, num_items=30, interactions_per_user=6))
    model = tower_zoo.create_model("mf", split.data.feature_spec)
    Trainer(model, epochs=1, batch_size=32, checkpoint_dir=str(tmp_path)).fit(split.examples("train"), verbose=False)
    data_file = next(p for p in tmp_path.iterdir() if ".data-" in p.name)
    data_file.write_bytes(data_file.read_bytes()[:100])
    again = Trainer(tower_zoo.create_model("mf", split.data.feature_spec), epochs=2, batch_size=32,
                    checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match="does not match its checksum"):
        again.fit(split.examples("train"), verbose=False)


def test_checkpoint_with_another_feature_spec_is_refused(tmp_path):
    import tower_zoo
    from tower_zoo.data import leave_last_out, synthetic_interactions
    from tower_zoo.training import Trainer

    first = leave_last_out(synthetic_interactions(num_users=40, num_items=30, interactions_per_user=6))
    Trainer(tower_zoo.create_model("mf", first.data.feature_spec), epochs=1, batch_size=32,
            checkpoint_dir=str(tmp_path)).fit(first.examples("train"), verbose=False)
    other = leave_last_out(synthetic_interactions(num_users=40, num_items=31, interactions_per_user=6))
    trainer = Trainer(tower_zoo.create_model("mf", other.data.feature_spec), epochs=2, batch_size=32,
                      checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match="feature_spec_sha256"):
        trainer.fit(other.examples("train"), verbose=False)
