"""The Trainer: the front door to Keras ``compile`` / ``fit`` for every registered model.

``Trainer(model, epochs=5, batch_size=512, ...).fit(examples)`` builds, from its ``TrainerConfig``:

* an example source (``tower_zoo.data.read.source``): row-aligned arrays, or a streaming source such as a
  prepared dataset's shards; each epoch's batch order is a function of (seed, epoch);
* the task (``tower_zoo.tasks``): ``RetrievalTask`` with the configured candidate sources, logQ and loss,
  or ``RankingTask`` for pointwise training on exposure labels (``task="auto"`` picks by model kind);
* the optimizer (``tower_zoo.training.optimizers``; default ``rowwise_adam``, row-sparse on embedding tables);
* callbacks: the data epoch, a non-finite-loss guard, one record per epoch, checkpoints with a checksummed
  manifest (``tower_zoo.training.checkpoints``), TensorBoard when ``tensorboard_dir`` is set, then the
  caller's own callbacks (any Keras callback: EarlyStopping, BackupAndRestore, ...);

then calls ``model.compile(optimizer, task=...)`` and ``model.fit(...)``, and returns one record per
epoch run: ``{"epoch", "loss", "seconds", "examples_per_second"}``.

Resuming: with ``checkpoint_dir``, ``fit`` restores the newest intact checkpoint (model, optimizer with
its step count, epoch) and runs only the remaining epochs. Every random draw of training is a function of
state that checkpoint holds — batch order and down-sampling of (seed, epoch), sampled negatives of
(seed, optimizer step), dropout of each layer's own counter — so a run killed at any point and resumed
reaches the same weights as an uninterrupted one. A checkpoint of another model, config or feature spec,
or one written with other training settings, is refused (``allow_setting_changes`` records a change).

Distribution: create the model inside ``strategy.scope()`` and pass ``strategy=``. With a mirrored
strategy every replica scores its rows against the in-batch candidates of the whole global batch
(all-gathered), so training equals single-device training with the same global batch. With
``tf.distribute.ParameterServerStrategy`` (variables partitioned over parameter servers), Keras
``fit`` runs steps on the workers from a per-worker dataset (``DatasetCreator``); each worker's batch
is its own in-batch candidate set.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tower_zoo.data.read.source import ArrayExampleSource, ExampleSource
from tower_zoo.data.schema.keys import HARD_NEGATIVES, LABEL, SAMPLE_WEIGHT, TEACHER_LOGIT, objective_label
from tower_zoo.tasks.candidates import HardNegativeCandidates, InBatchCandidates, SampledCandidates
from tower_zoo.tasks.cascade import ARFTask, RankFlowTask, UncertaintyWeights
from tower_zoo.tasks.losses import make_loss
from tower_zoo.tasks.ordinal import NestedOrdinalLoss
from tower_zoo.tasks.ranking import RankingTask
from tower_zoo.tasks.retrieval import RetrievalTask
from tower_zoo.tasks.samplers import keep_probability, popularity_ipw_weights, unigram_probabilities
from tower_zoo.training.callbacks import (CheckpointEachEpoch, DataEpoch, EpochRecorder, FiniteLossGuard,
                                          StepLossGuard, ValidationMetric)
from tower_zoo.training.checkpoints import CheckpointStore
from tower_zoo.training.config import TrainerConfig, make_trainer_config
from tower_zoo.training.memory_checks import check_tables_fit
from tower_zoo.training.optimizers import make_optimizer

__all__ = ["Trainer", "TrainerConfig", "make_trainer_config"]


def _row_values(name: str, values: Any, rows: int, dtype, shape_tail: tuple = ()) -> np.ndarray:
    """``values`` as a finite array of shape (rows, *shape_tail); ValueError naming ``name`` otherwise."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numbers, got dtype {array.dtype}")
    array = array.astype(dtype)
    if array.shape != (rows, *shape_tail):
        raise ValueError(f"{name} must have shape {(rows, *shape_tail)}, got {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN/inf (e.g. row {int(np.flatnonzero(~np.isfinite(array))[0])})")
    return array


