import math

import numpy as np
import pytest

from benchmarks.stats import (difference_interval, format_difference, format_interval, mean_interval, noise_label,
                              paired_difference, parse_seeds, ratio_interval, summarize, t_quantile_975)


def test_t_interval_by_hand():
    mean, half = mean_interval([1.0, 2.0, 3.0])
    # s = 1, n = 3, t_{0.975, 2} = 4.3027: half-width 4.3027 / sqrt(3) = 2.4842
    assert mean == 2.0 and half == pytest.approx(4.3027 / math.sqrt(3), rel=1e-6)
    assert mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.0)
    single = summarize([0.7])
    assert single["mean"] == 0.7 and math.isnan(single["ci"]) and format_interval(single) == "0.7000"


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 4, 9, 30, 31, 60, 500):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=2e-4), df
    with pytest.raises(ValueError, match="at least 2 values"):
        t_quantile_975(0)


def test_paired_difference_cancels_what_the_seed_does_to_both():
    reference = np.array([0.60, 0.70, 0.80])                 # seeds move both rows a lot ...
    better = reference + np.array([0.010, 0.012, 0.011])     # ... the gap is steady
    difference = paired_difference(better, reference)
    assert difference["mean"] == pytest.approx(0.011) and not difference["within_noise"]
    # Unpaired, the two intervals overlap almost entirely: pairing is what resolves the gap.
    low, high = mean_interval(reference), mean_interval(better)
    assert abs(high[0] - low[0]) < low[1] + high[1]
    noisy = paired_difference(reference + np.array([0.01, -0.012, 0.004]), reference)
    assert noisy["within_noise"] and format_difference(noisy).endswith("(noise)")
    assert format_difference(difference) == "+0.0110 ± 0.0025"
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])


def test_parse_seeds():
    assert parse_seeds("42, 43,44") == [42, 43, 44] and parse_seeds(["1", "2"]) == [1, 2]
    for bad in ("1,1", "a,b", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_seeded_rows_table_marks_the_reference_and_noise():
    from benchmarks.seeded import SeededRows

    rows = SeededRows([1, 2, 3])
    for seed, (ref, steady, noisy) in zip([1, 2, 3], [(0.60, 0.61, 0.61), (0.70, 0.71, 0.69), (0.80, 0.81, 0.80)]):
        rows.add("ref", seed, {"auc": ref, "cost": 1.0})
        rows.add("steady", seed, {"auc": steady, "cost": 2.0})
        rows.add("noisy", seed, {"auc": noisy})
    table = rows.markdown([("auc", "AUC", 4), ("cost", "cost", 1)], "ref", "auc")
    assert table[0] == "| model | AUC | cost | Δ AUC vs ref |"
    assert table[2] == "| ref | 0.7000 ± 0.2484 | 1.0 ± 0.0 | reference |"
    assert table[3] == "| steady | 0.7100 ± 0.2484 | 2.0 ± 0.0 | +0.0100 ± 0.0000 |"
    assert table[4].startswith("| noisy | 0.7000 ± ") and table[4].endswith(" | – | +0.0000 ± 0.0248 (noise) |")
    assert rows.means("cost") == {"ref": {"cost": 1.0}, "steady": {"cost": 2.0}}
    assert set(rows.points("cost", "auc")) == {"ref", "steady"}
    with pytest.raises(ValueError, match="seed 4 is not one of"):
        rows.add("ref", 4, {"auc": 0.5})


def test_interval_format_and_paired_labels():
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.format(".2f") == "2.00 ± 2.48"
    assert math.isnan(mean_interval([5.0]).half_width) and mean_interval([5.0]).format(".1f") == "5.0"
    # The same seed-to-seed swing in both rows cancels when paired: a consistent +0.01 is beyond noise.
    reference = [0.60, 0.70, 0.65]
    assert noise_label([0.61, 0.71, 0.66], reference) == "higher"
    assert noise_label([0.59, 0.69, 0.64], reference) == "lower"
    assert noise_label([0.59, 0.72, 0.64], reference) == "within noise"
    assert difference_interval([0.61, 0.71, 0.66], reference).mean == pytest.approx(0.01)
    assert ratio_interval([2.0, 4.0], [1.0, 2.0]).mean == 2.0
    with pytest.raises(ValueError, match="same seeds"):
        ratio_interval([1.0], [1.0, 2.0])


def test_seeded_rows_round_trip_through_json_keeps_values_per_seed_and_extras():
    from benchmarks.seeded import SeededRows

    rows = SeededRows([7, 8, 9])
    for seed, auc in zip([7, 8, 9], [0.61, 0.64, 0.70]):
        rows.add("a", seed, {"auc": auc})
    rows.extras["a"] = {"codebook_usage": {"7": [1, 2]}}
    back = SeededRows.from_json([7, 8, 9], rows.to_json())
    assert back.runs == rows.runs and back.extras == rows.extras and back.to_json() == rows.to_json()
    with pytest.raises(ValueError, match="3 values for seeds"):
        SeededRows.from_json([7, 8], rows.to_json())
