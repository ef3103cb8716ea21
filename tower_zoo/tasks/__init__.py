"""Tasks: Keras layers that turn a batch into a loss for ``model.compile(optimizer, task=...)``."""

from tower_zoo.tasks.candidates import (CandidateColumns, HardNegativeCandidates, InBatchCandidates,
                                        SampledCandidates, Scorer)
from tower_zoo.tasks.losses import (LOSSES, BinaryCrossEntropyCandidateLoss, CandidateLoss, HingeCandidateLoss,
                                    LogisticPairwiseCandidateLoss, SampledSoftmaxLoss, SoftmaxCandidateLoss,
                                    apply_logq_correction, make_loss, valid_negative_mask)
from tower_zoo.tasks.ranking import RankingTask, distillation_loss
from tower_zoo.tasks.retrieval import RetrievalTask

__all__ = ["CandidateColumns", "HardNegativeCandidates", "InBatchCandidates", "SampledCandidates", "Scorer",
           "LOSSES", "BinaryCrossEntropyCandidateLoss", "CandidateLoss", "HingeCandidateLoss",
           "LogisticPairwiseCandidateLoss", "SampledSoftmaxLoss", "SoftmaxCandidateLoss", "apply_logq_correction",
           "make_loss", "valid_negative_mask", "RankingTask", "distillation_loss", "RetrievalTask"]