def _check_nested_levels(levels, arrays) -> None:
    """Ordinal levels must be 0/1 and nested (a row at a level is at every lower one); ValueError naming the
    level and the first bad row."""
    previous = None
    for name in levels or ():
        labels = arrays[objective_label(name)]
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            raise ValueError(f"ordinal level {name!r} labels must be 0/1, got {labels[bad][0]!r} at row "
                             f"{int(np.flatnonzero(bad)[0])}")
        if previous is not None and np.any(labels > arrays[objective_label(previous)]):
            row = int(np.flatnonzero(labels > arrays[objective_label(previous)])[0])
            raise ValueError(f"ordinal levels must be nested: row {row} is at level {name!r} but not at the lower "
                             f"level {previous!r}")
        previous = name


class Trainer:
    """Fits any ``TwoTowerModel``; see the module docstring."""

    def __init__(self, model, config: TrainerConfig | None = None, strategy: tf.distribute.Strategy | None = None,
                 **overrides: Any):
        if config is not None and overrides:
            raise ValueError("pass either a TrainerConfig or keyword overrides, not both")
        self.config = config if config is not None else make_trainer_config(overrides)
        self.config.validate()
        self.model = model
        self.strategy = strategy or tf.distribute.get_strategy()
        if strategy is not None and self.config.batch_size % strategy.num_replicas_in_sync:
            raise ValueError(f"batch_size {self.config.batch_size} must divide evenly over "
                             f"{strategy.num_replicas_in_sync} replicas")
        self.task_kind = self.config.resolved_task(model)
        tf.keras.utils.set_random_seed(self.config.seed)
        check_tables_fit(model, self.config.optimizer)  # before any variable exists
        with self.strategy.scope():
            model.build_weights()
            # ARF's learned loss weights live with the Trainer: one set across fits, optimized and checkpointed.
            self.loss_weights = UncertaintyWeights(2, name="arf_loss_weights") if self.task_kind == "arf" else None
            extra = self.loss_weights.trainable_variables if self.loss_weights is not None else []
            self.optimizer = make_optimizer(self.config.optimizer, self.config.learning_rate)
            self.optimizer.build(model.trainable_variables + extra)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._data_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer, epoch=self.epoch)
        if self.loss_weights is not None:
            self._checkpoint.loss_weights = self.loss_weights
        self._store = None
        if self.config.checkpoint_dir:
            self._store = CheckpointStore(self.config.checkpoint_dir, model, self.config.max_checkpoints,
                                          self.config.training_settings(), self.config.allow_setting_changes)

    # ------------------------------------------------------------------ checkpoints
    def restore(self) -> int:
        """Restores the newest intact checkpoint of ``checkpoint_dir``, if any; returns the epochs done."""
        if self._store is not None:
            restored = self._store.restore(self._checkpoint)
            if restored:
                self.epoch.assign(restored)
        return int(self.epoch.numpy())

    def warm_start(self, checkpoint_dir: str) -> None:
        """Loads the model weights (not the optimizer or epoch) of the newest intact checkpoint in
        ``checkpoint_dir``, written for the same model, config and feature spec: the start of an
        incremental update on new data."""
        restored = CheckpointStore(checkpoint_dir, self.model).read_weights(tf.train.Checkpoint(model=self.model))
        if not restored:
            raise FileNotFoundError(f"no checkpoint to warm-start from in {checkpoint_dir!r}")

    # ------------------------------------------------------------------ inputs
    def example_source(self, examples, sample_weight=None, hard_negatives=None, objective_labels=None,
                       labels=None, teacher_logits=None) -> ExampleSource:
        """``examples`` as an ExampleSource: an ExampleSource as is, or arrays (with the extras as reserved
        columns) as an ``ArrayExampleSource``. ValueError naming the input for a missing or malformed one."""
        extras = {"sample_weight": sample_weight, "hard_negatives": hard_negatives,
                  "objective_labels": objective_labels, "labels": labels, "teacher_logits": teacher_logits}
        if isinstance(examples, ExampleSource):
            given = sorted(k for k, v in extras.items() if v is not None)
            if given:
                raise ValueError(f"{given} are columns of a streaming source (its schema), not fit() arguments")
            return examples
        source = ArrayExampleSource(examples, self.model.feature_spec, self.config.group_size)
        arrays, rows = source.arrays, source.num_rows
        if sample_weight is not None:
            arrays[SAMPLE_WEIGHT] = _row_values("sample_weight", sample_weight, rows, np.float32)
            if arrays[SAMPLE_WEIGHT].min() < 0:
                raise ValueError("sample_weight must be >= 0")
        if hard_negatives is not None:
            arrays[HARD_NEGATIVES] = _row_values("hard_negatives", hard_negatives, rows, np.int32,
                                                 (self.config.hard_negatives,))
        for key, values, name in ((LABEL, labels, "labels"), (TEACHER_LOGIT, teacher_logits, "teacher_logits")):
            if values is not None:
                if self.task_kind == "retrieval":
                    raise ValueError(f"{name} are for task='ranking' (or a list task); retrieval trains on "
                                     "positive pairs")
                arrays[key] = _row_values(name, values, rows, np.float32)
        if LABEL in arrays and not np.all(np.isin(arrays[LABEL], (0.0, 1.0))):
            raise ValueError("labels must be 0/1")
        objectives = getattr(self.model, "objective_names", None)
        if self.task_kind in ("rankflow", "arf"):  # list tasks train the primary (first) objective's logit
            objectives = None
        if objective_labels and not objectives:
            raise ValueError(f"objective_labels given but model {self.model.model_name!r} has one objective; "
                             "fuse them with fuse_label_weights into sample_weight")
        missing = [name for name in objectives or () if name not in (objective_labels or {})]
        if missing:
            raise ValueError(f"model {self.model.model_name!r} has objectives {list(objectives)}: pass "
                             f"objective_labels= with labels for {missing}")
        for name in objectives or ():
            arrays[objective_label(name)] = _row_values(f"objective_labels[{name!r}]", objective_labels[name],
                                                        rows, np.float32)
        _check_nested_levels(getattr(self.model, "ordinal_levels", None), arrays)
        return ArrayExampleSource(arrays, self.model.feature_spec, self.config.group_size)

    def _check_source(self, source: ExampleSource, item_table) -> None:
        config = self.config
        if source.num_rows < config.batch_size and config.negatives != "global":
            raise ValueError(f"batch_size {config.batch_size} exceeds the {source.num_rows} training rows")
        if self.task_kind != "retrieval" and LABEL not in source.keys:
            raise ValueError(f"task={self.task_kind!r} needs labels= (0/1 per row)")
        objectives = getattr(self.model, "objective_names", None) if self.task_kind == "ranking" else None
        missing = [name for name in objectives or () if objective_label(name) not in source.keys]
        if missing and hasattr(self.model, "objective_logits"):
            raise ValueError(f"model {self.model.model_name!r} has one head per objective {list(objectives)}: "
                             f"the examples lack labels for {missing} (objective_labels= or label columns)")
        if self.task_kind in ("rankflow", "arf") and TEACHER_LOGIT not in source.keys:
            raise ValueError(f"task={self.task_kind!r} needs teacher_logits= (the ranker's logit of every candidate)")
        if config.hard_negatives and HARD_NEGATIVES not in source.keys:
            raise ValueError(f"hard_negatives={config.hard_negatives} needs hard_negatives= rows "
                             "(see tower_zoo.training.hard_negatives.mine_hard_negatives)")
        if self.task_kind == "retrieval" and (config.uses_global or config.hard_negatives):
            if item_table is None:
                raise ValueError(f"negatives={config.negatives!r} with hard_negatives={config.hard_negatives} "
                                 "needs item_table= (the encoded item corpus)")
            spec = self.model.feature_spec
            missing = sorted({f.name for f in spec.item_features} - set(item_table))
            if missing:
                raise ValueError(f"item_table lacks item feature(s) {missing}")

    # ------------------------------------------------------------------ the task
    def make_task(self, counts: np.ndarray, keep: np.ndarray | None, item_table: Mapping[str, np.ndarray] | None):
        """The RetrievalTask or RankingTask of this config, from training counts per item code."""
        config = self.config
        if self.task_kind == "ranking":
            return RankingTask(config.distill_weight, name="ranking_task")
        if self.task_kind == "rankflow":
            return RankFlowTask(config.group_size, config.rankflow_mse_weight, config.rankflow_rank_weight,
                                name="rankflow_task")
        if self.task_kind == "arf":
            return ARFTask(config.group_size, config.arf_m, config.arf_k, self.loss_weights, config.arf_temperature,
                           config.arf_label_weight, name="arf_task")
        spec = self.model.feature_spec
        item_id = spec.item_id_feature
        counts = np.asarray(counts, np.float64)
        total = max(counts.sum(), 1.0)
        used = counts * keep if keep is not None else counts
        in_batch = sampled = hard = None
        if config.uses_in_batch:
            in_batch = InBatchCandidates(np.log(np.maximum(used, 1e-30) / total), name="in_batch")
        if config.uses_global or config.hard_negatives:
            table = {f.name: np.asarray(item_table[f.name]) for f in spec.item_features}
            if config.uses_global:
                codes = table[item_id].astype(np.int64)
                probabilities = unigram_probabilities(counts[codes], config.alpha, config.sampler_floor)
                sampled = SampledCandidates(table, codes, probabilities, config.num_global_negatives,
                                            spec.item_id.vocab_size, config.seed, name="sampled")
            if config.hard_negatives:
                hard = HardNegativeCandidates(table, config.hard_negatives, config.band_width, name="hard")
        ipw = (popularity_ipw_weights(counts, config.popularity_ipw, config.popularity_ipw_max)
               if config.popularity_ipw else None)
        return RetrievalTask(make_loss(config.loss, config.margin), item_id, in_batch, sampled, hard,
                             config.uses_logq(), config.logq_mode, np.log(np.maximum(counts, 1.0) / total),
                             config.remove_accidental_hits, NestedOrdinalLoss(config.ordinal_listwise_weight),
                             ipw, name="retrieval_task")

    # ------------------------------------------------------------------ training
    @property
    def _parameter_servers(self) -> bool:
        return isinstance(self.strategy, tf.distribute.ParameterServerStrategy)

    def _verbosity(self, verbose: bool) -> int:
        if not verbose:
            return 0
        return 1 if sys.stdout.isatty() and not os.environ.get("CI") else 2

    @property
    def steps_per_execution(self) -> int:
        """Steps per call into the compiled function (``TrainerConfig.steps_per_execution``)."""
        return self.config.steps_per_execution

    def _dataset(self, source: ExampleSource, keep: np.ndarray | None):
        config = self.config
        if self._parameter_servers:
            def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
                passes = tf.data.Dataset.range(2**62).flat_map(
                    lambda e: source.dataset(config.batch_size, config.seed, e, keep, drop_remainder=True))
                return passes.shard(context.num_input_pipelines, context.input_pipeline_id)
            return tf.keras.utils.experimental.DatasetCreator(per_worker), math.ceil(source.num_rows / config.batch_size)
        # Every epoch has the same number of batches (down-sampled rows are masked, not removed); a known
        # cardinality makes Keras create a new iterator, with the next epoch's order, at every epoch.
        steps = math.ceil(source.num_rows / config.batch_size)
        dataset = source.dataset(config.batch_size, config.seed, self._data_epoch, keep)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps)), steps

    def fit(self, examples, item_table: Mapping[str, np.ndarray] | None = None, sample_weight: np.ndarray | None = None,
            hard_negatives: np.ndarray | None = None, objective_labels: Mapping[str, np.ndarray] | None = None,
            labels: np.ndarray | None = None, teacher_logits: np.ndarray | None = None, verbose: bool = True,
            callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> list[dict[str, float]]:
        """Trains for the configured epochs (resuming from a checkpoint when one exists).

        Args:
          examples: ``{feature: [R] or [R, L]}`` encoded arrays (every feature both towers read), or an
            ``ExampleSource`` (e.g. ``PreparedDataset.example_source()``).
          item_table: the encoded item corpus ``{item feature: [I, ...]}``; needed for global and hard negatives.
          sample_weight: [R] per-example weights (e.g. fused multi-objective labels).
          hard_negatives: int [R, hard_negatives] rows of ``item_table`` per example.
          objective_labels: ``{objective: [R] 0/1}`` for multi-objective models (one head each).
          labels: task "ranking": 0/1 [R] per exposure (examples then hold negatives too).
          teacher_logits: task "ranking": [R] a ranker's logits to distil (MSE + pairwise rank loss).
          verbose: a progress bar (one line per epoch when not on a terminal or under CI).
          callbacks: Keras callbacks, run after the Trainer's own.
        Returns:
          One dict per epoch run: epoch, loss (mean over steps), seconds, examples_per_second.
        """
        config = self.config
        source = self.example_source(examples, sample_weight, hard_negatives, objective_labels, labels,
                                     teacher_logits)
        if item_table is None and hasattr(source, "item_corpus"):
            item_table = source.item_corpus()[0]
        self._check_source(source, item_table)
        counts = source.item_counts()
        keep = (keep_probability(counts, config.downsample_threshold).astype(np.float32)
                if config.downsample_threshold else None)
        if keep is not None and float(np.dot(counts, keep)) < min(config.batch_size, source.num_rows):
            raise ValueError(f"downsample_threshold {config.downsample_threshold:g} keeps about "
                             f"{float(np.dot(counts, keep)):.0f} of {source.num_rows} training rows per epoch, less "
                             f"than one batch ({config.batch_size}); word2vec uses 1e-5 to 1e-3")
        task = self.make_task(counts, keep, item_table)
        with self.strategy.scope():
            self.model.compile(optimizer=self.optimizer, task=task, steps_per_execution=self.steps_per_execution,
                               jit_compile=config.jit_compile)
        initial_epoch = self.restore()
        if initial_epoch >= config.epochs:
            return []
        self._data_epoch.assign(initial_epoch)
        dataset, steps_per_epoch = self._dataset(source, keep)
        recorder = EpochRecorder(source.num_rows)
        guard = FiniteLossGuard() if self._parameter_servers else StepLossGuard()
        own = [DataEpoch(self._data_epoch), guard, recorder,
               CheckpointEachEpoch(self._store, self._checkpoint, self.epoch)]
        extra = [tf.keras.callbacks.TensorBoard(config.tensorboard_dir)] if config.tensorboard_dir else []
        self.model.fit(dataset, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                       callbacks=own + list(callbacks) + extra, verbose=self._verbosity(verbose))
        return recorder.records

    def fit_with_early_stopping(self, examples, validate: Callable[[Any], float], patience: int = 2,
                                **fit_kwargs: Any) -> dict[str, Any]:
        """Trains up to ``epochs`` epochs; after each, ``validate(model) -> float`` (higher is better) goes into
        the logs as ``val_metric`` and Keras' EarlyStopping stops after ``patience`` epochs without
        improvement and restores the best epoch's weights. Returns {"best_epoch", "best_value", "values",
        "history"}."""
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        validation = ValidationMetric(validate, "val_metric")
        stopper = tf.keras.callbacks.EarlyStopping("val_metric", mode="max", patience=patience,
                                                   restore_best_weights=True)
        history = self.fit(examples, callbacks=[validation, stopper, *fit_kwargs.pop("callbacks", ())],
                           **fit_kwargs)
        values = validation.values
        if not values:
            raise ValueError(f"no epoch left to train: the trainer has done {int(self.epoch.numpy())} of "
                             f"{self.config.epochs} epochs")
        best = int(np.argmax(values))  # EarlyStopping restored this epoch's weights when training ended
        first_epoch = history[0]["epoch"]
        return {"best_epoch": first_epoch + best, "best_value": values[best], "values": values, "history": history}
