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

``RowwiseAdam`` is LazyAdam with one second moment per *row* of an embedding table instead of one per
coordinate: the "partial row-wise Adam" of FBGEMM / TorchRec, used for production-size tables. A table of
shape [N, D] then carries slots of [N, D] (first moment, per coordinate as in Adam) and [N, 1] (the mean
over the row's D coordinates of the squared gradient, decayed as Adam's second moment), so tables plus
slots take (2 + 1/D)× the tables instead of Adam's 3×, and the sparse update writes one column less per
row. A row's step is Adam's bias-corrected m̂ / (√v̂ + ε) with v̂ shared by the row's coordinates. Which
variables are tables: the weights of Keras ``Embedding`` layers (named ``embeddings``, or
``embeddings/part_K`` when a parameter-server strategy shards them); every other variable (MLPs, biases)
gets LazyAdam's per-coordinate moments.

``make_optimizer(name, learning_rate)`` builds ``rowwise_adam`` (default), ``lazy_adam``, ``adam`` (dense,
the Keras one), ``adagrad`` (Keras' Adagrad is already row-sparse for ``IndexedSlices``) or ``sgd``.
"""

from __future__ import annotations

import re

import tensorflow as tf

OPTIMIZERS = ("rowwise_adam", "lazy_adam", "adam", "adagrad", "sgd")
_TABLE_NAME = re.compile(r"(^|/)embeddings(/part_\d+)?(:\d+)?$")


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam with row-sparse updates for ``tf.IndexedSlices`` gradients; see the module docstring."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad or self.adaptive_epsilon:
            raise ValueError(f"{type(self).__name__} supports neither amsgrad nor adaptive_epsilon")

    def _second_moment_term(self, squared_gradient: tf.Tensor, variable) -> tf.Tensor:
        """What one step adds (times 1 − β₂) to ``variable``'s second moment: here the squared gradient."""
        return squared_gradient

    def _sparse_update(self, gradient: tf.IndexedSlices, variable) -> None:
        """Adam's moment updates and bias-corrected step on the rows ``gradient`` names, and no others."""
        dtype = variable.dtype
        lr = tf.cast(self.learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        # Keras' apply_gradients has already summed duplicate indices (_deduplicate_sparse_grad).
        rows, values = gradient.indices, tf.cast(gradient.values, dtype)
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        term = self._second_moment_term(tf.square(values), variable)
        if term.shape[1:] != v.shape[1:]:
            # A scatter of rows of the wrong width is not always caught by the kernel: refuse it here.
            raise ValueError(f"{type(self).__name__}: second-moment slot {v.shape} of {variable.name} does not "
                             f"match the update's rows {term.shape}")
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * term
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))

    def update_step(self, gradient, variable):
        if isinstance(gradient, tf.IndexedSlices):
            return self._sparse_update(gradient, variable)
        return super().update_step(gradient, variable)


def is_embedding_table(variable) -> bool:
    """Whether ``variable`` is the [N, D] weight of a Keras ``Embedding`` layer (or one shard of it)."""
    return variable.shape.rank == 2 and bool(_TABLE_NAME.search(variable.name))


class RowwiseAdam(LazyAdam):
    """LazyAdam with one second moment per embedding-table row (slot [N, 1]); see the module docstring.

    Non-table variables are updated exactly as by ``LazyAdam``. A table's gradient that arrives dense
    (not ``IndexedSlices``) is applied to all rows as a sparse gradient naming every row would be.
    """

    def build(self, var_list):
        if getattr(self, "_built", False):
            return
        # The base optimizer's build (index of variables), then Adam's slots with a [N, 1] second moment for
        # tables, created at that shape (never a full [N, D] one first: at 5M rows that is 0.6 GB).
        super(tf.keras.optimizers.Adam, self).build(var_list)
        self._built = True
        self._momentums, self._velocities = [], []
        # Decided once, by key: under a tf.distribute strategy update_step receives each replica's component
        # (named ".../embeddings/replica_1"), whose key is its container's.
        self._row_wise_keys = {self._var_key(variable) for variable in var_list if is_embedding_table(variable)}
        for variable in var_list:
            self._momentums.append(self.add_variable_from_reference(model_variable=variable, variable_name="m"))
            table = self._is_row_wise(variable)
            self._velocities.append(self.add_variable_from_reference(
                model_variable=variable, variable_name="v_row" if table else "v",
                shape=(variable.shape[0], 1) if table else None))

    def _is_row_wise(self, variable) -> bool:
        return self._var_key(variable) in self._row_wise_keys

    def _second_moment_term(self, squared_gradient, variable):
        if self._is_row_wise(variable):
            return tf.reduce_mean(squared_gradient, axis=1, keepdims=True)  # [rows, 1]
        return squared_gradient

    def update_step(self, gradient, variable):
        if self._is_row_wise(variable) and not isinstance(gradient, tf.IndexedSlices):
            rows = tf.range(tf.shape(gradient, out_type=tf.int64)[0])
            return self._sparse_update(tf.IndexedSlices(gradient, rows), variable)
        return super().update_step(gradient, variable)


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    """The optimizer ``name`` (one of ``OPTIMIZERS``) with ``learning_rate``."""
    builders = {"rowwise_adam": RowwiseAdam, "lazy_adam": LazyAdam, "adam": tf.keras.optimizers.Adam,
                "adagrad": tf.keras.optimizers.Adagrad, "sgd": tf.keras.optimizers.SGD}
    if name not in builders:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return builders[name](learning_rate=learning_rate)
