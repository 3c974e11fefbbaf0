"""The arithmetic of stats, history and check on recorded numbers."""

from __future__ import annotations

import math

import pytest

from cachectl.analysis import (
    align,
    counter_delta,
    counter_rates,
    hit_rate,
    iqr_outliers,
    pearson,
    percentile,
    zscore_anomaly,
)


def test_counter_delta_is_the_growth():
    assert counter_delta(100, 130) == 30


def test_a_counter_that_went_down_was_reset_and_counts_its_new_value():
    assert counter_delta(1000, 25) == 25
    assert counter_delta(1000, 0) == 0


def test_counter_delta_without_a_reading_is_unknown():
    assert counter_delta(None, 5) is None
    assert counter_delta(5, None) is None


def test_counter_rates_survive_a_restart_between_points():
    points = [(0, 100), (10, 200), (20, 50), (30, 150)]
    assert counter_rates(points) == [(10, 10.0), (20, 5.0), (30, 10.0)]


def test_hit_rate_without_traffic_is_unknown_not_zero():
    assert hit_rate(0, 0) is None
    assert hit_rate(3, 1) == 0.75


@pytest.mark.parametrize(
    "pct, expected", [(0, 1), (50, 50.5), (95, 95.05), (99, 99.01), (100, 100)]
)
def test_percentile_interpolates_between_ranks(pct, expected):
    assert percentile(list(range(100, 0, -1)), pct) == pytest.approx(expected)


def test_percentile_of_one_value_and_of_none():
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 95) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_zscore_flags_a_value_far_from_the_baseline():
    baseline = [100, 102, 98, 101, 99, 100, 103, 97]
    calm = zscore_anomaly(101, baseline, sensitivity=3)
    spike = zscore_anomaly(140, baseline, sensitivity=3)
    assert not calm.anomalous and abs(calm.z_score) < 1
    assert spike.anomalous and spike.z_score > 3


def test_zscore_sensitivity_is_the_threshold():
    baseline = [10, 12, 8, 11, 9, 10, 12, 8]
    value = 10 + 2.5 * zscore_anomaly(10, baseline).baseline_stdev
    assert zscore_anomaly(value, baseline, sensitivity=2).anomalous
    assert not zscore_anomaly(value, baseline, sensitivity=3).anomalous


def test_zscore_with_too_little_history_calls_nothing_anomalous():
    result = zscore_anomaly(1e9, [1, 2], sensitivity=1)
    assert not result.anomalous and not result.enough_history


def test_zscore_on_a_flat_baseline():
    assert zscore_anomaly(5, [5] * 10).anomalous is False
    result = zscore_anomaly(6, [5] * 10)
    assert result.anomalous and math.isinf(result.z_score)
    assert result.to_dict()["z_score"] is None  # JSON has no infinity


def test_iqr_outliers_are_outside_tukeys_fences():
    points = [(i, v) for i, v in enumerate([10, 11, 12, 11, 10, 12, 11, 50, -30, 11])]
    fences, outliers = iqr_outliers(points)
    assert [v for _, v in outliers] == [50, -30]
    assert fences.low < 10 and fences.high > 12


def test_iqr_needs_four_points():
    assert iqr_outliers([(0, 1), (1, 100)]) == (None, [])


def test_align_pairs_bucket_means_present_in_both():
    a = [(0, 1), (500, 3), (1000, 5), (3000, 7)]
    b = [(100, 10), (1200, 20), (2000, 30)]
    assert align(a, b, 1000) == [(0, 2.0, 10.0), (1000, 5.0, 20.0)]


def test_pearson_of_related_and_unrelated_series():
    xs = [1, 2, 3, 4, 5]
    assert pearson(xs, [2, 4, 6, 8, 10]) == pytest.approx(1.0)
    assert pearson(xs, [10, 8, 6, 4, 2]) == pytest.approx(-1.0)
    assert pearson(xs, [3, 3, 3, 3, 3]) is None
    assert pearson([1, 2], [1, 2]) is None
