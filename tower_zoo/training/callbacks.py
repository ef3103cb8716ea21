"""Keras callbacks the Trainer adds to ``fit``; each works with any other Keras callback.

Order matters where a callback writes into the epoch's ``logs`` for another to read: ``ValidationMetric``
and ``EpochRecorder`` run before EarlyStopping, TensorBoard and the progress bar, which then see
``val_<name>``, ``examples_per_second`` and ``learning_rate``.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import tensorflow as tf


class DataEpoch(tf.keras.callbacks.Callback):
    """Advances the variable that seeds the data order (``tower_zoo.data.read.source``) after each epoch,
    before Keras creates the next epoch's iterator."""

    def __init__(self, epoch: tf.Variable):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.assign(epoch + 1)


class EpochRecorder(tf.keras.callbacks.Callback):
    """One record per epoch: ``{"epoch", "loss", "seconds", "examples_per_second"}`` (``records``), and
    ``examples_per_second`` / ``epoch_seconds`` / ``learning_rate`` added to the epoch's logs.

    Args:
      examples_per_epoch: rows one epoch reads.
    """

    def __init__(self, examples_per_epoch: int):
        super().__init__()
        self.examples_per_epoch = examples_per_epoch
        self.records: list[dict[str, float]] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        seconds = time.perf_counter() - self._started
        rate = self.examples_per_epoch / max(seconds, 1e-9)
        logs["examples_per_second"] = rate
        logs["epoch_seconds"] = seconds
        learning_rate = getattr(self.model.optimizer, "learning_rate", None)
        if learning_rate is not None:
            logs["learning_rate"] = float(tf.keras.backend.get_value(learning_rate))
        self.records.append({"epoch": epoch + 1, "loss": float(logs["loss"]), "seconds": seconds,
                             "examples_per_second": rate})


class FiniteLossGuard(tf.keras.callbacks.Callback):
    """Stops training with ``FloatingPointError`` when the epoch's loss is NaN or infinite, before a
    checkpoint can record it (epoch-level: usable under ParameterServerStrategy, which allows no batch hooks)."""

    def _check(self, logs: dict | None, where: str) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(f"training loss became {float(loss)} at {where}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._check(logs, f"the end of epoch {epoch + 1}")


class StepLossGuard(FiniteLossGuard):
    """``FiniteLossGuard`` that also checks after every execution of ``steps_per_execution`` steps, so a
    diverging run stops within the epoch."""

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check(logs, f"epoch {self._epoch + 1}, step {batch + 1}")


class CheckpointEachEpoch(tf.keras.callbacks.Callback):
    """Counts finished epochs in ``epoch_counter`` (part of the checkpoint) and, when ``store`` (a
    ``CheckpointStore``) is given, saves ``checkpoint`` with it after every epoch."""

    def __init__(self, store, checkpoint: tf.train.Checkpoint, epoch_counter: tf.Variable):
        super().__init__()
        self.store, self.checkpoint, self.epoch_counter = store, checkpoint, epoch_counter

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_counter.assign(epoch + 1)
        if self.store is not None:
            self.store.save(self.checkpoint, epoch + 1)


class ValidationMetric(tf.keras.callbacks.Callback):
    """Puts ``validate(model)`` (a float, higher is better, e.g. Recall@50 or AUC on held-out data) into the
    epoch's logs as ``name``, where EarlyStopping, ModelCheckpoint or TensorBoard can use it."""

    def __init__(self, validate: Callable[[Any], float], name: str = "val_metric"):
        super().__init__()
        self.validate, self.name = validate, name
        self.values: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float(self.validate(self.model))
        self.values.append(value)
        if logs is not None:
            logs[self.name] = value
