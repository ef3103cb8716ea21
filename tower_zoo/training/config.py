"""TrainerConfig: every training option, validated before any work.

Each option is checked for its type (an int must be an int, not "3" or 3.5; a float must be a finite
number) and its range, with one error naming the option and the value. Options that need the data
(batch size against the number of rows, hard negatives against the rank band) are checked by the
Trainer before the first step.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any, Mapping

from tower_zoo.memory import FLOAT_BYTES, require_fits
from tower_zoo.tasks.losses import LOSSES
from tower_zoo.training.optimizers import OPTIMIZERS

NEGATIVE_SOURCES = ("in_batch", "global", "mixed")
TASKS = ("auto", "retrieval", "ranking", "rankflow", "arf")
LIST_TASKS = ("rankflow", "arf")
# Options that do not change what training computes: they may differ when a run is resumed.
RESUMABLE_OPTIONS = ("epochs", "checkpoint_dir", "max_checkpoints", "tensorboard_dir", "steps_per_execution",
                     "allow_setting_changes")


@dataclasses.dataclass
class TrainerConfig:
    """Training hyper-parameters (all overridable as ``Trainer(model, **overrides)``).

    task: "retrieval" (positive pairs against candidates), "ranking" (pointwise BCE on exposure labels),
      "rankflow" / "arf" (list-wise cascade training on candidate lists of ``group_size`` rows with the
      ranker's logits, ``tower_zoo.tasks.cascade``), or "auto": ranking for pre-ranking and baseline models,
      retrieval otherwise.
    group_size: rows per candidate list (list tasks); batch_size must be a multiple of it.
    rankflow_mse_weight / rankflow_rank_weight: RankFlow's distillation and within-list rank loss weights.
    arf_m / arf_k / arf_temperature / arf_label_weight: ARF's Recall@m@k (the pre-ranker keeps m, the ranker's
      top k should be among them), NeuralSort's τ, and the weight of a BCE on the labels.
    optimizer: "rowwise_adam" (row-sparse updates of embedding tables with one second moment per table row),
      "lazy_adam" (row-sparse, Adam's per-coordinate moments), "adam", "adagrad" or "sgd"
      (``tower_zoo.training.optimizers``).
    negatives / num_global_negatives / alpha / sampler_floor: candidate sources (``tower_zoo.tasks.candidates``);
      the global sampler draws p ∝ max(count, sampler_floor)^alpha, so cold items can be drawn.
    hard_negatives / hard_rank_range: K hard negatives per row drawn from that band of a previous model's ranks.
    logq_correction: None means on for the softmax loss, off otherwise. logq_mode: "per_source" or "shared".
    downsample_threshold: word2vec's t for positive down-sampling (0 = off).
    distill_weight: ranking task: weight of the distillation term when teacher logits are given.
    steps_per_execution: training steps per call into the compiled function (fewer host round trips); 32 by
      default, at any vocabulary size (the per-step cost that once grew with the tables inside the multi-step
      loop was a Grappler rewrite of sequence pooling, fixed in ``PooledSequenceEmbedding``).
    jit_compile: compile the training step with XLA.
    allow_setting_changes: resume a checkpoint written with other options (recorded in its manifest).
    ordinal_listwise_weight: models with ordinal levels (GNOLR): weight of the per-level sampled softmax beside
      the nested ordinal likelihood (``tower_zoo.tasks.ordinal``); 0 = the pointwise likelihood only.
    popularity_ipw / popularity_ipw_max: inverse-propensity weighting of positives by popularity: a positive
      of item j weighs (c_j / c̄)^(−popularity_ipw), capped at popularity_ipw_max, normalized to mean 1 over
      the training rows (``tower_zoo.tasks.samplers.popularity_ipw_weights``); 0 = off.
    """

    task: str = "auto"
    epochs: int = 5
    batch_size: int = 512
    learning_rate: float = 1e-3
    optimizer: str = "rowwise_adam"
    loss: str = "softmax"
    margin: float = 0.1
    negatives: str = "in_batch"
    num_global_negatives: int = 256
    alpha: float = 0.75
    sampler_floor: float = 1.0
    hard_negatives: int = 0
    hard_rank_range: tuple = (101, 500)
    logq_correction: bool | None = None
    logq_mode: str = "per_source"
    remove_accidental_hits: bool = True
    downsample_threshold: float = 0.0
    distill_weight: float = 1.0
    group_size: int = 1
    rankflow_mse_weight: float = 1.0
    rankflow_rank_weight: float = 1.0
    arf_m: int = 20
    arf_k: int = 10
    arf_temperature: float = 1.0
    arf_label_weight: float = 0.0
    seed: int = 42
    checkpoint_dir: str | None = None
    max_checkpoints: int = 2
    steps_per_execution: int = 32
    jit_compile: bool = False
    tensorboard_dir: str | None = None
    allow_setting_changes: bool = False
    ordinal_listwise_weight: float = 1.0
    popularity_ipw: float = 0.0
    popularity_ipw_max: float = 10.0

    def validate(self) -> None:
        """Raises ValueError naming the first bad option and its value."""
        for key in ("epochs", "batch_size", "max_checkpoints", "num_global_negatives", "group_size", "arf_m", "arf_k",
                    "steps_per_execution"):
            _check_int(key, getattr(self, key), minimum=1)
        _check_int("hard_negatives", self.hard_negatives, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        _check_float("learning_rate", self.learning_rate, minimum=0.0, inclusive=False)
        _check_float("margin", self.margin, minimum=0.0)
        _check_float("alpha", self.alpha, minimum=0.0, maximum=1.0)
        _check_float("sampler_floor", self.sampler_floor, minimum=0.0)
        _check_float("downsample_threshold", self.downsample_threshold, minimum=0.0, maximum=1.0)
        for key in ("distill_weight", "rankflow_mse_weight", "rankflow_rank_weight", "arf_label_weight",
                    "ordinal_listwise_weight", "popularity_ipw"):
            _check_float(key, getattr(self, key), minimum=0.0)
        _check_float("arf_temperature", self.arf_temperature, minimum=0.0, inclusive=False)
        _check_float("popularity_ipw_max", self.popularity_ipw_max, minimum=1.0)
        for key, valid in (("task", TASKS), ("optimizer", OPTIMIZERS), ("loss", tuple(LOSSES)),
                           ("negatives", NEGATIVE_SOURCES), ("logq_mode", ("per_source", "shared"))):
            if getattr(self, key) not in valid:
                raise ValueError(f"unknown trainer {key} {getattr(self, key)!r}; choose from {', '.join(valid)}")
        for key in ("remove_accidental_hits", "jit_compile", "allow_setting_changes"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"trainer {key} must be True or False, got {getattr(self, key)!r}")
        if self.logq_correction is not None and not isinstance(self.logq_correction, bool):
            raise ValueError(f"trainer logq_correction must be True, False or None, got {self.logq_correction!r}")
        self._validate_rank_range()
        _check_directory_path("tensorboard_dir", self.tensorboard_dir)
        self._validate_memory()
        if self.negatives in ("in_batch", "mixed") and self.batch_size < 2:
            raise ValueError(f"in-batch negatives need batch_size >= 2, got {self.batch_size}")
        if self.task in ("ranking",) + LIST_TASKS and (self.logq_correction or self.hard_negatives
                                                        or self.negatives != "in_batch"):
            raise ValueError(f"task={self.task!r} trains on labels: negatives, hard_negatives and logQ do not apply")
        if self.task in ("ranking",) + LIST_TASKS and self.popularity_ipw:
            raise ValueError(f"popularity_ipw weighs retrieval positives; task={self.task!r} trains on labels")
        if self.task in LIST_TASKS:
            if self.group_size < 2 or self.batch_size % self.group_size:
                raise ValueError(f"task={self.task!r} trains on candidate lists: need group_size >= 2 dividing "
                                 f"batch_size, got group_size={self.group_size}, batch_size={self.batch_size}")
            if self.task == "arf" and not self.arf_k <= self.arf_m <= self.group_size:
                raise ValueError(f"task='arf' needs arf_k <= arf_m <= group_size, got {self.arf_k}, {self.arf_m}, "
                                 f"{self.group_size}")
        elif self.group_size != 1:
            raise ValueError(f"group_size={self.group_size} is for the list tasks (rankflow, arf), not "
                             f"task={self.task!r}")
        if self.logq_correction and not LOSSES[self.loss].uses_log_q:
            raise ValueError(f"logQ correction is defined for the sampled softmax only, not loss={self.loss!r}; "
                             "turn it off (--nologq)")

    def _validate_rank_range(self) -> None:
        band = self.hard_rank_range
        if (not isinstance(band, (tuple, list)) or len(band) != 2
                or not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in band)
                or not 1 <= band[0] <= band[1]):
            raise ValueError(f"trainer hard_rank_range must be two integers 1 <= low <= high, got {band!r}")
        self.hard_rank_range = (int(band[0]), int(band[1]))

    def _validate_memory(self) -> None:
        """The [batch_size, batch_size + num_global_negatives] logits of a global-negative step, with the
        softmax and the gradients (about 4 copies), must fit in memory."""
        if not self.uses_global:
            return
        columns = self.num_global_negatives + (self.batch_size if self.uses_in_batch else 0) + self.hard_negatives
        require_fits(f"trainer num_global_negatives={self.num_global_negatives} with batch_size={self.batch_size}",
                     4 * FLOAT_BYTES * self.batch_size * columns,
                     f"the [{self.batch_size}, {columns}] logits x 4 bytes x 4 copies for the softmax and gradients")

    @property
    def band_width(self) -> int:
        """W: how many ranks hard negatives are drawn from."""
        return self.hard_rank_range[1] - self.hard_rank_range[0] + 1

    @property
    def uses_in_batch(self) -> bool:
        return self.negatives in ("in_batch", "mixed")

    @property
    def uses_global(self) -> bool:
        return self.negatives in ("global", "mixed")

    def resolved_task(self, model) -> str:
        """The task for ``model``: the configured one, or by its kind when "auto"."""
        if self.task != "auto":
            return self.task
        return "ranking" if getattr(model, "model_kind", "retrieval") in ("pre_ranking", "baseline") else "retrieval"

    def uses_logq(self) -> bool:
        """Whether the retrieval loss subtracts log q (None: on for the softmax only)."""
        return self.loss == "softmax" if self.logq_correction is None else self.logq_correction

    def training_settings(self) -> dict[str, Any]:
        """The options that shape what training computes (compared when a run is resumed)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RESUMABLE_OPTIONS}


