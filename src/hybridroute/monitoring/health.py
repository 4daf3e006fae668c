"""Alerts and the health score: a window checked against the thresholds.

:func:`evaluate` turns a :class:`~hybridroute.monitoring.window.Window` (and,
when there is one, the drift reference) into :class:`Alert` s;
:func:`health_score` turns those into a score from 0 to 100 and a status.

The score: ``100 - 10 × warnings - 25 × criticals``, floored at 0. Status:
"critical" with any critical alert, "degraded" with any warning, else
"healthy"; "insufficient_data" while the window holds fewer than
``min_window`` queries (score 100, no alerts: too few queries to judge).
So one warning reads 90/degraded, a critical plus a warning 65/critical; the
same alerts always give the same score, which keeps it comparable over time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridroute.monitoring.drift import PSI_EPSILON, Reference, bin_shares, drift_scores, quantile_edges
from hybridroute.monitoring.thresholds import MonitorThresholds
from hybridroute.monitoring.window import Window

WARNING, CRITICAL = "warning", "critical"
HEALTHY, DEGRADED, INSUFFICIENT = "healthy", "degraded", "insufficient_data"
PENALTY = {WARNING: 10.0, CRITICAL: 25.0}
DRIFT_NAMES = {"text_length": "input length", "unk_rate": "unknown-token rate", "confidence": "edge confidence"}


@dataclass(frozen=True)
class Alert:
    """One broken threshold.

    Attributes:
        name: stable identifier (``edge_share_low``, ``drift_text_length``, ...), as in the Prometheus rules.
        severity: "warning" or "critical".
        value: the observed value.
        threshold: the limit it broke (the critical one when critical).
        message: one line for people.
    """

    name: str
    severity: str
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True)
class Health:
    """A score from 0 to 100 and a status (healthy, degraded, critical, insufficient_data)."""

    score: float
    status: str


def _low(name: str, value: float, warn: float, critical: float, what: str) -> Alert | None:
    """An alert when ``value`` fell below a limit.

    Example: _low("x", 0.7, 0.8, 0.6, "edge share") -> warning "edge share 0.700 below 0.800"
    """
    if math.isnan(value) or value >= warn:
        return None
    severity, limit = (CRITICAL, critical) if value < critical else (WARNING, warn)
    return Alert(name, severity, value, limit, f"{what} {value:.3f} below {limit:.3f}")


def _high(name: str, value: float, warn: float, critical: float, what: str, unit: str = "") -> Alert | None:
    """An alert when ``value`` rose above a limit.

    Example: _high("x", 200, 150, 300, "p95 latency", " ms") -> warning "p95 latency 200 ms above 150 ms"
    """
    if math.isnan(value) or value <= warn:
        return None
    severity, limit = (CRITICAL, critical) if value > critical else (WARNING, warn)
    return Alert(name, severity, value, limit, f"{what} {value:.4g}{unit} above {limit:.4g}{unit}")


def _accuracy_alerts(window: Window, t: MonitorThresholds) -> list[Alert | None]:
    accuracy, source = window.accuracy(t.min_feedback)
    what = f"accuracy ({source}, {window.feedback_count} labels)" if source == "feedback" else "estimated accuracy"
    alerts = [_low("accuracy_low", accuracy, t.min_accuracy, t.critical_accuracy, what)]
    gap = window.estimate_gap
    if gap is not None and window.feedback_count >= t.min_feedback and abs(gap) > gap_limit(window, t):
        alerts.append(
            Alert(
                "accuracy_estimate_gap",
                WARNING,
                gap,
                gap_limit(window, t),
                f"estimated accuracy {window.estimated_on_feedback:.3f} vs measured {window.feedback_accuracy:.3f} "
                f"on {window.feedback_count} labelled answers (gap {gap:+.3f})",
            )
        )
    return alerts


def gap_limit(window: Window, t: MonitorThresholds) -> float:
    """The estimate gap that alerts: ``max_estimate_gap``, or two binomial standard errors if larger.

    Few labels measure accuracy loosely (30 labels at 0.85: SE 0.065), and a gap
    within sampling noise says nothing about the calibration.

    Example: 30 labels at 0.85 -> max(0.05, 2 × 0.065) = 0.13; 2000 labels -> 0.05
    """
    p = window.feedback_accuracy if window.feedback_accuracy is not None else 0.5
    noise = 2.0 * math.sqrt(max(p * (1.0 - p), 1e-6) / max(window.feedback_count, 1))
    return max(t.max_estimate_gap, noise)


PSI_NOISE_QUANTILE = 0.99  # a window's PSI alerts only past what sampling alone reaches in 1% of windows
PSI_NOISE_DRAWS = 4000


@functools.lru_cache(maxsize=512)
def psi_noise(shares: tuple[float, ...], values: int, reference_size: int) -> float:
    """The PSI that sampling alone passes in 1% of windows of ``values`` queries when nothing drifted.

    With ``B`` bins, ``n`` window values and ``m`` reference values, the PSI is about a chi-square with
    ``B - 1`` degrees of freedom times ``1/n + 1/m`` when nothing drifted: its expected value is about
    ``(B - 1) / n``, 0.18 for 50 values on 10 bins, above the usual 0.1 warning. The tail is heavier than
    the chi-square's where a bin holds few values (a bin the window leaves empty adds ``r × ln(r / ε)``
    through the epsilon floor, 0.05 × ln(0.05 / 1e-4) = 0.31 for a 5% bin), so the 99th percentile is
    simulated: multinomial counts of the window and of the reference over the reference's bin ``shares``,
    seeded, so the same inputs always give the same limit.

    Example: psi_noise((0.1,) * 10, 50, 5000) -> about 0.95; psi_noise((0.1,) * 10, 5000, 5000) -> about 0.01
    """
    rng = np.random.default_rng(0)
    p = np.asarray(shares, dtype=float) / sum(shares)
    window = _floored(rng.multinomial(values, p, size=PSI_NOISE_DRAWS), values)
    reference = _floored(rng.multinomial(reference_size, p, size=PSI_NOISE_DRAWS), reference_size)
    found = ((window - reference) * np.log(window / reference)).sum(axis=1)
    return float(np.quantile(found, PSI_NOISE_QUANTILE))


def _floored(counts: np.ndarray, total: int) -> np.ndarray:
    """Bin shares per row, floored at the PSI epsilon and renormalized (as :func:`~drift.bin_shares`)."""
    shares = np.maximum(counts / max(total, 1), PSI_EPSILON)
    return shares / shares.sum(axis=1, keepdims=True)


def drift_alerts(
    scores: dict[str, float], t: MonitorThresholds, noise: dict[str, tuple[float, int]] | None = None
) -> list[Alert]:
    """Alerts for drift PSI values past ``psi_warn`` (critical past ``psi_alert``) and past sampling noise.

    Args:
        scores: PSI per feature.
        t: the thresholds.
        noise: per feature, ``(limit, values)``: the PSI sampling alone reaches (:func:`psi_noise`) in a
            window of that many values; each threshold is then ``max(threshold, limit)``, so a small window's
            PSI alerts only beyond its noise, and the message says so.

    Example: {"text_length": 0.31} -> [critical drift_text_length]; with noise {"text_length": (0.95, 50)} -> []
    """
    alerts = []
    for name, value in scores.items():
        floor, n = noise[name] if noise and name in noise else (0.0, 0)
        what = f"{DRIFT_NAMES[name]} drift: PSI"
        alert = _high(f"drift_{name}", value, max(t.psi_warn, floor), max(t.psi_alert, floor), what)
        if alert is not None and alert.threshold == floor:
            alert = dataclasses.replace(alert, message=f"{alert.message} (the sampling noise of {n} values)")
        if alert is not None:
            alerts.append(alert)
    return alerts


def window_drift(window: Window, reference: Reference, bins: int, t: MonitorThresholds) -> dict[str, float]:
    """PSI per feature of a window holding at least ``min_window`` queries; ``{}`` for a smaller one.

    Example: a window of 2 queries -> {} (two values say nothing about a distribution)
    """
    if window.queries < t.min_window:
        return {}
    return drift_scores(reference, window.drift_samples(), bins)


def drift_noise(window: Window, reference: Reference, bins: int) -> dict[str, tuple[float, int]]:
    """Per feature, the PSI sampling alone reaches (:func:`psi_noise`) and the window's number of values."""
    found = {}
    for name, values in window.drift_samples().items():
        ref = reference.feature(name)
        if len(values) and len(ref):
            shares = bin_shares(ref, quantile_edges(ref, bins))
            found[name] = (psi_noise(tuple(round(float(v), 6) for v in shares), len(values), len(ref)), len(values))
    return found


