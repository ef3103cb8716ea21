import numpy as np
import pytest

import tower_zoo
from tower_zoo.data import leave_last_out, synthetic_interactions
from tower_zoo.training import Trainer


@pytest.fixture(scope="module")
def split():
    return leave_last_out(synthetic_interactions(num_users=120, num_items=60, interactions_per_user=10))


def _train(split, epochs, checkpoint_dir=None, model_name="dssm", **model_overrides):
    model = tower_zoo.create_model(model_name, split.data.feature_spec, hidden_units=(16, 8),
                                   **model_overrides) if model_name == "dssm" else \
        tower_zoo.create_model(model_name, split.data.feature_spec, **model_overrides)
    trainer = Trainer(model, epochs=epochs, batch_size=64, seed=3, checkpoint_dir=checkpoint_dir)
    history = trainer.fit(split.examples("train"), verbose=False)
    return model, history


def test_loss_decreases_and_history_is_reported(split):
    _, history = _train(split, epochs=4)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < history[0]["loss"] - 0.1
    assert all(h["examples_per_second"] > 0 for h in history)


def test_same_seed_same_weights(split):
    a, _ = _train(split, epochs=2)
    b, _ = _train(split, epochs=2)
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_resume_from_checkpoint_equals_uninterrupted_run(split, tmp_path):
    full, _ = _train(split, epochs=3)
    _train(split, epochs=1, checkpoint_dir=str(tmp_path))          # "interrupted" after epoch 1
    resumed, history = _train(split, epochs=3, checkpoint_dir=str(tmp_path))
    assert [h["epoch"] for h in history] == [2, 3]                 # only the missing epochs ran
    for x, y in zip(full.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_checkpoint_of_another_model_is_refused(split, tmp_path):
    _train(split, epochs=1, checkpoint_dir=str(tmp_path))
    with pytest.raises(ValueError, match="model_name is 'dssm' there, 'mf' here"):
        _train(split, epochs=2, checkpoint_dir=str(tmp_path), model_name="mf")
    with pytest.raises(ValueError, match="model_config"):
        _train(split, epochs=2, checkpoint_dir=str(tmp_path), temperature=0.2)


def test_bad_trainer_options(split):
    model = tower_zoo.create_model("mf", split.data.feature_spec)
    with pytest.raises(ValueError, match=r"unknown trainer option\(s\) \['epoch'\]"):
        Trainer(model, epoch=3)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(model, batch_size=1)
    trainer = Trainer(model, epochs=1)
    examples = split.examples("train")
    with pytest.raises(ValueError, match=r"lack feature\(s\) \['item_id'\]"):
        trainer.fit({k: v for k, v in examples.items() if k != "item_id"})
    with pytest.raises(ValueError, match=r"different lengths: \{.user_id.: \d+\} where the others have"):
        trainer.fit(dict(examples, user_id=examples["user_id"][:-1]))


def test_fit_continues_and_early_stopping_restores_the_best_epoch(split):
    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
    trainer = Trainer(model, epochs=1, batch_size=64, seed=3)
    trainer.fit(split.examples("train"), verbose=False)
    trainer.config.epochs = 2
    assert [h["epoch"] for h in trainer.fit(split.examples("train"), verbose=False)] == [2]

    model = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
    trainer = Trainer(model, epochs=6, batch_size=64, seed=3)
    scripted = iter([0.5, 0.7, 0.6, 0.65, 0.9, 0.9])   # best at epoch 2, then 2 epochs without improvement
    snapshots = {}

    def validate(m):
        value = next(scripted)
        snapshots[len(snapshots) + 1] = [w.copy() for w in m.get_weights()]
        return value

    result = trainer.fit_with_early_stopping(split.examples("train"), validate, patience=2, verbose=False)
    assert result["best_epoch"] == 2 and result["values"] == [0.5, 0.7, 0.6, 0.65]
    for restored, saved in zip(model.get_weights(), snapshots[2]):
        np.testing.assert_array_equal(restored, saved)


def test_warm_start_loads_weights_and_refuses_another_model(split, tmp_path):
    trained, _ = _train(split, epochs=1, checkpoint_dir=str(tmp_path))
    fresh = tower_zoo.create_model("dssm", split.data.feature_spec, hidden_units=(16, 8))
    trainer = Trainer(fresh, epochs=1, batch_size=64, seed=99)
    trainer.warm_start(str(tmp_path))
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(trainer.epoch.numpy()) == 0                     # an update trains its own epochs
    other = Trainer(tower_zoo.create_model("mf", split.data.feature_spec), epochs=1)
    with pytest.raises(ValueError, match="model_name is 'dssm' there, 'mf' here"):
        other.warm_start(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no checkpoint to warm-start from"):
        other.warm_start(str(tmp_path / "empty"))


def test_steps_per_execution_are_validated():
    from tower_zoo.training.config import make_trainer_config

    assert make_trainer_config({}).steps_per_execution == 32
    assert make_trainer_config({"steps_per_execution": 8}).steps_per_execution == 8
    with pytest.raises(ValueError, match="steps_per_execution"):
        make_trainer_config({"steps_per_execution": 0})
