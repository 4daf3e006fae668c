"""The edge metrics: names, labels, the sliding edge share, and a registry per instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from hybridroute.monitoring.metrics import EdgeMetrics, SlidingShare


def test_sliding_share_forgets_old_observations() -> None:
    share = SlidingShare(window=2)
    assert share.observe(True) == 1.0
    assert share.observe(False) == 0.5
    assert share.observe(False) == 0.0  # the True fell out of the window
    assert share.observe(True) == 0.5


def test_metrics_have_conventional_names_and_separate_registries() -> None:
    first, second = EdgeMetrics(CollectorRegistry()), EdgeMetrics(CollectorRegistry())
    first.observe_answer("edge", "confident", "positive", 0.9, 0.001, 0.004, 0.002, None)
    first.observe_answer("cloud", "low_confidence", "negative", 0.6, 0.0146, 0.05, 0.002, 0.04)
    text = generate_latest(first.registry).decode()
    assert 'hybridroute_requests_total{label="positive",reason="confident",tier="edge"} 1.0' in text
    assert 'hybridroute_cost_usd_total{tier="cloud"} 0.0146' in text
    assert "hybridroute_request_latency_seconds_count 2.0" in text
    assert "hybridroute_edge_latency_seconds_count 2.0" in text
    assert "hybridroute_cloud_latency_seconds_count 1.0" in text
    assert "hybridroute_confidence_count 2.0" in text
    assert "hybridroute_edge_share 0.5" in text
    assert "hybridroute_audit_dropped_total 0.0" in text
    assert "hybridroute_request_latency_seconds_count 0.0" in generate_latest(second.registry).decode()


def _samples(metrics: EdgeMetrics) -> list[str]:
    return [line for line in generate_latest(metrics.registry).decode().splitlines() if not line.startswith("#")]


def test_edge_share_and_feedback_accuracy_are_absent_until_there_is_data() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    unset = ("hybridroute_edge_share", "hybridroute_monitor_feedback")
    assert not [s for s in _samples(metrics) if s.startswith(unset)]
    metrics.observe_monitor(100.0, None, {})
    assert not [s for s in _samples(metrics) if s.startswith("hybridroute_monitor_feedback_accuracy")]
    metrics.observe_answer("edge", "confident", "positive", 0.9, 0.001, 0.004, 0.002, None)
    metrics.observe_monitor(90.0, 0.8, {})
    assert "hybridroute_edge_share 1.0" in _samples(metrics)
    assert "hybridroute_monitor_feedback_accuracy 0.8" in _samples(metrics)


def test_drift_gauges_are_removed_once_their_score_is_unknown() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    metrics.observe_monitor(90.0, None, {"text_length": 0.3, "confidence": 0.02})
    assert 'hybridroute_monitor_drift_psi{feature="text_length"} 0.3' in _samples(metrics)
    metrics.observe_monitor(100.0, None, {"confidence": float("nan")})
    assert not [s for s in _samples(metrics) if s.startswith("hybridroute_monitor_drift_psi")]
