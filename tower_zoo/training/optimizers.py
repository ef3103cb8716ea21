"""Optimizers whose cost per step follows the rows a batch touches, not the vocabulary size.

Keras' Adam turns the sparse gradient of an embedding lookup (``tf.IndexedSlices``: the rows a batch
read) into a dense update: every step it decays both moment slots of *every* row and rewrites every
row of the table. With 1M-row tables that is three full-table passes per step, and training slows
47× between 10k and 1M ids.

``LazyAdam`` (the "lazy" Adam of TensorFlow Addons and of large-scale recommender practice) updates, for
a sparse gradient, only the rows it names: it reads their moments, applies Adam's moment update and
bias-corrected step to those rows, and writes them back with scatter operations. Dense variables (MLP
weights) get Keras' Adam unchanged. The one difference from Adam, documented and intended: the moments
of a row the batch did not touch do not decay that step (its next update uses the moments as they were
when it was last seen), and its weights do not move on stale momentum.

``make_optimizer(name, learning_rate)`` builds ``lazy_adam`` (default), ``adam`` (dense, the Keras
one), ``adagrad`` (Keras' Adagrad is already row-sparse for ``IndexedSlices``) or ``sgd``.
"""

from __future__ import annotations

import tensorflow as tf

OPTIMIZERS = ("lazy_adam", "adam", "adagrad", "sgd")


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-sparse updates for ``tf.IndexedSlices`` gradients; see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad or self.adaptive_epsilon:
            raise ValueError("LazyAdam supports neither amsgrad nor adaptive_epsilon")

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        key = self._var_key(variable)
        m = self._momentums[self._index_dict[key]]
        v = self._velocities[self._index_dict[key]]
        # Keras' apply_gradients has already summed duplicate indices (_deduplicate_sparse_grad).
        rows, values = gradient.indices, tf.cast(gradient.values, dtype)
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    """The optimizer ``name`` (one of ``OPTIMIZERS``) with ``learning_rate``."""
    builders = {"lazy_adam": LazyAdam, "adam": tf.keras.optimizers.Adam, "adagrad": tf.keras.optimizers.Adagrad,
                "sgd": tf.keras.optimizers.SGD}
    if name not in builders:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return builders[name](learning_rate=learning_rate)
