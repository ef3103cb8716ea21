"""The TensorFlow Recommenders tutorial retrieval model, as a peer on our split and evaluator.

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

import tensorflow as tf
import tensorflow_recommenders as tfrs


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


__all__ = ["TutorialModel", "TutorialAdapter", "train_tutorial_model"]
