"""One Trainer for every registered model.

``Trainer(model, epochs=5, batch_size=512, ...).fit(examples)`` trains on row-aligned encoded
arrays (both towers' features per positive interaction). For each batch it builds a candidate
matrix [B, C] whose columns come from the configured negative sources (``negatives``):

* ``in_batch``: the batch's own positives (query i's positive is column i);
* ``global``: ``num_global_negatives`` items drawn from count^alpha, shared by the batch (the
  positive is then column 0 of its row);
* ``mixed``: both (Yang et al., WWW'20, "Mixed negative sampling");
* plus ``hard_negatives`` per query from a previous model's middle ranks (``mine_hard_negatives``).

With ``logq_mode="shared"`` every column is instead corrected by its item's training frequency
log(count/N) whatever its source, the usual practice for mixed negatives, kept for comparison.

Each column carries the log q of its own source (see ``tower_zoo.training.samplers``) and the
configured ``loss`` (softmax, bce, hinge, bpr, triplet_logistic; ``tower_zoo.training.losses``)
is applied with accidental hits removed. logQ correction is on by default for the softmax and
not defined for the other losses.

Checkpoints: with ``checkpoint_dir``, the model and optimizer state are saved after every epoch
(TensorFlow's checkpoint format, keeping ``max_checkpoints``), beside a ``manifest.json`` naming
the model, its config and its feature spec. ``fit`` resumes from the latest checkpoint there, and
refuses a checkpoint written for another model, config or feature spec.

Determinism: the Trainer seeds Python, NumPy and TensorFlow with ``seed`` before it builds the
model's weights; the same seed and data give the same weights and metrics on the same machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from typing import Any, Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from tower_zoo.data.pipeline import make_dataset, num_rows
from tower_zoo.models.base import LABEL_FEATURE as LABEL_KEY
from tower_zoo.training.losses import LOSSES, make_loss, valid_negative_mask
from tower_zoo.fileio import write_json_atomic
from tower_zoo.training.checkpoints import (MANIFEST_NAME, check_manifest, checkpoint_checksums,
                                             model_fingerprint, verify_checkpoint)
from tower_zoo.training.samplers import AliasSampler, downsample_positives, unigram_probabilities

NEGATIVE_SOURCES = ("in_batch", "global", "mixed")
SAMPLE_WEIGHT_KEY = "__sample_weight__"
TEACHER_KEY = "__teacher_logit__"
HARD_NEGATIVES_KEY = "__hard_negatives__"


def objective_key(name: str) -> str:
    """Dataset key of objective ``name``'s labels."""
    return f"__label_{name}__"