def _check_directory_path(key: str, path: Any) -> None:
    """``path`` (or None) can be a directory: neither it nor a parent is an existing file."""
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ValueError(f"trainer {key} must be a directory path, got {path!r}")
    probe = os.path.abspath(os.fspath(path))
    while True:
        if os.path.exists(probe) and not os.path.isdir(probe):
            where = "is a file" if probe == os.path.abspath(os.fspath(path)) else f"is under the file {probe!r}"
            raise ValueError(f"trainer {key} {os.fspath(path)!r} {where}, not a directory")
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent


def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"trainer {key} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"trainer {key} must be >= {minimum}, got {value}")


def _check_float(key: str, value: Any, minimum: float | None = None, maximum: float | None = None,
                 inclusive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"trainer {key} must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (not inclusive and value == minimum)):
        raise ValueError(f"trainer {key} must be {'>=' if inclusive else '>'} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"trainer {key} must be <= {maximum}, got {value}")


def make_trainer_config(overrides: Mapping[str, Any] | None = None) -> TrainerConfig:
    """A validated TrainerConfig; unknown keys are an error listing the valid ones."""
    overrides = dict(overrides or {})
    valid = [f.name for f in dataclasses.fields(TrainerConfig)]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"unknown trainer option(s) {unknown}; valid options: {', '.join(valid)}")
    config = TrainerConfig(**overrides)
    config.validate()
    return config

