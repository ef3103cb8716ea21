"""Losses, negative sampling and the Trainer."""

from tower_zoo.training.losses import SampledSoftmaxLoss, apply_logq_correction, mask_accidental_hits
from tower_zoo.training.trainer import Trainer, TrainerConfig, make_trainer_config

__all__ = ["SampledSoftmaxLoss", "apply_logq_correction", "mask_accidental_hits", "Trainer", "TrainerConfig",
           "make_trainer_config"]