def evaluate(
    window: Window,
    reference: Reference | None = None,
    thresholds: MonitorThresholds | None = None,
    drift_bins: int = 10,
) -> list[Alert]:
    """Every threshold the window breaks, critical first; none below ``min_window`` queries.

    Example: a window with edge share 0.62 -> [Alert("edge_share_low", "warning", 0.62, 0.80, ...)]
    """
    t = thresholds or MonitorThresholds()
    if window.queries < t.min_window:
        return []
    found = [
        _low("edge_share_low", window.edge_share, t.min_edge_share, t.critical_edge_share, "edge share"),
        *_accuracy_alerts(window, t),
        _high(
            "latency_p95_high",
            window.latency_p95_ms,
            t.max_p95_latency_ms,
            t.critical_p95_latency_ms,
            "p95 latency",
            " ms",
        ),
        _high(
            "cost_per_query_high",
            window.cost_per_query,
            t.max_cost_per_query,
            t.critical_cost_per_query,
            "cost per query",
            " USD",
        ),
        _high("fallback_rate_high", window.fallback_rate, t.max_fallback_rate, t.critical_fallback_rate, "fallbacks"),
    ]
    if reference is not None:
        scores = window_drift(window, reference, drift_bins, t)
        found.extend(drift_alerts(scores, t, drift_noise(window, reference, drift_bins)))
    alerts = [a for a in found if a is not None]
    return sorted(alerts, key=lambda a: a.severity != CRITICAL)


def health_score(window: Window, alerts: list[Alert], min_window: int = 50) -> Health:
    """Score and status of a window from its alerts (formula in the module docstring).

    Example: one warning -> Health(90.0, "degraded"); one critical -> Health(75.0, "critical")
    """
    if window.queries < min_window:
        return Health(100.0, INSUFFICIENT)
    score = max(0.0, 100.0 - sum(PENALTY[a.severity] for a in alerts))
    if any(a.severity == CRITICAL for a in alerts):
        return Health(score, CRITICAL)
    return Health(score, DEGRADED if alerts else HEALTHY)
