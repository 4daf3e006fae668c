"""The edge metrics: names, labels, the sliding edge share, and a registry per instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from hybridroute.monitoring.audit import AuditRecord
from hybridroute.monitoring.metrics import EdgeMetrics, SlidingShare, published_feedback_accuracy, status_class
from hybridroute.monitoring.thresholds import MonitorThresholds
from hybridroute.monitoring.window import window_stats


def test_sliding_share_forgets_old_observations() -> None:
    share = SlidingShare(window=2)
    assert share.observe(True) == (1.0, 1)
    assert share.observe(False) == (0.5, 2)
    assert share.observe(False) == (0.0, 2)  # the True fell out of the window
    assert share.observe(True) == (0.5, 2)


def test_metrics_have_conventional_names_and_separate_registries() -> None:
    first, second = EdgeMetrics(CollectorRegistry()), EdgeMetrics(CollectorRegistry())
    first.observe_answer("edge", "confident", "positive", 0.9, (0.001, 0.0), 0.004, 0.002, None)
    first.observe_answer("cloud", "low_confidence", "negative", 0.6, (0.001, 0.0136), 0.05, 0.002, 0.04)
    text = generate_latest(first.registry).decode()
    assert 'hybridroute_requests_total{label="positive",reason="confident",tier="edge"} 1.0' in text
    assert 'hybridroute_cost_usd_total{tier="edge"} 0.002' in text  # the escalated answer paid the edge too
    assert 'hybridroute_cost_usd_total{tier="cloud"} 0.0136' in text
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
    metrics.observe_answer("edge", "confident", "positive", 0.9, (0.001, 0.0), 0.004, 0.002, None)
    metrics.observe_monitor(90.0, 0.8, {})
    assert "hybridroute_edge_share 1.0" in _samples(metrics)
    assert "hybridroute_monitor_feedback_accuracy 0.8" in _samples(metrics)


def test_drift_gauges_are_removed_once_their_score_is_unknown() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    metrics.observe_monitor(90.0, None, {"text_length": 0.3, "confidence": 0.02})
    assert 'hybridroute_monitor_drift_psi{feature="text_length"} 0.3' in _samples(metrics)
    metrics.observe_monitor(100.0, None, {"confidence": float("nan")})
    assert not [s for s in _samples(metrics) if s.startswith("hybridroute_monitor_drift_psi")]


# ---------------------------------------------------------------- published only where the monitor judges


def record(i: int, feedback: str | None = None) -> AuditRecord:
    """An edge answer "positive" at 0.9; ``feedback`` its true label, if any."""
    return AuditRecord(
        float(i), f"r{i}", "h", None, "positive", 0.9, "edge", "confident", 3.0, 2.0, None, 0.001, "v", "v",
        "positive", 0.9, False, feedback,
    )  # fmt: skip


def test_edge_share_is_absent_until_the_monitors_min_window_answers() -> None:
    metrics = EdgeMetrics(CollectorRegistry(), edge_share_window=1000, edge_share_min=50)
    for _ in range(49):  # one cloud answer in 49 would read as a share below the critical 0.60
        metrics.observe_answer("cloud", "low_confidence", "negative", 0.6, (0.001, 0.0136), 0.05, 0.002, 0.04)
    assert not [s for s in _samples(metrics) if s.startswith("hybridroute_edge_share")]
    metrics.observe_answer("edge", "confident", "positive", 0.9, (0.001, 0.0), 0.004, 0.002, None)
    assert "hybridroute_edge_share 0.02" in _samples(metrics)


def test_edge_share_minimum_is_at_most_its_window() -> None:
    metrics = EdgeMetrics(CollectorRegistry(), edge_share_window=10, edge_share_min=50)
    for _ in range(10):
        metrics.observe_answer("edge", "confident", "positive", 0.9, (0.001, 0.0), 0.004, 0.002, None)
    assert "hybridroute_edge_share 1.0" in _samples(metrics)


def test_feedback_accuracy_is_published_only_with_min_window_queries_and_min_feedback_labels() -> None:
    t = MonitorThresholds(min_window=50, min_feedback=30)
    one_wrong_label = window_stats([record(0, "negative")])
    assert one_wrong_label.feedback_accuracy == 0.0
    assert published_feedback_accuracy(one_wrong_label, t) is None
    few_labels = window_stats([record(i, "negative" if i < 29 else None) for i in range(60)])
    assert published_feedback_accuracy(few_labels, t) is None
    few_queries = window_stats([record(i, "positive") for i in range(40)])
    assert published_feedback_accuracy(few_queries, t) is None
    judged = window_stats([record(i, "positive" if i < 27 else "negative" if i < 30 else None) for i in range(60)])
    assert published_feedback_accuracy(judged, t) == 0.9


def test_feedback_accuracy_is_removed_once_it_is_unknown_again() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    metrics.observe_monitor(90.0, 0.7, {})
    assert "hybridroute_monitor_feedback_accuracy 0.7" in _samples(metrics)
    metrics.observe_monitor(100.0, None, {})  # the labelled answers left the window: a stale 0.7 would keep firing
    assert not [s for s in _samples(metrics) if s.startswith("hybridroute_monitor_feedback_accuracy")]


def test_drift_noise_limits_are_published_beside_their_psi_and_removed_with_it() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    metrics.observe_monitor(90.0, None, {"text_length": 0.3, "confidence": 0.02}, {"text_length": 0.9})
    samples = _samples(metrics)
    assert 'hybridroute_monitor_drift_psi_noise{feature="text_length"} 0.9' in samples
    assert not [s for s in samples if s.startswith('hybridroute_monitor_drift_psi_noise{feature="confidence"')]
    metrics.observe_monitor(100.0, None, {"confidence": 0.01}, {"confidence": 0.5, "unk_rate": 0.4})
    samples = _samples(metrics)
    assert [s for s in samples if s.startswith("hybridroute_monitor_drift_psi_noise")] == [
        'hybridroute_monitor_drift_psi_noise{feature="confidence"} 0.5'  # no PSI for unk_rate: no limit either
    ]
    metrics.observe_monitor(100.0, None, {})
    assert not [s for s in _samples(metrics) if s.startswith("hybridroute_monitor_drift")]


def test_cost_is_counted_by_the_tier_that_cost_it() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    metrics.observe_answer("edge", "confident", "positive", 0.9, (0.001, 0.0), 0.004, 0.002, None)
    assert not [s for s in _samples(metrics) if s.startswith('hybridroute_cost_usd_total{tier="cloud"}')]
    metrics.observe_answer("cloud", "low_confidence", "negative", 0.6, (0.001, 0.0136), 0.05, 0.002, 0.04)
    metrics.observe_answer("edge", "fallback:timeout", "positive", 0.5, (0.001, 0.0136), 0.05, 0.002, 0.04)
    text = generate_latest(metrics.registry).decode()
    assert 'hybridroute_cost_usd_total{tier="edge"} 0.003' in text
    assert 'hybridroute_cost_usd_total{tier="cloud"} 0.0272' in text


def test_status_class_groups_codes() -> None:
    assert [status_class(c) for c in (200, 404, 413, 500, 503)] == ["2xx", "4xx", "4xx", "5xx", "5xx"]
