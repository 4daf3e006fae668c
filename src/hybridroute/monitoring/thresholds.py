"""What the monitor checks against (:class:`MonitorThresholds`) and how it windows traffic (:class:`MonitorConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from hybridroute.config import check_positive, check_probability, check_range
from hybridroute.errors import ConfigError


def check_order(low_name: str, low: float, high_name: str, high: float) -> None:
    """Raise unless ``low <= high`` (a critical limit must lie beyond its warning limit).

    Example: check_order("critical_accuracy", 0.9, "min_accuracy", 0.85) -> ConfigError
    """
    if low > high:
        raise ConfigError(f"{low_name} ({low!r}) must be <= {high_name} ({high!r})")


@dataclass(frozen=True)
class MonitorThresholds:
    """Limits that raise alerts: a warning past the first limit, critical past the second.

    Attributes:
        min_edge_share: share of answers given by the edge.
        min_accuracy: accuracy (measured from feedback when there is enough, else estimated).
        max_cost_per_query: USD per answered query.
        max_p95_latency_ms: 95th percentile of server latency.
        max_fallback_rate: share of answers where the cloud was wanted but failed.
        psi_warn: drift PSI that warns; psi_alert: drift PSI that is critical.
        max_estimate_gap: largest tolerated |estimated - measured| accuracy (a warning only).
        min_window: fewer queries than this in a window give no alerts and status "insufficient_data".
        min_feedback: feedback labels needed before measured accuracy replaces the estimate.
    """

    min_edge_share: float = 0.80  # the tutorial's target: the edge answers at least 4 in 5
    critical_edge_share: float = 0.60
    min_accuracy: float = 0.85
    critical_accuracy: float = 0.75
    # Default prices (edge 0.001, cloud 0.0136 USD) make 0.002 the cost of about 7% of queries escalated.
    max_cost_per_query: float = 0.002
    critical_cost_per_query: float = 0.004
    max_p95_latency_ms: float = 150.0
    critical_p95_latency_ms: float = 300.0
    max_fallback_rate: float = 0.02  # a healthy cloud tier rarely fails
    critical_fallback_rate: float = 0.10
    psi_warn: float = 0.1  # the usual PSI reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major
    psi_alert: float = 0.25
    max_estimate_gap: float = 0.05
    min_window: int = 50  # below it, shares and percentiles are too noisy to alert on
    min_feedback: int = 30

    def __post_init__(self) -> None:
        for name in ("min_edge_share", "critical_edge_share", "min_accuracy", "critical_accuracy", "max_fallback_rate"):
            check_probability(name, getattr(self, name))
        check_probability("critical_fallback_rate", self.critical_fallback_rate)
        check_probability("max_estimate_gap", self.max_estimate_gap)
        for name in ("max_cost_per_query", "critical_cost_per_query"):
            check_range(name, getattr(self, name), 0.0, 1e3)
        for name in ("max_p95_latency_ms", "critical_p95_latency_ms", "psi_warn", "psi_alert"):
            check_positive(name, getattr(self, name))
        check_range("min_window", self.min_window, 1, 10_000_000)
        check_range("min_feedback", self.min_feedback, 1, 10_000_000)
        check_order("critical_edge_share", self.critical_edge_share, "min_edge_share", self.min_edge_share)
        check_order("critical_accuracy", self.critical_accuracy, "min_accuracy", self.min_accuracy)
        check_order(
            "max_cost_per_query", self.max_cost_per_query, "critical_cost_per_query", self.critical_cost_per_query
        )
        check_order(
            "max_p95_latency_ms", self.max_p95_latency_ms, "critical_p95_latency_ms", self.critical_p95_latency_ms
        )
        check_order("max_fallback_rate", self.max_fallback_rate, "critical_fallback_rate", self.critical_fallback_rate)
        check_order("psi_warn", self.psi_warn, "psi_alert", self.psi_alert)


@dataclass(frozen=True)
class MonitorConfig:
    """How traffic is cut into windows.

    Attributes:
        window_size: queries per window (the most recent ones form the current window).
        window_seconds: if set, windows are spans of this many seconds instead of counts.
        trend_windows: how many recent windows the trends are fitted on.
        trend_alpha: significance level of the trend t-test.
        drift_bins: quantile bins for PSI.
        cloud_price: USD per cloud call, for the cloud-only comparison (PriceConfig's default).
        queries_per_day: traffic for the projections; None uses the observed rate.
    """

    window_size: int = 1000  # enough for a p95 from ~50 tail samples
    window_seconds: float | None = None
    trend_windows: int = 8
    trend_alpha: float = 0.05
    drift_bins: int = 10
    cloud_price: float = 0.0136
    queries_per_day: float | None = None

    def __post_init__(self) -> None:
        check_range("window_size", self.window_size, 1, 10_000_000)
        if self.window_seconds is not None:
            check_positive("window_seconds", self.window_seconds)
        check_range("trend_windows", self.trend_windows, 1, 100_000)
        check_range("trend_alpha", self.trend_alpha, 1e-9, 0.5)
        check_range("drift_bins", self.drift_bins, 2, 1000)
        check_range("cloud_price", self.cloud_price, 0.0, 1e3)
        if self.queries_per_day is not None:
            check_range("queries_per_day", self.queries_per_day, 0.0, 1e12)
