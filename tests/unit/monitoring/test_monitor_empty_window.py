"""A window of no queries reports no data (None), not zeros, in monitor --json, GET /v1/monitor and the text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.monitoring.health import evaluate, health_score
from hybridroute.monitoring.monitor import analyze, json_safe
from hybridroute.monitoring.window import window_stats

NO_DATA = {
    "edge_share",
    "cloud_share",
    "fallback_rate",
    "estimated_accuracy",
    "cost_per_query",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
}


def test_an_empty_window_has_no_share_rate_cost_or_latency() -> None:
    data = window_stats([]).to_dict()
    assert {name: data[name] for name in NO_DATA} == dict.fromkeys(NO_DATA)
    assert data["queries"] == 0 and data["feedback_count"] == 0 and data["total_cost"] == 0.0


def test_an_empty_window_is_still_judged_insufficient_without_alerts() -> None:
    window = window_stats([])
    assert evaluate(window) == [] and health_score(window, []).status == "insufficient_data"
    report = json_safe(analyze([]).to_dict())
    assert report["window"]["edge_share"] is None and report["series"][0]["cost_per_query"] is None
    json.dumps(report, allow_nan=False)


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def test_monitor_on_an_empty_log_says_no_data_in_json_and_text(tmp_path: Path) -> None:
    SQLiteAuditStore(tmp_path / "empty.sqlite").close()
    runner = CliRunner()
    as_json = runner.invoke(main, ["monitor", "--db", str(tmp_path / "empty.sqlite"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output, parse_constant=_refuse)
    window, cost = report["window"], report["cost"]
    assert {name: window[name] for name in NO_DATA} == dict.fromkeys(NO_DATA)
    unknown_cost = ("cost_per_query", "daily_cost", "monthly_cost", "monthly_savings", "savings_pct")
    assert {name: cost[name] for name in unknown_cost} == dict.fromkeys(unknown_cost)  # not "saves 0%"
    as_text = runner.invoke(main, ["monitor", "--db", str(tmp_path / "empty.sqlite")])
    assert as_text.exit_code == 0, as_text.output
    assert as_text.output.startswith("health 100/100 insufficient_data (0 queries)")
    assert "trend edge_share: untested (0 windows; a trend needs 3)" in as_text.output
    assert "cost: no answers yet" in as_text.output and "saves" not in as_text.output


def test_a_projection_without_measured_traffic_has_no_savings_share() -> None:
    from hybridroute.monitoring.monitor import cost_projection

    one_record = cost_projection(0.001, queries_per_day=0.0, cloud_price=0.0136)  # one record spans no time
    assert one_record.daily_cost == 0.0 and one_record.savings_pct is None
    assert cost_projection(0.00168, 10_000, 0.0136).savings_pct == pytest.approx(87.647, abs=1e-3)