@dataclasses.dataclass
class TrainerConfig:
    """Training hyper-parameters (all overridable as ``Trainer(model, **overrides)``)."""

    task: str = "retrieval"  # or "ranking": pointwise BCE on exposure labels (pre-ranking)
    epochs: int = 5
    batch_size: int = 512
    learning_rate: float = 1e-3
    loss: str = "softmax"
    margin: float = 0.1
    negatives: str = "in_batch"
    num_global_negatives: int = 256
    alpha: float = 0.75
    hard_negatives: int = 0
    logq_correction: bool | None = None  # None: on for softmax, off otherwise
    logq_mode: str = "per_source"  # or "shared": every column log(count/N), whatever its source
    remove_accidental_hits: bool = True
    downsample_threshold: float = 0.0  # word2vec t for positive down-sampling; 0 = off
    distill_weight: float = 1.0  # ranking: weight of the distillation loss when teacher logits are given
    seed: int = 42
    log_every_steps: int = 0
    checkpoint_dir: str | None = None
    max_checkpoints: int = 2

    def validate(self) -> None:
        for key in ("epochs", "batch_size", "max_checkpoints", "num_global_negatives"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"trainer {key} must be >= 1, got {getattr(self, key)}")
        if not self.learning_rate > 0:
            raise ValueError(f"trainer learning_rate must be > 0, got {self.learning_rate}")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSSES)}")
        if self.negatives not in NEGATIVE_SOURCES:
            raise ValueError(f"unknown negatives {self.negatives!r}; choose from {', '.join(NEGATIVE_SOURCES)}")
        if self.negatives in ("in_batch", "mixed") and self.batch_size < 2:
            raise ValueError(f"in-batch negatives need batch_size >= 2, got {self.batch_size}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.hard_negatives < 0:
            raise ValueError(f"hard_negatives must be >= 0, got {self.hard_negatives}")
        if self.downsample_threshold < 0:
            raise ValueError(f"downsample_threshold must be >= 0, got {self.downsample_threshold}")
        if self.task not in ("retrieval", "ranking"):
            raise ValueError(f"task must be 'retrieval' or 'ranking', got {self.task!r}")
        if self.task == "ranking":
            if self.logq_correction or self.hard_negatives or self.negatives != "in_batch":
                raise ValueError("task='ranking' trains pointwise on labels: negatives, hard_negatives and logQ "
                                 "do not apply")
            self.logq_correction = False
        if self.logq_mode not in ("per_source", "shared"):
            raise ValueError(f"logq_mode must be 'per_source' or 'shared', got {self.logq_mode!r}")
        if self.logq_correction is None:
            self.logq_correction = self.loss == "softmax"
        if self.logq_correction and not LOSSES[self.loss].uses_log_q:
            raise ValueError(f"logQ correction is defined for the sampled softmax only, not loss={self.loss!r}; "
                             "turn it off (--nologq)")

    @property
    def uses_in_batch(self) -> bool:
        return self.negatives in ("in_batch", "mixed")

    @property
    def uses_global(self) -> bool:
        return self.negatives in ("global", "mixed")


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


def distillation_loss(student_logits: tf.Tensor, teacher_logits: tf.Tensor) -> tf.Tensor:
    """MSE between logits plus a pairwise rank loss: for every in-batch pair the teacher orders
    (t_i > t_j), softplus(-(s_i - s_j)) averaged over those pairs. Inputs [B]; output scalar."""
    teacher_logits = tf.cast(teacher_logits, student_logits.dtype)
    mse = tf.reduce_mean(tf.square(student_logits - teacher_logits))
    ordered = tf.cast(teacher_logits[:, tf.newaxis] > teacher_logits[tf.newaxis, :], student_logits.dtype)
    gaps = student_logits[:, tf.newaxis] - student_logits[tf.newaxis, :]
    rank = tf.math.divide_no_nan(tf.reduce_sum(tf.nn.softplus(-gaps) * ordered), tf.reduce_sum(ordered))
    return mse + rank


def gather_rows(table: Mapping[str, tf.Tensor], rows: tf.Tensor) -> dict[str, tf.Tensor]:
    """``{feature: [I, ...]}`` item table, int rows [M] -> ``{feature: [M, ...]}``."""
    return {name: tf.gather(values, rows) for name, values in table.items()}


class Trainer:
    """Fits any ``TwoTowerModel``; see the module docstring."""

    def __init__(self, model, config: TrainerConfig | None = None, strategy: tf.distribute.Strategy | None = None,
                 **overrides: Any):
        """``strategy``: a ``tf.distribute`` strategy (e.g. MirroredStrategy); create the model inside
        ``strategy.scope()``. Each global batch is split across replicas, and every replica scores its
        queries against the item vectors of the whole global batch (all-gathered), so in-batch negatives
        and the loss are those of single-device training with the same batch size."""
        if config is not None and overrides:
            raise ValueError("pass either a TrainerConfig or keyword overrides, not both")
        self.config = config if config is not None else make_trainer_config(overrides)
        self.config.validate()
        self.model = model
        self.strategy = strategy or tf.distribute.get_strategy()
        if strategy is not None and self.config.batch_size % strategy.num_replicas_in_sync:
            raise ValueError(f"batch_size {self.config.batch_size} must divide evenly over "
                             f"{strategy.num_replicas_in_sync} replicas")
        tf.keras.utils.set_random_seed(self.config.seed)
        with self.strategy.scope():
            model.build_weights()
            self.optimizer = tf.keras.optimizers.Adam(self.config.learning_rate)
        self.loss_layer = make_loss(self.config.loss, self.config.margin)
        with self.strategy.scope():
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer, epoch=self.epoch)
        self._manager = None
        if self.config.checkpoint_dir:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self.config.checkpoint_dir,
                                                       max_to_keep=self.config.max_checkpoints)
        self._item_id = model.feature_spec.item_id_feature
        with self.strategy.scope():
            self._log_freq = tf.Variable(tf.zeros([model.feature_spec.item_id.vocab_size]), trainable=False,
                                         name="item_log_frequency")
        self._item_table: dict[str, tf.Tensor] | None = None
        self._sampler: AliasSampler | None = None
        self._train_step = tf.function(self._distributed_step, reduce_retracing=True)

    # ------------------------------------------------------------------ checkpoints
    def restore(self) -> int:
        """Restores the latest checkpoint of ``checkpoint_dir`` if any; returns the epochs done."""
        if self._manager is None or self._manager.latest_checkpoint is None:
            return 0
        check_manifest(self.config.checkpoint_dir, self.model)
        verify_checkpoint(self.config.checkpoint_dir, self._manager.latest_checkpoint)
        self._checkpoint.restore(self._manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("restored %s (epoch %d)", self._manager.latest_checkpoint, int(self.epoch.numpy()))
        return int(self.epoch.numpy())

    def warm_start(self, checkpoint_dir: str) -> None:
        """Loads the model weights (not the optimizer or epoch) of the latest checkpoint in
        ``checkpoint_dir``, written for the same model, config and feature spec: the start of an
        incremental update on new data."""
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint to warm-start from in {checkpoint_dir!r}")
        check_manifest(checkpoint_dir, self.model)
        verify_checkpoint(checkpoint_dir, latest)
        tf.train.Checkpoint(model=self.model).restore(latest).expect_partial().assert_existing_objects_matched()

    def save(self) -> str | None:
        """Saves a checkpoint into ``checkpoint_dir`` and records its files' SHA-256 in the manifest.

        TensorFlow writes each checkpoint file under a temporary name and renames it; the manifest is
        rewritten atomically afterwards, so a crash leaves either the previous checkpoint (still listed) or
        the new one, and a checkpoint whose files changed afterwards is refused on restore."""
        if self._manager is None:
            return None
        path = self._manager.save(checkpoint_number=int(self.epoch.numpy()))
        manifest_path = os.path.join(self.config.checkpoint_dir, MANIFEST_NAME)
        previous = {}
        if os.path.exists(manifest_path):
            with open(manifest_path) as handle:
                previous = json.load(handle).get("checkpoints", {})
        kept = {os.path.basename(p) for p in self._manager.checkpoints}
        checkpoints = {name: files for name, files in previous.items() if name in kept}
        checkpoints[os.path.basename(path)] = checkpoint_checksums(path)
        write_json_atomic(manifest_path, {**model_fingerprint(self.model), "checkpoints": checkpoints})
        return path

    # ------------------------------------------------------------------ one batch
    def _item_vectors(self, features: dict[str, tf.Tensor], head: int | None) -> tf.Tensor:
        """[M, D] item vectors: the item tower's, or objective head ``head``'s."""
        if head is None:
            return self.model.item_embedding(features, training=True)
        return self.model.objective_item_embedding(features, training=True)[:, head]

    def candidate_matrix(self, towers: dict[str, tf.Tensor], batch: dict[str, tf.Tensor], head: int | None = None):
        """Similarities, per-source log q and item codes of every candidate column, and the
        positive's column per row: ([B, C], [B, C], [B, C], [B]).

        ``towers`` are the model's outputs for the batch's (user, positive item) pairs; ``batch``
        holds the positives' item codes and, with hard negatives, their item-table rows.
        ``head``: the objective head whose vectors embed sampled items (None: the item tower)."""
        config, model = self.config, self.model
        users, positives = towers["user"], towers["item"]
        codes = batch[self._item_id]
        hard_rows = batch.get(HARD_NEGATIVES_KEY)
        batch = tf.shape(codes)[0]
        similarities, log_q, ids = [], [], []
        if config.uses_in_batch:
            all_items, all_codes, offset = self._global_batch(positives, codes)
            global_batch = tf.shape(all_codes)[0]
            similarities.append(model.similarity(users, all_items))
            row = tf.gather(self._log_freq, all_codes) + tf.math.log(tf.cast(global_batch, tf.float32))
            log_q.append(tf.tile(row[tf.newaxis, :], [batch, 1]))
            ids.append(tf.tile(all_codes[tf.newaxis, :], [batch, 1]))
            positive_columns = offset + tf.range(batch)
        else:
            similarities.append(model.paired_similarity(users, positives[:, tf.newaxis]))
            log_q.append(self._global_log_q(codes)[:, tf.newaxis])
            ids.append(codes[:, tf.newaxis])
            positive_columns = tf.zeros([batch], tf.int32)
        if config.uses_global:
            rows, sampled_log_q = self._sampler.sample(config.num_global_negatives)
            sampled = gather_rows(self._item_table, rows)
            similarities.append(model.similarity(users, self._item_vectors(sampled, head)))
            log_q.append(tf.tile(sampled_log_q[tf.newaxis, :], [batch, 1]))
            ids.append(tf.tile(sampled[self._item_id][tf.newaxis, :], [batch, 1]))
        if config.hard_negatives:
            hard = gather_rows(self._item_table, tf.reshape(hard_rows, [-1]))  # [B, H] item-table rows
            vectors = tf.reshape(self._item_vectors(hard, head), [batch, config.hard_negatives, -1])
            similarities.append(model.paired_similarity(users, vectors))
            log_q.append(tf.zeros([batch, config.hard_negatives]))  # chosen by rank, not frequency
            ids.append(tf.reshape(hard[self._item_id], [batch, config.hard_negatives]))
        ids = tf.concat(ids, 1)
        if config.logq_mode == "shared":  # the common practice: one unigram correction for every column
            return tf.concat(similarities, 1), tf.gather(self._log_freq, ids), ids, positive_columns
        return tf.concat(similarities, 1), tf.concat(log_q, 1), ids, positive_columns

    def _global_batch(self, positives: tf.Tensor, codes: tf.Tensor):
        """The whole global batch's positives and codes, and where this replica's rows start in it."""
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return positives, codes, tf.constant(0, tf.int32)
        all_items = context.all_gather(positives, axis=0)
        # Collectives across workers reject int32 (host-memory) tensors: gather ids as int64.
        all_codes = tf.cast(context.all_gather(tf.cast(codes, tf.int64), axis=0), codes.dtype)
        sizes = context.all_gather(tf.cast(tf.shape(codes)[:1], tf.int64), axis=0)
        offset = tf.cast(tf.reduce_sum(sizes[:context.replica_id_in_sync_group]), tf.int32)
        return all_items, all_codes, offset

    def _global_log_q(self, codes: tf.Tensor) -> tf.Tensor:
        """log(M · p) of the positives' items under the global sampler (the positive's own
        correction when it is the only non-sampled column)."""
        return (tf.gather(self._code_log_p, codes)
                + tf.math.log(tf.cast(self.config.num_global_negatives, tf.float32)))

    def _batch_loss(self, towers, batch, head=None, sample_weight=None) -> tf.Tensor:
        similarities, log_q, ids, positive_columns = self.candidate_matrix(towers, batch, head)
        negatives = valid_negative_mask(batch[self._item_id], ids, positive_columns, tf.shape(similarities)[1],
                                        self.config.remove_accidental_hits)
        return self.loss_layer(similarities, positive_columns, negatives, self.model.temperature.value,
                               log_q if self.config.logq_correction else None, sample_weight)

    def _objective_losses(self, features, batch) -> tf.Tensor:
        """Multi-objective models: the loss of each head on the examples positive for it."""
        model = self.model
        users = model.objective_user_embedding(features, training=True)
        items = model.objective_item_embedding(features, training=True)
        total = tf.constant(0.0)
        for k, name in enumerate(model.objective_names):
            weight = batch[objective_key(name)]
            if SAMPLE_WEIGHT_KEY in batch:
                weight = weight * batch[SAMPLE_WEIGHT_KEY]
            total += self._batch_loss({"user": users[:, k], "item": items[:, k]}, batch, k, weight)
        return total

    def _ranking_loss(self, features, batch) -> tf.Tensor:
        """Pointwise BCE on exposure labels (+ distillation from teacher logits, + the model's own terms)."""
        towers = self.model(features, training=True)
        logits = self.model.pair_logits(towers["user"], towers["item"])
        labels = batch[LABEL_KEY]
        per_example = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        weight = batch.get(SAMPLE_WEIGHT_KEY)
        loss = (tf.reduce_mean(per_example) if weight is None
                else tf.math.divide_no_nan(tf.reduce_sum(per_example * weight), tf.reduce_sum(weight)))
        if TEACHER_KEY in batch:
            loss += self.config.distill_weight * distillation_loss(logits, batch[TEACHER_KEY])
        return loss + self.model.auxiliary_loss(towers["user"], towers["item"], batch, training=True)

    def _distributed_step(self, batch) -> tf.Tensor:
        """One step on every replica; returns the global mean loss."""
        per_replica = self.strategy.run(self._step_with_total, args=(batch,))
        return self.strategy.experimental_local_results(per_replica)[0]

    def _step_with_total(self, batch) -> tf.Tensor:
        """``_step`` on one replica, returning the loss summed over all replicas (and workers)."""
        loss = self._step(batch)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, loss) if context.num_replicas_in_sync > 1 else loss

    def _step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        features = {k: v for k, v in batch.items() if not k.startswith("__")}
        with tf.GradientTape() as tape:
            if self.config.task == "ranking":
                loss = self._ranking_loss(features, batch)
            elif getattr(self.model, "objective_names", None):
                loss = self._objective_losses(features, batch)
            else:
                towers = self.model(features, training=True)
                loss = self._batch_loss(towers, batch, sample_weight=batch.get(SAMPLE_WEIGHT_KEY))
                loss += self.model.auxiliary_loss(towers["user"], towers["item"], features, training=True)
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
            # Replica gradients are summed: scale so the update is that of the global mean loss.
            loss = loss / self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        # Variables a loss does not use (the score bias under a softmax) get None: skip them quietly.
        self.optimizer.apply_gradients((g, v) for g, v in zip(gradients, variables) if g is not None)
        return loss

    # ------------------------------------------------------------------ training
    def _prepare(self, examples: Mapping[str, np.ndarray], item_table: Mapping[str, np.ndarray] | None,
                 sample_weight: np.ndarray | None, hard_negatives: np.ndarray | None,
                 objective_labels: Mapping[str, np.ndarray] | None = None, labels: np.ndarray | None = None,
                 teacher_logits: np.ndarray | None = None) -> dict[str, np.ndarray]:
        size = num_rows(examples)
        spec = self.model.feature_spec
        missing = sorted(set(spec.names) - set(examples))
        if missing:
            raise ValueError(f"training examples lack feature(s) {missing}; got {sorted(examples)}")
        codes = np.asarray(examples[self._item_id])
        vocab = spec.item_id.vocab_size
        if codes.min() < 0 or codes.max() >= vocab:
            raise ValueError(f"{self._item_id} codes must be in [0, {vocab}), got range "
                             f"[{codes.min()}, {codes.max()}]: were the examples encoded with this spec?")
        counts = np.bincount(codes.astype(np.int64), minlength=vocab)
        self._log_freq.assign(np.log(np.maximum(counts, 1) / counts.sum()).astype(np.float32))
        arrays = {name: np.asarray(examples[name]) for name in spec.names}
        needs_table = self.config.uses_global or self.config.hard_negatives
        if needs_table:
            if item_table is None:
                raise ValueError(f"negatives={self.config.negatives!r} with hard_negatives="
                                 f"{self.config.hard_negatives} needs item_table= (the encoded item corpus)")
            missing = sorted({f.name for f in spec.item_features} - set(item_table))
            if missing:
                raise ValueError(f"item_table lacks item feature(s) {missing}")
            num_rows({k: item_table[k] for k in (f.name for f in spec.item_features)})
            self._item_table = {f.name: tf.constant(item_table[f.name]) for f in spec.item_features}
            table_codes = np.asarray(item_table[self._item_id], np.int64)
            row_probabilities = unigram_probabilities(counts[table_codes], self.config.alpha)
            self._sampler = AliasSampler(row_probabilities, seed=self.config.seed)
            code_p = np.zeros(vocab)
            code_p[table_codes] = row_probabilities
            self._code_log_p = tf.constant(np.log(np.maximum(code_p, 1e-30)), tf.float32)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, np.float32)
            if sample_weight.shape != (size,) or not np.all(np.isfinite(sample_weight)) or sample_weight.min() < 0:
                raise ValueError(f"sample_weight must be finite, non-negative, shape ({size},); got shape "
                                 f"{sample_weight.shape}")
            arrays[SAMPLE_WEIGHT_KEY] = sample_weight
        if self.config.hard_negatives:
            if hard_negatives is None:
                raise ValueError(f"hard_negatives={self.config.hard_negatives} needs hard_negatives= rows "
                                 "(see tower_zoo.training.hard_negatives.mine_hard_negatives)")
            hard_negatives = np.asarray(hard_negatives, np.int32)
            expected = (size, self.config.hard_negatives)
            if hard_negatives.shape != expected:
                raise ValueError(f"hard_negatives must have shape {expected}, got {hard_negatives.shape}")
            arrays[HARD_NEGATIVES_KEY] = hard_negatives
        for key, values, name in ((LABEL_KEY, labels, "labels"), (TEACHER_KEY, teacher_logits, "teacher_logits")):
            if values is None:
                continue
            if self.config.task != "ranking":
                raise ValueError(f"{name} are for task='ranking'; retrieval trains on positive pairs")
            values = np.asarray(values, np.float32)
            if values.shape != (size,) or not np.all(np.isfinite(values)):
                raise ValueError(f"{name} must be finite with shape ({size},), got {values.shape}")
            if key == LABEL_KEY and not np.all(np.isin(values, (0.0, 1.0))):
                raise ValueError("labels must be 0/1")
            arrays[key] = values
        if self.config.task == "ranking" and LABEL_KEY not in arrays:
            raise ValueError("task='ranking' needs labels= (0/1 per exposure)")
        objectives = getattr(self.model, "objective_names", None)
        if objectives and self.config.task == "retrieval":
            missing = [o for o in objectives if o not in (objective_labels or {})]
            if missing:
                raise ValueError(f"model {self.model.model_name!r} has objectives {list(objectives)}: pass "
                                 f"objective_labels= with labels for {missing}")
            for name in objectives:
                labels = np.asarray(objective_labels[name], np.float32)
                if labels.shape != (size,) or not np.all(np.isfinite(labels)):
                    raise ValueError(f"objective_labels[{name!r}] must be finite with shape ({size},), "
                                     f"got {labels.shape}")
                arrays[objective_key(name)] = labels
        elif objective_labels:
            raise ValueError(f"objective_labels given but model {self.model.model_name!r} has one objective; "
                             "fuse them with fuse_label_weights into sample_weight")
        return arrays

    def fit_with_early_stopping(self, examples: Mapping[str, np.ndarray], validate, patience: int = 2,
                                **fit_kwargs: Any) -> dict[str, Any]:
        """Trains one epoch at a time up to ``epochs``; after each, ``validate(model) -> float``
        (higher is better). Stops after ``patience`` epochs without improvement and restores the best
        epoch's weights. Returns {"best_epoch", "best_value", "values", "history"}."""
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        last_epoch, best, best_weights, values, history = self.config.epochs, -np.inf, None, [], []
        for epoch in range(int(self.epoch.numpy()) + 1, last_epoch + 1):
            self.config.epochs = epoch
            history += self.fit(examples, **fit_kwargs)
            values.append(float(validate(self.model)))
            if values[-1] > best:
                best, best_weights, best_epoch = values[-1], self.model.get_weights(), epoch
            elif epoch - best_epoch >= patience:
                break
        self.config.epochs = last_epoch
        self.model.set_weights(best_weights)
        return {"best_epoch": best_epoch, "best_value": best, "values": values, "history": history}

    def fit(self, examples: Mapping[str, np.ndarray], item_table: Mapping[str, np.ndarray] | None = None,
            sample_weight: np.ndarray | None = None, hard_negatives: np.ndarray | None = None,
            objective_labels: Mapping[str, np.ndarray] | None = None, labels: np.ndarray | None = None,
            teacher_logits: np.ndarray | None = None, verbose: bool = True) -> list[dict[str, float]]:
        """Trains for the configured epochs (resuming from a checkpoint when one exists).

        Args:
          examples: ``{feature: [R] or [R, L]}`` encoded arrays of positive (user, item) pairs,
            holding every feature both towers read.
          item_table: the encoded item corpus ``{item feature: [I, ...]}``; needed for global
            negatives and hard negatives.
          sample_weight: [R] per-example weights (e.g. fused multi-objective labels).
          hard_negatives: int [R, hard_negatives] rows of ``item_table`` per example.
          objective_labels: ``{objective: [R] 0/1}`` for multi-objective models (one head each).
          labels: task="ranking": 0/1 [R] per exposure (examples then hold negatives too).
          teacher_logits: task="ranking": [R] a ranker's logits to distil (MSE + pairwise rank loss).
        Returns:
          One dict per epoch run: epoch, loss (mean over steps), seconds, examples_per_second.
        """
        arrays = self._prepare(examples, item_table, sample_weight, hard_negatives, objective_labels, labels,
                               teacher_logits)
        codes = arrays[self._item_id]
        # Continue where this trainer stopped (a checkpoint, or an earlier fit call with fewer epochs).
        start_epoch = self.restore() or int(self.epoch.numpy())
        history = []
        for epoch in range(start_epoch, self.config.epochs):
            epoch_arrays = arrays
            if self.config.downsample_threshold:
                kept = downsample_positives(codes, self.model.feature_spec.item_id.vocab_size,
                                            self.config.downsample_threshold,
                                            np.random.default_rng(self.config.seed + epoch))
                epoch_arrays = {name: values[kept] for name, values in arrays.items()}
            dataset = make_dataset(epoch_arrays, self.config.batch_size, shuffle=True, seed=self.config.seed + epoch)
            if self.strategy.num_replicas_in_sync > 1:
                dataset = self.strategy.experimental_distribute_dataset(dataset)
            started, total, steps = time.perf_counter(), 0.0, 0
            for batch in dataset:
                loss = float(self._train_step(batch))
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss} at epoch {epoch + 1}, step {steps + 1}")
                total, steps = total + loss, steps + 1
                if self.config.log_every_steps and steps % self.config.log_every_steps == 0:
                    logging.info("epoch %d step %d loss %.4f", epoch + 1, steps, total / steps)
            seconds = time.perf_counter() - started
            self.epoch.assign(epoch + 1)
            self.save()
            record = {"epoch": epoch + 1, "loss": total / steps, "seconds": seconds,
                      "examples_per_second": num_rows(epoch_arrays) / seconds}
            history.append(record)
            if verbose:
                print(f"epoch {epoch + 1}/{self.config.epochs}  loss {record['loss']:.4f}  "
                      f"{seconds:.1f}s  {record['examples_per_second']:,.0f} examples/s", flush=True)
        return history
