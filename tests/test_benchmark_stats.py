import math

import pytest

from benchmarks.stats import difference_interval, mean_interval, noise_label, ratio_interval


def test_mean_interval_by_hand():
    # values 1, 2, 3: mean 2, sample sd 1, t(2) = 4.303 -> half width 4.303 / sqrt(3)
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.half_width == pytest.approx(4.303 / math.sqrt(3))
    assert interval.format(".2f") == "2.00 ± 2.48"
    assert math.isnan(mean_interval([5.0]).half_width) and mean_interval([5.0]).format(".1f") == "5.0"


def test_paired_differences_decide_noise():
    # The same seed-to-seed swing in both rows cancels when paired: a consistent +0.01 is beyond noise.
    reference = [0.60, 0.70, 0.65]
    assert noise_label([0.61, 0.71, 0.66], reference) == "higher"
    assert noise_label([0.59, 0.72, 0.64], reference) == "within noise"
    assert difference_interval([0.61, 0.71, 0.66], reference).mean == pytest.approx(0.01)
    assert ratio_interval([2.0, 4.0], [1.0, 2.0]).mean == 2.0
    with pytest.raises(ValueError, match="differ in count"):
        ratio_interval([1.0], [1.0, 2.0])
