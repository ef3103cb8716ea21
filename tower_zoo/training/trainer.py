"""One Trainer for every registered model.

``Trainer(model, epochs=5, batch_size=512, ...).fit(examples)`` trains on row-aligned encoded
arrays (both towers' features per positive interaction) with in-batch sampled softmax: each
query's positive item is the correct class among all items of the batch. See
``tower_zoo.training.losses`` for the logQ correction and accidental-hit removal.

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
from tower_zoo.training.losses import SampledSoftmaxLoss

MANIFEST_NAME = "manifest.json"


@dataclasses.dataclass
class TrainerConfig:
    """Training hyper-parameters (all overridable as ``Trainer(model, **overrides)``)."""

    epochs: int = 5
    batch_size: int = 512
    learning_rate: float = 1e-3
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    seed: int = 42
    log_every_steps: int = 0
    checkpoint_dir: str | None = None
    max_checkpoints: int = 2

    def validate(self) -> None:
        for key in ("epochs", "batch_size", "max_checkpoints"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"trainer {key} must be >= 1, got {getattr(self, key)}")
        if not self.learning_rate > 0:
            raise ValueError(f"trainer learning_rate must be > 0, got {self.learning_rate}")
        if self.batch_size < 2:
            raise ValueError(f"in-batch negatives need batch_size >= 2, got {self.batch_size}")


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


def item_log_frequency(item_codes: np.ndarray, vocab_size: int) -> np.ndarray:
    """log(count_j / N) per encoded item j over training positives: float32 [vocab_size].

    Items never seen in training cannot be in-batch candidates; they get log(1 / N).
    """
    counts = np.bincount(np.asarray(item_codes, np.int64), minlength=vocab_size).astype(np.float64)
    total = counts.sum()
    return np.log(np.maximum(counts, 1.0) / total).astype(np.float32)


def model_fingerprint(model) -> dict[str, Any]:
    """What a checkpoint must match to be restored into ``model``."""
    config = model.get_config()
    spec_json = json.dumps(config["feature_spec"], sort_keys=True, default=str)
    return {
        "model_name": getattr(model, "model_name", type(model).__name__),
        "model_config": json.loads(json.dumps(config["config"], default=list)),
        "feature_spec_sha256": hashlib.sha256(spec_json.encode()).hexdigest(),
    }


def write_json_atomic(path: str, payload: Mapping[str, Any]) -> None:
    """Writes JSON to a temp file in the same directory, then renames it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_manifest(checkpoint_dir: str, model) -> None:
    """Raises ValueError when ``checkpoint_dir`` holds a checkpoint of a different model/config/spec."""
    path = os.path.join(checkpoint_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        raise ValueError(f"checkpoint directory {checkpoint_dir!r} has checkpoints but no {MANIFEST_NAME}")
    try:
        with open(path) as handle:
            saved = json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"unreadable checkpoint manifest {path!r}: {err}") from err
    expected = model_fingerprint(model)
    for key, value in expected.items():
        if saved.get(key) != value:
            raise ValueError(
                f"checkpoint in {checkpoint_dir!r} does not match this model: {key} is "
                f"{saved.get(key)!r} there, {value!r} here")


class Trainer:
    """Fits any ``TwoTowerModel`` with in-batch sampled softmax; see the module docstring."""

    def __init__(self, model, config: TrainerConfig | None = None, **overrides: Any):
        if config is not None and overrides:
            raise ValueError("pass either a TrainerConfig or keyword overrides, not both")
        self.config = config if config is not None else make_trainer_config(overrides)
        self.config.validate()
        self.model = model
        tf.keras.utils.set_random_seed(self.config.seed)
        model.build_weights()
        self.optimizer = tf.keras.optimizers.Adam(self.config.learning_rate)
        self.loss_layer = SampledSoftmaxLoss(self.config.logq_correction, self.config.remove_accidental_hits)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self._checkpoint = tf.train.Checkpoint(model=model, optimizer=self.optimizer, epoch=self.epoch)
        self._manager = None
        if self.config.checkpoint_dir:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self.config.checkpoint_dir,
                                                       max_to_keep=self.config.max_checkpoints)
        self._item_id = model.feature_spec.item_id_feature
        self._log_q = tf.Variable(tf.zeros([model.feature_spec.item_id.vocab_size]), trainable=False,
                                  name="item_log_q")
        self._train_step = tf.function(self._step, reduce_retracing=True)

    # ------------------------------------------------------------------ checkpoints
    def restore(self) -> int:
        """Restores the latest checkpoint of ``checkpoint_dir`` if any; returns the epochs done."""
        if self._manager is None or self._manager.latest_checkpoint is None:
            return 0
        check_manifest(self.config.checkpoint_dir, self.model)
        self._checkpoint.restore(self._manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("restored %s (epoch %d)", self._manager.latest_checkpoint, int(self.epoch.numpy()))
        return int(self.epoch.numpy())

    def save(self) -> str | None:
        """Saves a checkpoint (and the manifest) into ``checkpoint_dir``; returns its path."""
        if self._manager is None:
            return None
        write_json_atomic(os.path.join(self.config.checkpoint_dir, MANIFEST_NAME), model_fingerprint(self.model))
        return self._manager.save(checkpoint_number=int(self.epoch.numpy()))

    # ------------------------------------------------------------------ training
    def _step(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        item_ids = batch[self._item_id]
        with tf.GradientTape() as tape:
            towers = self.model(batch, training=True)
            logits = self.model.logits(towers["user"], towers["item"])
            loss = self.loss_layer(logits, item_ids, item_ids, tf.gather(self._log_q, item_ids))
            loss += self.model.auxiliary_loss(towers["user"], towers["item"], batch, training=True)
            if self.model.losses:
                loss += tf.add_n(self.model.losses)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def fit(self, examples: Mapping[str, np.ndarray], verbose: bool = True) -> list[dict[str, float]]:
        """Trains for the configured epochs (resuming from a checkpoint when one exists).

        Args:
          examples: ``{feature: [R] or [R, L]}`` encoded arrays of positive (user, item) pairs,
            holding every feature both towers read.
        Returns:
          One dict per epoch run: epoch, loss (mean over steps), seconds, examples_per_second.
        """
        size = num_rows(examples)
        missing = sorted(set(self.model.feature_spec.names) - set(examples))
        if missing:
            raise ValueError(f"training examples lack feature(s) {missing}; got {sorted(examples)}")
        codes = np.asarray(examples[self._item_id])
        vocab = self.model.feature_spec.item_id.vocab_size
        if codes.min() < 0 or codes.max() >= vocab:
            raise ValueError(f"{self._item_id} codes must be in [0, {vocab}), got range "
                             f"[{codes.min()}, {codes.max()}]: were the examples encoded with this spec?")
        self._log_q.assign(item_log_frequency(codes, vocab))
        start_epoch = self.restore()
        history = []
        for epoch in range(start_epoch, self.config.epochs):
            dataset = make_dataset(examples, self.config.batch_size, shuffle=True,
                                   seed=self.config.seed + epoch)
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
                      "examples_per_second": size / seconds}
            history.append(record)
            if verbose:
                print(f"epoch {epoch + 1}/{self.config.epochs}  loss {record['loss']:.4f}  "
                      f"{seconds:.1f}s  {record['examples_per_second']:,.0f} examples/s", flush=True)
        return history
