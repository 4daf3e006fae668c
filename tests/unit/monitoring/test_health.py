"""Alerts from a window, and the health score's formula."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hybridroute.monitoring.drift import Reference, psi
from hybridroute.monitoring.health import (
    Alert,
    Health,
    drift_alerts,
    drift_noise,
    evaluate,
    gap_limit,
    health_score,
    psi_noise,
)
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


def _sampled_window(values: np.ndarray) -> Window:
    return dataclasses.replace(GOOD, queries=len(values), text_length=tuple(values))


def test_psi_noise_limit_keeps_same_distribution_windows_of_50_quiet() -> None:
    rng = np.random.default_rng(7)
    population = rng.lognormal(4.0, 0.6, 5000).round()
    rates = np.where(rng.random(5000) < 0.9, 0.0, rng.choice([0.05, 0.1], 5000))  # mostly zero: 3 unequal bins
    reference = Reference(tuple(population), tuple(rates), ())
    windows = []
    for _ in range(400):
        picked = rng.integers(0, 5000, 50)
        windows.append(
            dataclasses.replace(GOOD, queries=50, text_length=tuple(population[picked]), unk_rate=tuple(rates[picked]))
        )
    raw = [drift_alerts({"text_length": psi(population, w.text_length)}, MonitorThresholds()) for w in windows]
    assert sum(bool(a) for a in raw) > 0.6 * len(windows)  # the bare 0.1 limit: most windows of 50 alert
    alerted = sum(bool(evaluate(w, reference)) for w in windows)
    assert alerted <= 0.03 * len(windows)  # two features at a 1% limit each
    assert 0.8 < psi_noise((0.1,) * 10, 50, 5000) < 1.1 and psi_noise((0.1,) * 10, 5000, 5000) < 0.02


def test_real_drift_still_alerts_in_a_small_window_and_states_its_limit() -> None:
    reference = Reference(tuple(float(v) for v in range(1000)), (), ())
    shifted = _sampled_window(np.arange(600.0, 1600.0, 20.0))  # 50 values, 80% beyond the reference
    [alert] = evaluate(shifted, reference)
    assert alert.name == "drift_text_length" and alert.severity == "critical"
    assert alert.threshold == drift_noise(shifted, reference, 10)["text_length"][0] > 0.8
    assert f"above {alert.threshold:.4g}" in alert.message and "(the sampling noise of 50 values)" in alert.message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"edge_share": 0.80}, {}),  # "at least 0.80": the limit itself is healthy
        ({"edge_share": 0.60}, {"edge_share_low": "warning"}),  # critical only below 0.60
        ({"latency_p95_ms": 150.0}, {}),  # "at most 150 ms"
        ({"latency_p95_ms": 300.0}, {"latency_p95_high": "warning"}),  # critical only above 300 ms
    ],
)
def test_a_value_at_a_limit_is_on_the_allowed_side(change: dict[str, float], expected: dict[str, str]) -> None:
    assert names(dataclasses.replace(GOOD, **change)) == expected  # type: ignore[arg-type]


def test_an_estimate_below_the_measured_accuracy_warns_as_one_above_it_does() -> None:
    under = dataclasses.replace(GOOD, feedback_count=2000, feedback_accuracy=0.95, estimated_on_feedback=0.86)
    assert names(under) == {"accuracy_estimate_gap": "warning"}
