import math

import pytest
import tensorflow as tf

from tower_zoo.tasks import SampledSoftmaxLoss, valid_negative_mask


def _ce(row, positive):
    return -row[positive] + math.log(sum(math.exp(x) for x in row))


LOGITS = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]]
IDS = [7, 8, 7]  # queries 0 and 2 share item 7: each is an accidental hit for the other
Q = [0.5, 0.25, 0.5]


def _loss(**kwargs):
    layer = SampledSoftmaxLoss(**kwargs)
    return float(layer(tf.constant(LOGITS), tf.constant(IDS), tf.constant(IDS), tf.math.log(tf.constant(Q))))


def test_plain_in_batch_softmax_matches_hand_computation():
    expected = (_ce([2, 1, 0], 0) + _ce([0, 1, 3], 1) + _ce([1, 1, 1], 2)) / 3
    assert _loss(logq_correction=False, remove_accidental_hits=False) == pytest.approx(expected, rel=1e-6)


def test_logq_and_accidental_hits_match_hand_computation():
    # Row 0: column 2 is item 7 again -> removed; logits minus log q.
    row0 = [2 - math.log(0.5), 1 - math.log(0.25)]
    row1 = [0 - math.log(0.5), 1 - math.log(0.25), 3 - math.log(0.5)]
    row2 = [1 - math.log(0.25), 1 - math.log(0.5)]  # column 0 (item 7) removed; positive is column 2
    expected = (_ce(row0, 0) + _ce(row1, 1) + _ce(row2, 1)) / 3
    assert _loss() == pytest.approx(expected, rel=1e-6)
    # A concrete number, so a sign error in the correction cannot hide behind the helper above.
    # Row losses by hand: 0.5514, 1.5848, log(3) = 1.0986.
    assert _loss() == pytest.approx((0.5514 + 1.5848 + 1.0986) / 3, abs=1e-3)


def test_logq_correction_alone_lowers_loss_of_popular_positive():
    # Without hit removal, the correction only shifts columns by -log q.
    expected_row0 = _ce([2 - math.log(0.5), 1 - math.log(0.25), 0 - math.log(0.5)], 0)
    layer = SampledSoftmaxLoss(logq_correction=True, remove_accidental_hits=False)
    per_query_weights = tf.constant([1.0, 0.0, 0.0])
    value = layer(tf.constant(LOGITS), tf.constant(IDS), tf.constant(IDS), tf.math.log(tf.constant(Q)),
                  sample_weight=per_query_weights)
    assert float(value) == pytest.approx(expected_row0, rel=1e-6)


def test_negative_mask_keeps_own_column_and_drops_accidental_hits():
    mask = valid_negative_mask(tf.constant(IDS), tf.constant(IDS), tf.range(3), 3).numpy()
    # Row 0 (item 7): its own column is the positive, column 2 is item 7 again; row 1 (item 8): both others.
    assert mask.tolist() == [[False, True, False], [True, False, True], [False, True, False]]
    kept = valid_negative_mask(tf.constant(IDS), tf.constant(IDS), tf.range(3), 3, remove_accidental_hits=False)
    assert kept.numpy().tolist() == [[False, True, True], [True, False, True], [True, True, False]]


def test_logq_requires_probabilities():
    layer = SampledSoftmaxLoss(logq_correction=True)
    with pytest.raises(ValueError, match="candidate_log_q"):
        layer(tf.constant(LOGITS), tf.constant(IDS), tf.constant(IDS), None)
