"""Trends: the OLS slope and its t-test, with the Student-t tail computed without scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybridroute.monitoring.trend import incomplete_beta, t_two_sided_p, trend


@pytest.mark.parametrize(
    ("t", "dof", "p"),
    [(2.228139, 10, 0.05), (1.959964, 1e6, 0.05), (12.706205, 1, 0.05), (0.0, 5, 1.0), (3.707428, 6, 0.01)],
)
def test_t_tail_matches_tables(t: float, dof: float, p: float) -> None:
    assert t_two_sided_p(t, dof) == pytest.approx(p, abs=1e-5)
    assert t_two_sided_p(-t, dof) == pytest.approx(p, abs=1e-5)


def test_incomplete_beta_special_cases() -> None:
    assert incomplete_beta(1, 1, 0.3) == pytest.approx(0.3)
    assert incomplete_beta(2, 3, 0.0) == 0.0 and incomplete_beta(2, 3, 1.0) == 1.0
    assert incomplete_beta(2, 3, 0.4) + incomplete_beta(3, 2, 0.6) == pytest.approx(1.0)


def test_trend_matches_scipy_linregress() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    times = np.arange(12) * 900.0
    values = 0.9 - 0.01 * times / 3600 + rng.normal(0, 0.01, 12)
    found, expected = trend(values, times), stats.linregress(times / 3600, values)
    assert found.slope == pytest.approx(expected.slope)
    assert found.p_value == pytest.approx(expected.pvalue, rel=1e-6)


def test_trend_directions() -> None:
    hours = [0, 3600, 7200, 10800, 14400]
    assert trend([0.9, 0.8, 0.7, 0.6, 0.5], hours).direction == "down"
    assert trend([10, 20, 31, 39, 50], hours).direction == "up"
    flat = trend([0.5, 0.52, 0.49, 0.51, 0.5], hours)
    assert flat.direction == "flat" and not flat.significant and flat.p_value > 0.05
    assert trend([0.9, 0.8, 0.7, 0.6, 0.5], hours).slope == pytest.approx(-0.1)


def test_trend_skips_missing_values_and_needs_three_points() -> None:
    assert trend([1.0, None, 2.0], [0, 1, 2]).points == 2  # type: ignore[list-item]
    assert trend([1.0, math.nan, 2.0], [0, 1, 2]).direction == "flat"
    assert trend([1.0, 2.0, 3.0], [5, 5, 5]).p_value == 1.0  # no spread in time
    assert trend([1.0, 1.0, 1.0, 1.0], [0, 1, 2, 3]).direction == "flat"


def test_significance_follows_alpha() -> None:
    rng = np.random.default_rng(0)
    times = (np.arange(8) * 3600.0).tolist()
    for _ in range(5000):  # a noisy rising series whose p-value falls between 0.05 and 0.1
        values = (0.1 * np.arange(8) + rng.normal(0, 0.6, 8)).tolist()
        result = trend(values, times, alpha=0.05)
        if 0.05 < result.p_value < 0.1:
            assert not result.significant and result.direction == "flat"
            assert trend(values, times, alpha=0.1).significant
            return
    pytest.fail("no series with a p-value between 0.05 and 0.1")
