"""The monitor: windows, alerts, health, trends, recommendations and cost over real (audited) traffic.

:func:`analyze` is the one entry point: it cuts time-ordered audit records
into windows (:func:`~hybridroute.monitoring.window.split_windows`), checks
the newest against the thresholds (:func:`~hybridroute.monitoring.health.evaluate`),
scores it, fits a trend per metric over the recent windows, projects costs,
and writes recommendations. :class:`Monitor` keeps the recent records of a
running service in memory and analyzes them on demand.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridroute.monitoring.drift import Reference
from hybridroute.monitoring.health import (
    CRITICAL,
    DRIFT_NAMES,
    Alert,
    Health,
    evaluate,
    health_score,
    window_drift,
)
from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
from hybridroute.monitoring.trend import Trend, trend
from hybridroute.monitoring.window import RecordLike, Window, split_windows, window_stats

__all__ = [
    "Alert",
    "CostProjection",
    "Health",
    "Monitor",
    "MonitorConfig",
    "MonitorReport",
    "MonitorThresholds",
    "Trend",
    "Window",
    "analyze",
    "cost_projection",
    "evaluate",
    "health_score",
    "json_safe",
    "recommendations",
    "trend",
    "window_stats",
]

DAYS_PER_MONTH = 30  # as the ledger's projection: a stated month, not a calendar one
TREND_METRICS = ("edge_share", "estimated_accuracy", "feedback_accuracy", "latency_p95_ms", "cost_per_query")
# metric -> (the direction that hurts, the alert that already covers it)
ADVERSE = {
    "edge_share": ("down", "edge_share_low"),
    "estimated_accuracy": ("down", "accuracy_low"),
    "latency_p95_ms": ("up", "latency_p95_high"),
    "cost_per_query": ("up", "cost_per_query_high"),
}
INPUT_DRIFT = ("drift_text_length", "drift_unk_rate")


# ---------------------------------------------------------------- cost


@dataclass(frozen=True)
class CostProjection:
    """Cost at the observed rate, projected to a day and a 30-day month, against cloud-only.

    Attributes:
        queries_per_day: observed (queries over the span of the records) or configured traffic.
        cost_per_query: USD, in the current window (None before any answer).
        daily_cost, monthly_cost: the hybrid's projected cost (None before any answer).
        daily_cloud_only, monthly_cloud_only: the same traffic, every query to the cloud.
        monthly_savings: ``monthly_cloud_only - monthly_cost`` (None before any answer).
        savings_pct: savings as a percent of cloud-only (None before any answer, or at no measured traffic).
    """

    queries_per_day: float
    cost_per_query: float | None
    daily_cost: float | None
    monthly_cost: float | None
    daily_cloud_only: float
    monthly_cloud_only: float
    monthly_savings: float | None
    savings_pct: float | None

    def to_dict(self) -> dict[str, float | None]:
        """JSON-ready form."""
        return dict(self.__dict__)


def observed_rate(records: Sequence[RecordLike]) -> float:
    """Queries per day over the records' time span (0 when they span no time).

    Example: 1440 records over one day -> 1440.0
    """
    if len(records) < 2:
        return 0.0
    span = max(r.time for r in records) - min(r.time for r in records)
    return (len(records) - 1) / span * 86400.0 if span > 0 else 0.0


def cost_projection(cost_per_query: float | None, queries_per_day: float, cloud_price: float) -> CostProjection:
    """Daily and monthly cost of the hybrid and of cloud-only at ``queries_per_day``.

    ``cost_per_query`` None (no answers yet) leaves the hybrid's figures and the savings None: unknown, not 0.

    Example: 0.00168 USD/query, 10 000/day, cloud 0.0136 -> daily 16.8 vs 136, monthly 504 vs 4080
    """
    cloud_daily = cloud_price * queries_per_day
    if cost_per_query is None:
        return CostProjection(queries_per_day, None, None, None, cloud_daily, cloud_daily * DAYS_PER_MONTH, None, None)
    daily = cost_per_query * queries_per_day
    saved = 100.0 * (cloud_daily - daily) / cloud_daily if cloud_daily > 0 else None
    return CostProjection(
        queries_per_day,
        cost_per_query,
        daily,
        daily * DAYS_PER_MONTH,
        cloud_daily,
        cloud_daily * DAYS_PER_MONTH,
        (cloud_daily - daily) * DAYS_PER_MONTH,
        saved,
    )


# ---------------------------------------------------------------- recommendations


def _top_reasons(window: Window, k: int = 3) -> str:
    reasons = list(window.escalation_reasons.items())[:k]
    return ", ".join(f"{r} {n}" for r, n in reasons) or "none recorded"


def _accuracy_fall_points(series: Sequence[Window], min_window: int) -> float:
    """Points the estimated accuracy fell from the oldest to the newest window of ``min_window`` queries or more.

    A window of a few records (the oldest one often is) estimates nothing; 0 when fewer than two qualify.
    """
    full = [w for w in series if w.queries >= min_window]
    if len(full) < 2:
        return 0.0
    return 100.0 * (full[0].estimated_accuracy - full[-1].estimated_accuracy)


def _advice_for(alert: Alert, window: Window, by_name: dict[str, Alert], fell: float, t: MonitorThresholds) -> str:
    v, limit = alert.value, alert.threshold
    drifted = [by_name[n] for n in INPUT_DRIFT if n in by_name]
    if alert.name == "edge_share_low":
        target = round(max(0.05, (1.0 - t.min_edge_share) / 2.0), 2)
        return (
            f"edge share {v:.2f} below {limit:.2f}: the router escalates too much (top reasons: "
            f"{_top_reasons(window)}) — recalibrate with `hybridroute calibrate --run RUN --max-cloud-share {target}`"
        )
    if alert.name == "accuracy_low" and drifted:
        shift = ", ".join(f"{DRIFT_NAMES[d.name.removeprefix('drift_')]} PSI {d.value:.2f}" for d in drifted)
        change = f"estimated accuracy fell {fell:.0f} points" if fell >= 1 else f"accuracy {v:.2f} is below {limit:.2f}"
        return f"{change} while inputs drifted ({shift}): retrain on recent traffic"
    if alert.name == "accuracy_low":
        return (
            f"accuracy {v:.2f} below {limit:.2f} with no input drift alert: collect feedback labels on recent "
            "answers (`POST /v1/feedback`), then retrain, or escalate more with "
            f"`hybridroute calibrate --run RUN --target-accuracy {t.min_accuracy:.2f}`"
        )
    if alert.name == "accuracy_estimate_gap":
        return (
            f"the confidence-based estimate is off by {v:+.2f} against feedback labels: the calibration is stale — "
            "re-fit the temperature and router on recent labelled traffic (`hybridroute calibrate --run RUN`)"
        )
    if alert.name == "latency_p95_high" and window.cloud_share > 1.0 - t.min_edge_share:
        return (
            f"p95 latency {v:.0f} ms above {limit:.0f} ms with {100 * window.cloud_share:.0f}% of answers waiting "
            "for the cloud: reduce escalations (see the edge share) or check the cloud tier's latency"
        )
    if alert.name == "latency_p95_high":
        return (
            f"p95 latency {v:.0f} ms above {limit:.0f} ms although the cloud share is low: the edge is slow — "
            "check CPU contention, ONNX Runtime threads and `--max-batch`/`--max-wait-ms`"
        )
    if alert.name == "cost_per_query_high":
        return (
            f"cost per query {v:.4f} USD above {limit:.4f} USD with a cloud share of {window.cloud_share:.2f}: "
            "fewer escalations lower it (see the edge share and the cost projection)"
        )
    if alert.name == "fallback_rate_high":
        return (
            f"{100 * v:.1f}% of answers fell back to the edge (reasons: {_top_reasons(window)}): "
            "check the cloud tier (`/readyz`), its timeout and the circuit breaker"
        )
    feature = DRIFT_NAMES.get(alert.name.removeprefix("drift_"), alert.name)
    return (
        f"{feature} drifted from the validation reference (PSI {v:.2f}): review recent queries; "
        "retrain on recent traffic, or rebuild the reference if the change is expected"
    )


def recommendations(
    window: Window,
    alerts: Sequence[Alert],
    trends: dict[str, Trend],
    thresholds: MonitorThresholds | None = None,
    series: Sequence[Window] = (),
) -> list[str]:
    """Concrete next steps, one per alert (critical first), plus warnings from adverse trends.

    Example: edge share 0.62 -> ["edge share 0.62 below 0.80: the router escalates too much ... --max-cloud-share 0.1`"]
    """
    t = thresholds or MonitorThresholds()
    if window.queries < t.min_window:
        return [
            f"only {window.queries} queries in the current window, fewer than the {t.min_window} needed to judge "
            "it: no verdict yet (send traffic, or lower min_window: `hybridroute monitor --min-window N`)"
        ]
    by_name = {a.name: a for a in alerts}
    fell = _accuracy_fall_points(series, t.min_window)
    advice = [_advice_for(a, window, by_name, fell, t) for a in alerts]
    for metric, (bad, alert_name) in ADVERSE.items():
        found = trends.get(metric)
        if found is not None and found.direction == bad and alert_name not in by_name:
            advice.append(
                f"{metric} is trending {bad} ({found.slope:+.4g} per hour, p={found.p_value:.3f}): "
                "watch it before it crosses its threshold"
            )
    return advice or ["every metric is within its thresholds: no action needed"]


# ---------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class MonitorReport:
    """Everything the monitor concluded about a stretch of traffic."""

    window: Window
    alerts: list[Alert]
    health: Health
    trends: dict[str, Trend]
    recommendations: list[str]
    cost: CostProjection
    drift: dict[str, float]
    series: list[Window] = field(default_factory=list)  # the trend windows, oldest first
    series_alerts: list[list[Alert]] = field(default_factory=list)  # alerts of each trend window
    thresholds: MonitorThresholds = field(default_factory=MonitorThresholds)  # the limits that judged it

    @property
    def critical(self) -> bool:
        """Whether any alert is critical."""
        return any(a.severity == CRITICAL for a in self.alerts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "health": {"score": self.health.score, "status": self.health.status},
            "window": self.window.to_dict(),
            "alerts": [a.to_dict() for a in self.alerts],
            "trends": {k: v.to_dict() for k, v in self.trends.items()},
            "recommendations": list(self.recommendations),
            "cost": self.cost.to_dict(),
            "drift_psi": dict(self.drift),
            "series": [w.to_dict() for w in self.series],
            "thresholds": dataclasses.asdict(self.thresholds),
        }


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN: no data yet) replaced by None, numbers as plain floats.

    :meth:`MonitorReport.to_dict` holds NaN where a window has no data (an empty log); strict JSON has no NaN.

    Example: json_safe({"a": [1.0, float("nan")], "b": "x"}) -> {"a": [1.0, None], "b": "x"}
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _metric(window: Window, name: str) -> float:
    value = getattr(window, name)
    return math.nan if value is None else float(value)


def fit_trends(series: Sequence[Window], alpha: float, min_window: int) -> dict[str, Trend]:
    """One trend per metric over the windows holding at least ``min_window`` queries."""
    full = [w for w in series if w.queries >= min_window]
    times = [w.mid for w in full]
    return {m: trend([_metric(w, m) for w in full], times, alpha) for m in TREND_METRICS}


def analyze(
    records: Sequence[RecordLike],
    reference: Reference | None = None,
    thresholds: MonitorThresholds | None = None,
    config: MonitorConfig | None = None,
) -> MonitorReport:
    """Analyze audit records (any order): the newest window's health, the recent trends, costs and advice.

    Args:
        records: audit records (or anything shaped like them), e.g. ``store.query(since=...)``.
        reference: the validation reference for drift (None: no drift check).
        thresholds: alert limits.
        config: windowing and projection settings.
    """
    t, c = thresholds or MonitorThresholds(), config or MonitorConfig()
    series = [window_stats(w) for w in split_windows(records, c, c.trend_windows)] or [window_stats([])]
    current = series[-1]
    series_alerts = [evaluate(w, reference, t, c.drift_bins) for w in series]
    alerts = series_alerts[-1]
    trends = fit_trends(series, c.trend_alpha, t.min_window)
    rate = c.queries_per_day if c.queries_per_day is not None else observed_rate(records)
    drift = window_drift(current, reference, c.drift_bins, t) if reference else {}
    return MonitorReport(
        window=current,
        alerts=alerts,
        health=health_score(current, alerts, t.min_window),
        trends=trends,
        recommendations=recommendations(current, alerts, trends, t, series),
        cost=cost_projection(current.cost_per_query if current.queries else None, rate, c.cloud_price),
        drift=drift,
        series=series,
        series_alerts=series_alerts,
        thresholds=t,
    )


class Monitor:
    """The recent records of a running service, analyzed on demand (thread-safe).

    Keeps ``window_size × trend_windows`` records (count windows) in memory;
    the service calls :meth:`observe` with each request's audit records,
    :meth:`add_feedback` when a true label arrives, and serves :meth:`report`
    (e.g. on ``GET /v1/monitor``).
    """

    def __init__(
        self,
        thresholds: MonitorThresholds | None = None,
        config: MonitorConfig | None = None,
        reference: Reference | None = None,
        capacity: int | None = None,
    ) -> None:
        self.thresholds, self.config, self.reference = (
            thresholds or MonitorThresholds(),
            config or MonitorConfig(),
            reference,
        )
        keep = capacity or self.config.window_size * self.config.trend_windows
        self._records: deque[Any] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def observe(self, records: Iterable[RecordLike]) -> None:
        """Add answered records (oldest first)."""
        with self._lock:
            self._records.extend(records)

    def add_feedback(self, request_id: str, label: str, at: float) -> bool:
        """Attach a true label to a held record (newest first); False when it is no longer held.

        Records are frozen dataclasses, so the held one is replaced by a copy that carries the label.
        """
        with self._lock:
            for index in range(len(self._records) - 1, -1, -1):
                record = self._records[index]
                if getattr(record, "request_id", None) == request_id:
                    self._records[index] = dataclasses.replace(record, feedback_label=label, feedback_time=at)
                    return True
        return False

    @property
    def held(self) -> int:
        """How many records are held."""
        return len(self._records)

    def report(self) -> MonitorReport:
        """Analyze what is held now."""
        with self._lock:
            held = list(self._records)
        return analyze(held, self.reference, self.thresholds, self.config)
