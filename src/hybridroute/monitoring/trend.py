"""Trends: the least-squares slope of a metric over time, with a t-test on the slope.

Pure numpy and :mod:`math` (the Student-t tail comes from the regularized
incomplete beta function), so an edge box needs no scipy to monitor itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hybridroute.config import check_range

DIRECTIONS = ("up", "down", "flat")
_MAX_ITERATIONS = 300
_TINY = 1e-300


MIN_TREND_POINTS = 3  # fewer windows give a flat, untested trend (a line through two points has no error)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes ``betacf``)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_ITERATIONS + 1):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return result


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b).

    Example: incomplete_beta(1, 1, 0.3) -> 0.3 (the uniform CDF)
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, dof: float) -> float:
    """Two-sided p-value of a Student-t statistic: P(|T| >= |t|) with ``dof`` degrees of freedom.

    Example: t_two_sided_p(2.228, 10) -> 0.05 (about)
    """
    if math.isinf(t):
        return 0.0
    return incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


@dataclass(frozen=True)
class Trend:
    """The direction of a metric over time.

    Attributes:
        slope: change of the metric per hour (least squares).
        p_value: two-sided p-value of the t-test of slope = 0 (1.0 when it cannot be tested).
        direction: "up" or "down" when significant, else "flat".
        significant: ``p_value < alpha``.
        points: how many (time, value) points the fit used.
    """

    slope: float
    p_value: float
    direction: str
    significant: bool
    points: int

    def to_dict(self) -> dict[str, float | str | bool | int]:
        """JSON-ready form."""
        return {
            "slope_per_hour": self.slope,
            "p_value": self.p_value,
            "direction": self.direction,
            "significant": self.significant,
            "points": self.points,
        }


def trend(values: Sequence[float], times: Sequence[float], alpha: float = 0.05) -> Trend:
    """OLS slope of ``values`` against ``times`` (unix seconds) and its t-test.

    Points whose value is None or NaN are left out. Fewer than 3 points, or no
    spread in time, give a flat, untested trend.

    Example: trend([0.9, 0.8, 0.7, 0.6], [0, 3600, 7200, 10800]) -> slope -0.1/h, p 0.0, "down"
    """
    check_range("alpha", alpha, 0.0, 1.0)
    pairs = [(float(t), float(v)) for v, t in zip(values, times, strict=True) if v is not None and not math.isnan(v)]
    if len(pairs) < MIN_TREND_POINTS:
        return Trend(0.0, 1.0, "flat", False, len(pairs))
    x = np.array([p[0] for p in pairs]) / 3600.0
    y = np.array([p[1] for p in pairs])
    x_spread = float(((x - x.mean()) ** 2).sum())
    if x_spread == 0.0:
        return Trend(0.0, 1.0, "flat", False, len(pairs))
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / x_spread)
    residuals = y - y.mean() - slope * (x - x.mean())
    dof = len(pairs) - 2
    standard_error = math.sqrt(float((residuals**2).sum()) / dof / x_spread)
    # A perfect fit (no residual) is certain: any nonzero slope is significant.
    exact = 1.0 if slope == 0.0 else 0.0
    p_value = exact if standard_error == 0.0 else t_two_sided_p(slope / standard_error, dof)
    significant = p_value < alpha and slope != 0.0
    direction = ("up" if slope > 0 else "down") if significant else "flat"
    return Trend(slope, p_value, direction, significant, len(pairs))
