"""The Trainer (Keras fit front door), its config, optimizers, callbacks, checkpoints and samplers.

``Trainer`` is imported lazily: the task layers import this package's samplers, and the Trainer imports
the tasks, so an eager import here would make that a cycle.
"""

from tower_zoo.training.config import TrainerConfig, make_trainer_config

__all__ = ["Trainer", "TrainerConfig", "make_trainer_config"]


def __getattr__(name: str):
    if name == "Trainer":
        from tower_zoo.training.trainer import Trainer

        return Trainer
    raise AttributeError(f"module 'tower_zoo.training' has no attribute {name!r}")
