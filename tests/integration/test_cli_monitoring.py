"""`hybridroute monitor`, `report` and `audit` on a replayed audit log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.monitoring.replay import Phase, replay


def write_log(path: Path, phases: list[Phase]) -> Path:
    store = SQLiteAuditStore(path)
    store.write_many([r.plain() for r in replay(phases, np.random.default_rng(0))])
    store.close()
    return path


@pytest.fixture(scope="module")
def healthy_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("healthy") / "audit.sqlite", [Phase(400)])


@pytest.fixture(scope="module")
def degraded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    phases = [Phase(400), Phase(400, accuracy=0.7, edge_share=0.5, edge_latency_ms=40.0, cloud_latency_ms=400.0)]
    return write_log(tmp_path_factory.mktemp("degraded") / "audit.sqlite", phases)


def test_monitor_reports_healthy_traffic(healthy_db: Path) -> None:
    result = CliRunner().invoke(main, ["monitor", "--db", str(healthy_db), "--window", "200", "--json"])
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.output)
    assert analysis["health"]["status"] == "healthy"
    assert analysis["alerts"] == []


def test_monitor_exits_2_on_critical_traffic(degraded_db: Path) -> None:
    result = CliRunner().invoke(main, ["monitor", "--db", str(degraded_db), "--window", "200"])
    assert result.exit_code == 2, result.output
    assert "critical" in result.output and "edge_share" in result.output


def test_report_writes_html_and_pngs(degraded_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--db", str(degraded_db), "--out", str(out), "--window", "200"])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<img" in html and "http://" not in html and "https://" not in html
    assert len(list((tmp_path / "report_files").glob("*.png"))) == 5


def test_audit_exports_csv(degraded_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    result = CliRunner().invoke(main, ["audit", "--db", str(degraded_db), "--tier", "cloud", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert len(lines) > 1 and "tier" in lines[0]
    assert all(",cloud," in line for line in lines[1:])


@pytest.mark.parametrize("command", ["monitor", "report"])
def test_missing_database_is_one_clear_line(command: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [command, "--db", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output


def test_bench_tracking_measures_the_label_free_estimate(tiny_run: Path, toy_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "tracking.json"
    args = ["bench", "tracking", "--run", str(tiny_run), "--test", str(toy_csv), "--window", "20", "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "label-free estimate on 120 answers" in result.output and "within 2 points: overall" in result.output
    record = json.loads(out.read_text())
    assert record["tracking"]["queries"] == 120 and len(record["tracking"]["window_gaps"]) == 6
    assert set(record["within_2_points"]) == {"overall", "mean_window", "every_window"}
