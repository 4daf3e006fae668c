"""The monitor on replayed traffic: healthy, then degraded (accuracy drops, cloud share rises, latency grows)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hybridroute.errors import ConfigError
from hybridroute.monitoring.drift import Reference
from hybridroute.monitoring.estimate import summary, tracking, verdict_text, verdicts
from hybridroute.monitoring.monitor import (
    Monitor,
    MonitorConfig,
    MonitorThresholds,
    analyze,
    cost_projection,
    json_safe,
    recommendations,
    window_stats,
)
from hybridroute.monitoring.replay import Phase, ProfiledRecord, replay
from hybridroute.monitoring.window import split_windows

HEALTHY = Phase(4000)
DEGRADED = Phase(4000, accuracy=0.70, edge_share=0.55, cloud_latency_ms=240.0, mean_length=110.0, unk_rate=0.06)
CONFIG = MonitorConfig(window_size=1000, trend_windows=8)


def refuse_constant(name: str) -> None:
    raise AssertionError(f"{name} is not strict JSON")


@pytest.fixture(scope="module")
def reference() -> Reference:
    records = replay([HEALTHY], np.random.default_rng(1))
    return Reference(
        tuple(r.text_length for r in records),
        tuple(r.unk_rate for r in records),
        tuple(r.edge_confidence for r in records),
        accuracy=0.92,
    )


@pytest.fixture(scope="module")
def traffic() -> list[ProfiledRecord]:
    return replay([HEALTHY, DEGRADED], np.random.default_rng(0))


def test_healthy_traffic_raises_no_alert(traffic: list[ProfiledRecord], reference: Reference) -> None:
    report = analyze(traffic[:4000], reference, config=CONFIG)
    assert report.alerts == []
    assert (report.health.score, report.health.status) == (100.0, "healthy")
    assert all(not t.significant for t in report.trends.values())
    assert report.recommendations == ["every metric is within its thresholds: no action needed"]
    assert all(v < 0.1 for v in report.drift.values())


def test_degraded_traffic_fires_the_right_alerts(traffic: list[ProfiledRecord], reference: Reference) -> None:
    report = analyze(traffic, reference, config=CONFIG)
    names = {a.name for a in report.alerts}
    assert {
        "edge_share_low",
        "accuracy_low",
        "latency_p95_high",
        "cost_per_query_high",
        "drift_text_length",
        "drift_unk_rate",
        "drift_confidence",
    } <= names
    assert "fallback_rate_high" not in names
    assert report.health.status == "critical" and report.health.score < 50
    assert report.critical


def test_degraded_traffic_trends_the_right_way(traffic: list[ProfiledRecord], reference: Reference) -> None:
    trends = analyze(traffic, reference, config=CONFIG).trends
    assert trends["edge_share"].direction == "down"
    assert trends["estimated_accuracy"].direction == "down"
    assert trends["feedback_accuracy"].direction == "down"
    assert trends["latency_p95_ms"].direction == "up"
    assert trends["cost_per_query"].direction == "up"
    assert all(t.p_value < 0.05 for t in trends.values())


def test_health_falls_as_the_degradation_enters_the_window(traffic: list[ProfiledRecord]) -> None:
    scores = [analyze(traffic[: n * 1000], config=CONFIG).health.score for n in (4, 5, 8)]
    assert scores[0] == 100.0
    assert scores[0] > scores[1] >= scores[2]


def test_recommendations_are_concrete(traffic: list[ProfiledRecord], reference: Reference) -> None:
    advice = analyze(traffic, reference, config=CONFIG).recommendations
    text = "\n".join(advice)
    assert "hybridroute calibrate --run RUN --max-cloud-share 0.1" in text
    assert "while inputs drifted (input length PSI" in text and "retrain on recent traffic" in text
    assert "waiting for the cloud" in text
    assert "trending" not in text  # every adverse trend here already has its alert


def test_too_little_traffic_gets_no_verdict_rather_than_an_all_clear(traffic: list[ProfiledRecord]) -> None:
    for records in (traffic[:0], traffic[:10]):
        report = analyze(records, config=CONFIG)
        assert report.health.status == "insufficient_data"
        assert report.recommendations == [
            f"only {len(records)} queries in the current window, fewer than the 50 needed to judge it: "
            "no verdict yet (send traffic, or lower min_window: `hybridroute monitor --min-window N`)"
        ]
        assert json.loads(json.dumps(json_safe(report.to_dict())), parse_constant=refuse_constant)


def test_label_free_estimate_tracks_feedback_accuracy(traffic: list[ProfiledRecord]) -> None:
    for n in (4000, 8000):
        window = window_stats(traffic[n - 4000 : n])
        assert window.feedback_count > 500
        assert abs(window.estimate_gap) < 0.04  # replayed confidences are calibrated by construction


def test_cost_projection_matches_the_ledger_example() -> None:
    cost = cost_projection(0.00168, 10_000, 0.0136)
    assert cost.daily_cost == pytest.approx(16.8)
    assert cost.monthly_cost == pytest.approx(504.0)
    assert cost.monthly_cloud_only == pytest.approx(4080.0)
    assert cost.savings_pct == pytest.approx(87.647, abs=1e-3)


def test_cost_uses_the_observed_rate(traffic: list[ProfiledRecord]) -> None:
    report = analyze(traffic[:4000], config=CONFIG)  # one record a second
    assert report.cost.queries_per_day == pytest.approx(86_400.0)
    assert report.cost.cost_per_query == pytest.approx(report.window.cost_per_query)
    fixed = analyze(traffic[:4000], config=MonitorConfig(queries_per_day=1000.0))
    assert fixed.cost.daily_cost == pytest.approx(1000.0 * fixed.window.cost_per_query)


def test_too_few_queries_give_no_alerts() -> None:
    records = replay([Phase(30, accuracy=0.5, edge_share=0.2)], np.random.default_rng(0))
    report = analyze(records)
    assert report.alerts == [] and report.health.status == "insufficient_data"


def test_no_records_analyze_to_an_empty_report() -> None:
    report = analyze([])
    assert report.window.queries == 0 and report.health.status == "insufficient_data"
    json.dumps(report.to_dict(), allow_nan=True)


def test_report_is_json_ready(traffic: list[ProfiledRecord], reference: Reference) -> None:
    data = json.loads(json.dumps(analyze(traffic, reference, config=CONFIG).to_dict()))
    assert data["health"]["status"] == "critical"
    assert {"alerts", "trends", "recommendations", "cost", "drift_psi", "window", "series"} <= set(data)


def test_plain_audit_records_work_without_input_profile(traffic: list[ProfiledRecord], reference: Reference) -> None:
    report = analyze([r.plain() for r in traffic], reference, config=CONFIG)
    assert set(report.drift) == {"confidence"}  # lengths and unknown-token rates are not in today's audit log
    assert "drift_text_length" not in {a.name for a in report.alerts}


def test_time_windows_split_by_span(traffic: list[ProfiledRecord]) -> None:
    windows = split_windows(traffic[:3600], MonitorConfig(window_seconds=900.0))
    assert [len(w) for w in windows] == [900, 900, 900, 900]
    assert windows[-1][-1] is traffic[3599]


def test_count_windows_keep_the_newest_full(traffic: list[ProfiledRecord]) -> None:
    windows = split_windows(traffic[:2500], MonitorConfig(window_size=1000))
    assert [len(w) for w in windows] == [500, 1000, 1000]


def test_monitor_keeps_the_recent_records(traffic: list[ProfiledRecord]) -> None:
    monitor = Monitor(config=MonitorConfig(window_size=500, trend_windows=4))
    for start in range(0, 8000, 250):
        monitor.observe(traffic[start : start + 250])
    report = monitor.report()
    assert sum(w.queries for w in report.series) == 2000
    assert report.health.status == "critical"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("min_edge_share", 1.5),
        ("critical_accuracy", 0.9),  # above min_accuracy 0.85
        ("max_p95_latency_ms", 0.0),
        ("psi_alert", 0.05),  # below psi_warn
        ("min_window", 0),
    ],
)
def test_thresholds_reject_bad_values(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        MonitorThresholds(**{field: value})


def test_thresholds_defaults_follow_the_issue() -> None:
    t = MonitorThresholds()
    assert (t.min_edge_share, t.min_accuracy, t.max_p95_latency_ms, t.max_cost_per_query) == (0.8, 0.85, 150.0, 0.002)
    assert (t.psi_warn, t.psi_alert, t.min_window) == (0.1, 0.25, 50)
    with pytest.raises(ConfigError, match="window_seconds"):
        MonitorConfig(window_seconds=-1.0)


def test_tracking_compares_confidence_with_accuracy() -> None:
    rng = np.random.default_rng(5)
    confidence = rng.uniform(0.5, 1.0, 3000)
    correct = rng.random(3000) < confidence  # calibrated by construction
    found = tracking(confidence, correct, window=300)
    assert len(found.window_gaps) == 10
    assert abs(found.gap) < 0.02 and found.max_abs_window_gap < 0.08
    overconfident = tracking(np.full(600, 0.95), np.arange(600) % 5 != 0, window=300)
    assert overconfident.gap == pytest.approx(0.15)
    assert overconfident.window_gaps == pytest.approx((0.15, 0.15))
    with pytest.raises(ValueError, match="non-empty"):
        tracking([], [])


def test_tracking_knows_how_far_sampling_alone_moves_a_window() -> None:
    found = tracking([0.9] * 300, [True] * 270 + [False] * 30, window=100)
    # each window: sqrt(100 * 0.9 * 0.1) / 100 = 0.03 spread; a normal's mean |deviation| is sqrt(2/pi) of it
    assert found.sampling_abs_window_gap == pytest.approx(np.sqrt(2 / np.pi) * 0.03)
    rng = np.random.default_rng(11)
    confidence = rng.uniform(0.6, 1.0, 60_000)
    calibrated = tracking(confidence, rng.random(60_000) < confidence, window=300)
    assert calibrated.mean_abs_window_gap == pytest.approx(calibrated.sampling_abs_window_gap, rel=0.15)


def test_verdicts_hold_the_two_point_limit_overall_on_average_and_per_window() -> None:
    found = tracking([0.9] * 600, [True] * 270 + [False] * 30 + [True] * 255 + [False] * 45, window=300)
    # windows: 0.90 vs 0.90 and 0.90 vs 0.85; overall 0.90 vs 0.875
    assert verdicts(found) == {"overall": False, "mean_window": False, "every_window": False}
    assert verdicts(found, limit=0.03) == {"overall": True, "mean_window": True, "every_window": False}
    assert "estimated 90.00%, measured 87.50%, gap +2.50 points; 2 windows of 300" in summary(found)


def test_monitor_feedback_reaches_the_held_records(traffic: list[ProfiledRecord]) -> None:
    plain = [dataclasses.replace(r, feedback_label=None, feedback_time=None) for r in traffic[:400]]
    monitor = Monitor(MonitorThresholds(min_feedback=30), MonitorConfig(window_size=400))
    monitor.observe(plain)
    assert monitor.report().window.feedback_count == 0
    for r in plain[:40]:
        assert monitor.add_feedback(r.request_id, r.label if r.request_id != plain[0].request_id else "x", 5.0)
    assert not monitor.add_feedback("no-such-request", "x", 5.0)
    window = monitor.report().window
    assert window.feedback_count == 40 and window.feedback_accuracy == pytest.approx(39 / 40)
    assert window.accuracy(30) == (pytest.approx(39 / 40), "feedback") and monitor.held == 400


def test_too_little_traffic_publishes_no_drift_score(traffic: list[ProfiledRecord], reference: Reference) -> None:
    report = analyze(traffic[:2], reference, config=CONFIG)
    assert report.health.status == "insufficient_data"
    assert report.drift == {} and report.to_dict()["drift_psi"] == {}
    assert set(analyze(traffic[:50], reference, config=CONFIG).drift) == {"text_length", "unk_rate", "confidence"}


def test_small_windows_of_undrifted_traffic_stay_healthy(traffic: list[ProfiledRecord], reference: Reference) -> None:
    healthy = traffic[:4000]
    for size in (50, 1000):
        report = analyze(healthy, reference, config=MonitorConfig(window_size=size, trend_windows=8))
        assert not [a.name for a in report.alerts if a.name.startswith("drift_")], size


def test_verdicts_over_no_full_window_are_not_applicable() -> None:
    found = tracking([0.9] * 200, [True] * 180 + [False] * 20, window=300)
    within = verdicts(found)
    assert found.window_gaps == () and within == {"overall": True, "mean_window": None, "every_window": None}
    assert [verdict_text(v) for v in within.values()] == ["yes", "n/a", "n/a"]
    assert verdict_text(False) == "NO"


def test_accuracy_fall_ignores_windows_too_small_to_judge(traffic: list[ProfiledRecord], reference: Reference) -> None:
    report = analyze(traffic, reference, config=CONFIG)
    current = dataclasses.replace(report.window, estimated_accuracy=0.75)
    tiny = dataclasses.replace(current, queries=1, estimated_accuracy=0.99)
    older = dataclasses.replace(current, estimated_accuracy=0.80)
    advice = recommendations(current, report.alerts, {}, report.thresholds, [tiny, older, current])
    text = "\n".join(advice)
    assert "estimated accuracy fell 5 points while inputs drifted" in text, text
