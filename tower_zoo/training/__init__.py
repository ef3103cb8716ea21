"""The Trainer (Keras fit front door), its config, optimizers, callbacks, checkpoints and samplers."""

from tower_zoo.training.config import TrainerConfig, make_trainer_config
from tower_zoo.training.trainer import Trainer

__all__ = ["Trainer", "TrainerConfig", "make_trainer_config"]
