"""Losses, negative sampling and the Trainer."""

from tower_zoo.training.losses import SampledSoftmaxLoss, apply_logq_correction, valid_negative_mask
from tower_zoo.training.trainer import Trainer, TrainerConfig, make_trainer_config

__all__ = ["SampledSoftmaxLoss", "apply_logq_correction", "valid_negative_mask", "Trainer", "TrainerConfig",
           "make_trainer_config"]
