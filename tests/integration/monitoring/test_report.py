"""The HTML health report from an audit log: sections, inlined plots, PNG copies, escaping."""

from __future__ import annotations

import base64
import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import hybridroute.monitoring.report as report_module
from hybridroute.errors import ConfigError
from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.monitoring.drift import Reference
from hybridroute.monitoring.replay import Phase, replay
from hybridroute.monitoring.report import render_report
from hybridroute.monitoring.thresholds import MonitorConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = ("edge_share", "latency", "cost", "confidence", "alerts")


def write_log(path: Path, phases: list[Phase]) -> Path:
    records = [r.plain() for r in replay(phases, np.random.default_rng(0))]
    # A reason with markup: it reaches the page through the recommendations and must arrive escaped.
    records = [dataclasses.replace(r, reason="<b>odd</b>") if r.tier == "cloud" else r for r in records]
    store = SQLiteAuditStore(path)
    store.write_many(records)
    store.close()
    return path


@pytest.fixture(scope="module")
def degraded_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    db = write_log(root / "audit.db", [Phase(1500), Phase(1500, accuracy=0.7, edge_share=0.5, cloud_latency_ms=250)])
    reference = Reference((60,) * 10, (0.0,) * 10, tuple(0.6 + i / 30 for i in range(10)), 0.92)
    return render_report(db, root / "report.html", reference, config=MonitorConfig(window_size=500))


def test_report_has_every_section(degraded_report: Path) -> None:
    page = degraded_report.read_text(encoding="utf-8")
    for heading in ("Summary", "Alerts", "Trends", "Recommendations", "Cost projection", "Plots"):
        assert f">{heading}</h2>" in page
    assert "critical" in page and "edge_share_low" in page
    assert "hybridroute calibrate --run RUN --max-cloud-share 0.1" in page


def test_a_healthy_log_gets_a_report_too(tmp_path: Path) -> None:
    db = write_log(tmp_path / "audit.db", [Phase(200)])  # no plotted window breaks a threshold: no alert to plot
    page = render_report(db, tmp_path / "report.html", config=MonitorConfig(window_size=500)).read_text()
    assert "healthy" in page and "every metric is within its thresholds" in page
    assert (tmp_path / "report_files" / "alerts.png").read_bytes().startswith(PNG_MAGIC)


def test_report_is_self_contained(degraded_report: Path) -> None:
    page = degraded_report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(PLOTS)
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)


def test_report_writes_png_copies(degraded_report: Path) -> None:
    files = degraded_report.parent / "report_files"
    for name in PLOTS:
        assert (files / f"{name}.png").read_bytes().startswith(PNG_MAGIC)


def test_report_escapes_text(degraded_report: Path) -> None:
    page = degraded_report.read_text(encoding="utf-8")
    assert "<b>odd</b>" not in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page


def test_report_refuses_a_missing_or_empty_log(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        render_report(tmp_path / "none.db", tmp_path / "r.html")
    SQLiteAuditStore(tmp_path / "empty.db").close()
    with pytest.raises(ConfigError, match="no records"):
        render_report(tmp_path / "empty.db", tmp_path / "r.html")


def test_a_postgres_url_is_shown_without_its_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "postgresql://auditor:S3cretPW@db.internal/audit"
    records = [r.plain() for r in replay([Phase(200)], np.random.default_rng(0))]
    monkeypatch.setattr(report_module, "read_records", lambda db: records)  # no PostgreSQL server here
    page = render_report(url, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "S3cretPW" not in page and "postgresql://auditor:***@db.internal/audit" in page
    monkeypatch.setattr(report_module, "read_records", lambda db: [])
    with pytest.raises(ConfigError, match="holds no records") as caught:
        render_report(url, tmp_path / "empty.html")
    assert "S3cretPW" not in str(caught.value) and "auditor:***@db.internal" in str(caught.value)
