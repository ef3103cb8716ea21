"""NeuralSort and the ARF list losses against hand computations."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tower_zoo.tasks.sorting import (hard_permutation, neural_sort, ordered_pair_accuracy,
                                     permutation_cross_entropy_loss, recall_m_k_surrogate_loss,
                                     soft_top_m_membership)


def _softmax(values):
    values = np.asarray(values, np.float64)
    e = np.exp(values - values.max())
    return e / e.sum()


def test_neural_sort_row_by_hand():
    # s = (1, 3, 2), n = 3: A_s·1 = (|1-3|+|1-2|, |3-1|+|3-2|, |2-1|+|2-3|) = (3, 3, 2).
    # Rank 1: (n+1-2)·s - A_s·1 = (2-3, 6-3, 4-2) = (-1, 3, 2); rank 3: (-2)·s - A_s·1 = (-5, -9, -6).
    relaxed = neural_sort(tf.constant([[1.0, 3.0, 2.0]]), temperature=1.0).numpy()[0]
    np.testing.assert_allclose(relaxed[0], _softmax([-1, 3, 2]), rtol=1e-6)
    np.testing.assert_allclose(relaxed[2], _softmax([-5, -9, -6]), rtol=1e-6)
    np.testing.assert_allclose(relaxed.sum(axis=1), 1.0, rtol=1e-6)


def test_neural_sort_tends_to_the_true_permutation_as_temperature_falls():
    scores = tf.constant(np.random.default_rng(0).normal(size=(4, 7)), tf.float32)
    exact = hard_permutation(scores).numpy()
    order = np.argsort(-scores.numpy(), axis=1)
    assert all(exact[g, r, order[g, r]] == 1 for g in range(4) for r in range(7))   # row r holds the r-th item
    errors = [np.abs(neural_sort(scores, t).numpy() - exact).max() for t in (1.0, 0.1, 0.001)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-6


def test_recall_surrogate_by_hand_and_at_its_optimum():
    # Reference top-1 of 3 is item 2; the model's scores (0, 1, 2) sort item 2 first at low temperature.
    reference = tf.constant([[0.1, 0.2, 0.9]])
    assert float(recall_m_k_surrogate_loss(tf.constant([[0.0, 1.0, 2.0]]), reference, m=1, k=1, temperature=1e-3)) < 1e-6
    # At temperature 1: membership of item 2 in the top 2 is P̂[1, 2] + P̂[2, 2].
    scores = np.array([0.0, 1.0, 2.0])
    spread = np.abs(scores[:, None] - scores[None, :]).sum(axis=1)
    rows = [_softmax((3 + 1 - 2 * r) * scores - spread) for r in (1, 2)]
    expected = -math.log(rows[0][2] + rows[1][2])
    got = recall_m_k_surrogate_loss(tf.constant([scores], tf.float32), reference, m=2, k=1, temperature=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # The model that puts the reference's best item last pays more.
    worse = recall_m_k_surrogate_loss(tf.constant([[2.0, 1.0, 0.0]]), reference, m=2, k=1, temperature=1.0)
    assert float(worse) > float(got)
    with pytest.raises(ValueError, match="k <= m"):
        recall_m_k_surrogate_loss(tf.constant([scores], tf.float32), reference, m=1, k=2)


def test_soft_top_m_membership_counts_ranks_not_items():
    exact = hard_permutation(tf.constant([[5.0, 1.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(soft_top_m_membership(exact, 2).numpy(), [[1.0, 0.0, 0.0, 1.0]])


def test_permutation_loss_and_opa_prefer_the_reference_order():
    reference = tf.constant([[3.0, 2.0, 1.0, 0.0]])
    right, wrong = tf.constant([[0.9, 0.5, 0.2, 0.1]]), tf.constant([[0.1, 0.2, 0.5, 0.9]])
    assert float(permutation_cross_entropy_loss(right, reference, 0.01)) < 1e-3
    assert float(permutation_cross_entropy_loss(wrong, reference, 0.01)) > 10.0
    assert float(ordered_pair_accuracy(right, reference)) == 1.0
    assert float(ordered_pair_accuracy(wrong, reference)) == 0.0
    # one swapped adjacent pair of 6 ordered pairs: OPA 5/6
    assert float(ordered_pair_accuracy(tf.constant([[0.5, 0.9, 0.2, 0.1]]), reference)) == pytest.approx(5 / 6)
