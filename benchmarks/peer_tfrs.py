"""TensorFlow Recommenders peers on our split and evaluator.

* ``SameModelPeer``: *our* model's towers (the very same DSSM or MF) trained by ``tfrs.tasks.Retrieval``
  through Keras ``fit``, with logQ (``candidate_sampling_probability`` = the item's training frequency) and
  accidental-hit removal (``candidate_ids``): the like-for-like comparison of training harnesses.
* ``TutorialModel``: the TFRS "basic retrieval" tutorial model, a quality reference only (another model).


The "basic retrieval" tutorial: a user-id embedding and a movie embedding (32 wide) scored by dot product,
trained with ``tfrs.tasks.Retrieval`` (in-batch softmax, no logQ), Adagrad(0.1), batch 8192. Here it reads
our encoded ``user_id`` / ``item_id`` (the tutorial's StringLookup + Embedding over ids and titles is the same
model: one row per user and per movie) and trains on the same leave-last-out training interactions.
``TutorialAdapter`` gives it our ``user_embedding`` / ``item_embedding`` interface so ``RetrievalEvaluator``
ranks the full corpus for it exactly as for our models.
"""

from __future__ import annotations

import time

import tower_zoo  # noqa: F401,I001  (legacy Keras first)

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

PEER_OPTIMIZERS = {"adam": lambda: tf.keras.optimizers.Adam(1e-3),
                   "adagrad": lambda: tf.keras.optimizers.Adagrad(0.1)}  # the tutorial's optimizer


class SameModelPeer(tfrs.Model):
    """Our model's ``user_embedding`` / ``item_embedding`` under ``tfrs.tasks.Retrieval`` (in-batch softmax,
    the model's temperature, logQ by item frequency, accidental hits removed by item code)."""

    def __init__(self, model, item_counts: np.ndarray):
        super().__init__()
        self.towers = model
        frequency = np.asarray(item_counts, np.float64) / max(float(np.sum(item_counts)), 1.0)
        self.frequency = tf.constant(np.maximum(frequency, 1e-12), tf.float32)
        self.item_id = model.feature_spec.item_id_feature
        self.task = tfrs.tasks.Retrieval(temperature=float(model.temperature.value), remove_accidental_hits=True)

    def compute_loss(self, features, training=False):
        codes = features[self.item_id]
        return self.task(self.towers.user_embedding(features, training=training),
                         self.towers.item_embedding(features, training=training),
                         candidate_sampling_probability=tf.gather(self.frequency, codes), candidate_ids=codes)


class EpochTimer(tf.keras.callbacks.Callback):
    """Seconds of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def train_same_model_peer(model, examples, epochs: int, optimizer: str = "adam", batch_size: int = 512,
                          seed: int = 42, steps_per_epoch: int | None = None):
    """Trains ``model`` (built by ``tower_zoo.create_model``) the TFRS way; returns per-epoch seconds.

    The data pipeline is tf.data's usual shuffle / batch / prefetch over the same encoded arrays."""
    tf.keras.utils.set_random_seed(seed)
    spec = model.feature_spec
    counts = np.bincount(examples[spec.item_id_feature], minlength=spec.item_id.vocab_size)
    peer = SameModelPeer(model, counts)
    peer.compile(optimizer=PEER_OPTIMIZERS[optimizer]())
    features = {name: examples[name] for name in spec.names}
    data = tf.data.Dataset.from_tensor_slices(features).shuffle(len(examples[spec.item_id_feature]), seed=seed)
    data = data.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if steps_per_epoch is not None:
        data = data.repeat()
    timer = EpochTimer()
    peer.fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=0, callbacks=[timer])
    return timer.seconds


class TutorialModel(tfrs.Model):
    def __init__(self, num_users: int, num_items: int, dim: int = 32):
        super().__init__()
        self.user_model = tf.keras.layers.Embedding(num_users, dim)
        self.item_model = tf.keras.layers.Embedding(num_items, dim)
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features, training=False):
        return self.task(self.user_model(features["user_id"]), self.item_model(features["item_id"]))


class TutorialAdapter:
    """Our evaluator's interface over the tutorial model."""

    def __init__(self, model: TutorialModel):
        self.model = model

    def user_embedding(self, features, training=False):
        return self.model.user_model(features["user_id"])

    def item_embedding(self, features, training=False):
        return self.model.item_model(features["item_id"])


def train_tutorial_model(split, epochs: int, seed: int = 42, batch_size: int = 8192):
    """Returns (adapter, examples per second of training)."""
    tf.keras.utils.set_random_seed(seed)
    spec = split.data.feature_spec
    model = TutorialModel(spec.user_id.vocab_size, spec.item_id.vocab_size)
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate=0.1))
    examples = split.examples("train")
    data = tf.data.Dataset.from_tensor_slices({"user_id": examples["user_id"], "item_id": examples["item_id"]})
    data = data.shuffle(len(examples["user_id"]), seed=seed).batch(batch_size).cache()
    started = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - started
    return TutorialAdapter(model), epochs * len(examples["user_id"]) / seconds


__all__ = ["SameModelPeer", "train_same_model_peer", "TutorialModel", "TutorialAdapter", "train_tutorial_model"]
