"""Alerts from a window, and the health score's formula."""

from __future__ import annotations

import dataclasses

import pytest

from hybridroute.monitoring.drift import Reference
from hybridroute.monitoring.health import Alert, Health, evaluate, gap_limit, health_score
from hybridroute.monitoring.thresholds import MonitorThresholds
from hybridroute.monitoring.window import Window

GOOD = Window(
    queries=1000,
    start=0.0,
    end=1000.0,
    edge_share=0.9,
    fallback_rate=0.0,
    estimated_accuracy=0.92,
    feedback_count=0,
    feedback_accuracy=None,
    estimated_on_feedback=None,
    cost_per_query=0.0015,
    total_cost=1.5,
    latency_p50_ms=5.0,
    latency_p95_ms=80.0,
    latency_p99_ms=120.0,
)


def names(window: Window, **kwargs: object) -> dict[str, str]:
    return {a.name: a.severity for a in evaluate(window, **kwargs)}  # type: ignore[arg-type]


def test_a_good_window_has_no_alerts() -> None:
    assert evaluate(GOOD) == []
    assert health_score(GOOD, []).status == "healthy"


@pytest.mark.parametrize(
    ("change", "name", "severity"),
    [
        ({"edge_share": 0.7}, "edge_share_low", "warning"),
        ({"edge_share": 0.5}, "edge_share_low", "critical"),
        ({"estimated_accuracy": 0.8}, "accuracy_low", "warning"),
        ({"estimated_accuracy": 0.7}, "accuracy_low", "critical"),
        ({"latency_p95_ms": 151.0}, "latency_p95_high", "warning"),
        ({"latency_p95_ms": 301.0}, "latency_p95_high", "critical"),
        ({"cost_per_query": 0.003}, "cost_per_query_high", "warning"),
        ({"cost_per_query": 0.005}, "cost_per_query_high", "critical"),
        ({"fallback_rate": 0.05}, "fallback_rate_high", "warning"),
        ({"fallback_rate": 0.2}, "fallback_rate_high", "critical"),
    ],
)
def test_each_threshold_warns_then_turns_critical(change: dict[str, float], name: str, severity: str) -> None:
    assert names(dataclasses.replace(GOOD, **change)) == {name: severity}


def test_measured_accuracy_replaces_the_estimate_with_enough_feedback() -> None:
    labelled = dataclasses.replace(GOOD, feedback_count=500, feedback_accuracy=0.80, estimated_on_feedback=0.82)
    (alert,) = evaluate(labelled)
    assert (alert.name, alert.value) == ("accuracy_low", 0.80)
    assert "feedback, 500 labels" in alert.message
    few = dataclasses.replace(labelled, feedback_count=10)
    assert evaluate(few) == []  # 10 labels: the estimate (0.92) decides


def test_estimate_gap_warns_only_beyond_sampling_noise() -> None:
    stale = dataclasses.replace(GOOD, feedback_count=2000, feedback_accuracy=0.86, estimated_on_feedback=0.95)
    assert names(stale) == {"accuracy_estimate_gap": "warning"}
    noisy = dataclasses.replace(stale, feedback_count=40)  # 2 standard errors at 40 labels: 0.11
    assert gap_limit(noisy, MonitorThresholds()) > 0.09
    assert names(noisy) == {}


def test_drift_alerts_need_a_reference() -> None:
    drifted = dataclasses.replace(GOOD, text_length=tuple(range(100, 200)), edge_confidence=(0.9,) * 100)
    reference = Reference(tuple(range(0, 100)), (), tuple(0.5 + i / 250 for i in range(100)))
    assert names(drifted) == {}
    assert names(drifted, reference=reference) == {"drift_text_length": "critical", "drift_confidence": "critical"}


def test_custom_thresholds_apply() -> None:
    strict = MonitorThresholds(min_edge_share=0.95, critical_edge_share=0.92)
    assert names(GOOD, thresholds=strict) == {"edge_share_low": "critical"}


def test_small_windows_give_no_alerts() -> None:
    small = dataclasses.replace(GOOD, queries=49, edge_share=0.1)
    assert evaluate(small) == []
    assert health_score(small, []).status == "insufficient_data"


def test_health_score_formula() -> None:
    warning = Alert("a", "warning", 0.0, 0.0, "")
    critical = Alert("b", "critical", 0.0, 0.0, "")
    assert health_score(GOOD, [warning]) == Health(90.0, "degraded")
    assert health_score(GOOD, [critical, warning]).score == 65.0
    assert health_score(GOOD, [critical, warning]).status == "critical"
    assert health_score(GOOD, [critical] * 5).score == 0.0


def test_alerts_list_critical_first() -> None:
    bad = dataclasses.replace(GOOD, edge_share=0.7, latency_p95_ms=400.0)
    assert [a.severity for a in evaluate(bad)] == ["critical", "warning"]
