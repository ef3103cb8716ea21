"""LazyAdam and RowwiseAdam against a NumPy reference of the update each promises, step by step."""

import numpy as np
import pytest
import tensorflow as tf

from tower_zoo.training.optimizers import LazyAdam, RowwiseAdam, is_embedding_table, make_optimizer

LR, B1, B2, EPS = 0.01, 0.9, 0.999, 1e-7
TABLE0 = np.arange(15, dtype=np.float32).reshape(5, 3) / 10
KERNEL0 = np.ones((2, 2), np.float32)
# (rows, gradient values) per step: row 0 twice in step 1 (summed), row 2 in both steps, rows 1 and 3 never.
STEPS = [(np.array([0, 0, 2]), np.array([[1, 2, 3], [1, 0, -1], [0.5, -0.5, 4]], np.float32)),
         (np.array([2, 4]), np.array([[-2, 1, 0], [3, 3, -3]], np.float32))]
KERNEL_GRADS = [np.array([[1, -1], [2, 0]], np.float32), np.array([[0, 3], [-1, 1]], np.float32)]


def reference(row_wise: bool):
    """Table after the STEPS by lazy Adam: only rows a step names move, and only their moments change."""
    table, m = TABLE0.copy(), np.zeros_like(TABLE0)
    v = np.zeros((5, 1) if row_wise else (5, 3), np.float32)
    for t, (rows, values) in enumerate(STEPS, start=1):
        summed = {}
        for r, g in zip(rows, values):
            summed[r] = summed.get(r, 0) + g
        alpha = LR * np.sqrt(1 - B2**t) / (1 - B1**t)
        for r, g in summed.items():
            m[r] = B1 * m[r] + (1 - B1) * g
            v[r] = B2 * v[r] + (1 - B2) * (np.mean(g**2) if row_wise else g**2)
            table[r] -= alpha * m[r] / (np.sqrt(v[r]) + EPS)
    return table, m, v


def reference_dense_adam(w, grads):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m, v = B1 * m + (1 - B1) * g, B2 * v + (1 - B2) * g**2
        w = w - LR * np.sqrt(1 - B2**t) / (1 - B1**t) * m / (np.sqrt(v) + EPS)
    return w


def run(optimizer_class):
    table = tf.Variable(TABLE0, name="user/table/embeddings")
    kernel = tf.Variable(KERNEL0, name="dense/kernel")
    optimizer = optimizer_class(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    for (rows, values), kernel_grad in zip(STEPS, KERNEL_GRADS):
        sparse = tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant([5, 3]))
        optimizer.apply_gradients([(sparse, table), (tf.constant(kernel_grad), kernel)])
    return optimizer, table, kernel


@pytest.mark.parametrize("optimizer_class, row_wise", [(LazyAdam, False), (RowwiseAdam, True)])
def test_sparse_steps_match_the_reference_and_dense_weights_get_adam(optimizer_class, row_wise):
    optimizer, table, kernel = run(optimizer_class)
    expected_table, expected_m, expected_v = reference(row_wise)
    np.testing.assert_allclose(table.numpy(), expected_table, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(table.numpy()[[1, 3]], TABLE0[[1, 3]])  # never touched: never moved
    np.testing.assert_allclose(optimizer._momentums[0].numpy(), expected_m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(optimizer._velocities[0].numpy(), expected_v, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(kernel.numpy(), reference_dense_adam(KERNEL0, KERNEL_GRADS), rtol=1e-5, atol=1e-6)


def test_rowwise_slots_take_one_column_per_table_row():
    optimizer, table, kernel = run(RowwiseAdam)
    assert optimizer._velocities[0].shape == (5, 1)      # the table: one second moment per row
    assert optimizer._velocities[1].shape == (2, 2)      # the kernel: Adam's per-coordinate moment
    slot_numbers = sum(v.shape.num_elements() for v in optimizer._momentums + optimizer._velocities)
    assert slot_numbers == 5 * 3 + 5 + 2 * 2 * 2


def test_a_dense_gradient_on_a_table_updates_every_row_row_wise():
    table = tf.Variable(TABLE0, name="embeddings")
    optimizer = RowwiseAdam(learning_rate=LR, beta_1=B1, beta_2=B2, epsilon=EPS)
    gradient = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    optimizer.apply_gradients([(tf.constant(gradient), table)])
    v = (1 - B2) * np.mean(gradient**2, axis=1, keepdims=True)
    alpha = LR * np.sqrt(1 - B2) / (1 - B1)
    np.testing.assert_allclose(table.numpy(), TABLE0 - alpha * (1 - B1) * gradient / (np.sqrt(v) + EPS), rtol=1e-5)


def test_which_variables_are_tables():
    names = {"tower/table/embeddings": True, "categorical_table/embeddings/part_1": True, "embeddings": True,
             "dense/kernel": False, "my_embeddings": False, "embeddings_bias": False}
    for name, expected in names.items():
        assert is_embedding_table(tf.Variable(tf.zeros((4, 2)), name=name)) is expected, name
    assert not is_embedding_table(tf.Variable(tf.zeros(4), name="embeddings"))  # a vector is not a table
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)
