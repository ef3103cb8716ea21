"""The Trainer (Keras fit front door), its config, optimizers, callbacks and checkpoints.

``Trainer`` is imported lazily, on first use, so that importing the config does not build the Trainer's
imports (the tasks, the samplers in ``tower_zoo.tasks.samplers``, Keras callbacks).
"""

from tower_zoo.training.config import TrainerConfig, make_trainer_config

__all__ = ["Trainer", "TrainerConfig", "make_trainer_config"]


def __getattr__(name: str):
    if name == "Trainer":
        from tower_zoo.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'tower_zoo.training' has no attribute {name!r}")
