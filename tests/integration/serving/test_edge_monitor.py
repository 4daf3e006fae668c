"""The live monitor of the edge service on the tiny real run: GET /v1/monitor, input profile in the audit log."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from hybridroute.bench.load import free_port, started_server
from hybridroute.cli import main
from hybridroute.monitoring.drift import REFERENCE_FILE, load_reference
from hybridroute.monitoring.monitor import TREND_METRICS
from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import serve_in_thread
from support.json_files import write_json_file
from support.raw_http import error_of

ORDINARY = [f"{w} order {i} please" for i, w in enumerate(["great", "awful", "where", "love", "refund"] * 6)]
ODD = "🦜🦜 ꙮꙮ " * 60  # long, and mostly tokens the vocabulary lacks ([UNK])


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """The run's edge bundle and stored split (the drift reference is built from them, into this copy)."""
    root = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", root / "edge")
    shutil.copytree(tiny_run / "data", root / "data")
    return root


def wait_ready(client: httpx.Client, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get(f"{url}/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout_s} s")


def gauge_values(metrics_text: str) -> dict[str, float]:
    """Series of the monitor's gauges in Prometheus text, by name with labels."""
    values = {}
    for line in metrics_text.splitlines():
        if line.startswith("hybridroute_monitor_"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def classify(client: httpx.Client, url: str, text: str) -> str:
    response = client.post(f"{url}/v1/classify", json={"text": text})
    assert response.status_code == 200, response.text
    return str(response.json()["results"][0]["request_id"])


def test_monitor_reports_live_traffic_feedback_and_input_drift(run_copy: Path, tmp_path: Path) -> None:
    settings = EdgeSettings(
        run_copy,
        hash_salt="test-salt",
        audit_db=str(tmp_path / "audit.sqlite"),
        monitor_config=MonitorConfig(window_size=30, trend_windows=4),
        monitor_thresholds=MonitorThresholds(min_window=20, min_feedback=5),
    )
    with serve_in_thread(create_app(settings)) as url, httpx.Client(timeout=30.0) as client:
        wait_ready(client, url)
        ids = [classify(client, url, text) for text in ORDINARY]
        labels = client.get(f"{url}/readyz").json()["labels"]
        for request_id in ids[:6]:
            assert client.post(f"{url}/v1/feedback", json={"request_id": request_id, "label": labels[0]}).is_success
        calm = client.get(f"{url}/v1/monitor").json()
        odd_ids = [classify(client, url, ODD) for _ in range(30)]
        drifted = client.get(f"{url}/v1/monitor").json()
        gauges = gauge_values(client.get(f"{url}/metrics").text)  # the first scrape computes the monitor gauges

    assert (run_copy / REFERENCE_FILE).is_file()  # built once at startup, from the run's validation split
    assert calm["drift_reference"] is True and calm["held_records"] == len(ORDINARY)
    assert 0 <= calm["health"]["score"] <= 100 and calm["health"]["status"] in {"healthy", "degraded", "critical"}
    window = calm["window"]
    assert window["queries"] == 30 and window["edge_share"] == 1.0  # no cloud tier in this run
    assert window["feedback_count"] == 6 and 0.0 <= window["feedback_accuracy"] <= 1.0
    assert 0.0 < window["estimated_accuracy"] <= 1.0
    assert set(calm["trends"]) == set(TREND_METRICS) and calm["recommendations"]
    assert {"daily_cost", "monthly_cost", "monthly_cloud_only", "savings_pct"} <= set(calm["cost"])
    assert set(calm["drift_psi"]) == {"text_length", "unk_rate", "confidence"}

    assert drifted["held_records"] == 60 and drifted["window"]["queries"] == 30
    assert drifted["drift_psi"]["text_length"] > 0.25 and drifted["drift_psi"]["unk_rate"] > 0.25
    severity = {a["name"]: a["severity"] for a in drifted["alerts"]}
    assert severity["drift_text_length"] == severity["drift_unk_rate"] == "critical"
    assert drifted["health"]["status"] == "critical" and any("drifted" in r for r in drifted["recommendations"])

    assert gauges['hybridroute_monitor_drift_psi{feature="text_length"}'] == pytest.approx(
        drifted["drift_psi"]["text_length"]
    )
    assert gauges["hybridroute_monitor_health_score"] == drifted["health"]["score"]
    assert "hybridroute_monitor_feedback_accuracy" not in gauges  # no labelled answer in the scraped window

    with sqlite3.connect(tmp_path / "audit.sqlite") as db:
        profile = dict(
            (row[0], row[1:]) for row in db.execute("SELECT request_id, text_length, unk_rate FROM audit").fetchall()
        )
    assert profile[ids[0]][0] == len(ORDINARY[0]) and profile[ids[0]][1] == 0.0
    assert profile[odd_ids[0]][0] == len(ODD) and profile[odd_ids[0]][1] > 0.5


def test_after_a_reload_the_drift_reference_is_the_loaded_bundles(
    run_copy: Path, tiny_run: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-bundle"  # a valid bundle outside the run, with another model
    shutil.copytree(tiny_run / "onnx_fp32", other)
    old = EdgeClassifier.from_dir(run_copy / "edge").model_version
    new = EdgeClassifier.from_dir(other).model_version
    token = "admin-token-0123456789"
    settings = EdgeSettings(
        run_copy, hash_salt="test-salt", audit_db=str(tmp_path / "audit.sqlite"), admin_token=token, threads=1
    )
    app = create_app(settings)
    with serve_in_thread(app) as url, httpx.Client(timeout=30.0) as client:
        wait_ready(client, url)
        monitor = app.state.service.monitor
        assert monitor.reference is not None and monitor.reference.model_version == old
        reloaded = client.post(
            f"{url}/admin/reload", headers={"Authorization": f"Bearer {token}"}, json={"bundle": str(other)}
        )
        assert reloaded.status_code == 200 and reloaded.json()["model_version"] == new
        deadline = time.monotonic() + 60.0
        while (monitor.reference.model_version if monitor.reference else None) != new:
            assert time.monotonic() < deadline, "the drift reference was not rebuilt for the loaded bundle"
            time.sleep(0.05)
        assert client.get(f"{url}/v1/monitor").json()["drift_reference"] is True
    # the run's saved reference stays its own edge bundle's (the other bundle's is not written over it)
    assert load_reference(run_copy / REFERENCE_FILE).model_version == old


# ---------------------------------------------------------------- serve edge --thresholds


def test_serve_edge_takes_its_limits_prices_and_monitor_settings_from_the_command_line(
    run_copy: Path, tmp_path: Path
) -> None:
    limits = write_json_file(
        tmp_path / "thresholds.json", {"min_window": 10, "max_p95_latency_ms": 0.001, "critical_p95_latency_ms": 1e6}
    )
    prices = write_json_file(tmp_path / "prices.json", {"edge_per_query": 0.0005, "cloud_per_query": 0.02})
    port, log = free_port(), tmp_path / "edge.log"
    command = [sys.executable, "-m", "hybridroute", "serve", "edge", "--run", str(run_copy), "--port", str(port)]
    command += ["--audit-db", str(tmp_path / "audit.sqlite"), "--thresholds", str(limits), "--no-access-log"]
    command += ["--prices", str(prices), "--policy", "always-edge"]
    command += ["--monitor-window", "10", "--max-texts", "2", "--audit-ack-timeout", "0"]
    url = f"http://127.0.0.1:{port}"
    with started_server(command, url, log, timeout_s=120.0), httpx.Client(timeout=30.0) as client:
        responses = [client.post(f"{url}/v1/classify", json={"text": text}) for text in ORDINARY[:12]]
        too_many = client.post(f"{url}/v1/classify", json={"texts": ORDINARY[:3]})
        report = client.get(f"{url}/v1/monitor").json()
    assert {r.json()["results"][0]["cost"] for r in responses} == {0.0005}  # the file's edge price, not the default
    assert {r.headers["x-audit"] for r in responses} == {"queued"}  # --audit-ack-timeout 0: no wait for the commit
    assert too_many.status_code == 413  # --max-texts 2
    assert "at most 2 are accepted per request" in error_of(too_many)["message"]
    assert report["window"]["queries"] == 10  # --monitor-window 10: the newest 10 of 12 answers
    assert report["cost"]["cost_per_query"] == pytest.approx(0.0005)
    assert report["cost"]["monthly_cloud_only"] == pytest.approx(0.02 * report["cost"]["queries_per_day"] * 30)
    assert report["thresholds"]["min_window"] == 10 and report["thresholds"]["max_p95_latency_ms"] == 0.001
    assert report["thresholds"]["min_accuracy"] == MonitorThresholds().min_accuracy  # not in the file: the default
    # every real answer takes longer than a microsecond: the file's limit, not the default 150 ms, raised this
    assert ("latency_p95_high", "warning") in [(a["name"], a["severity"]) for a in report["alerts"]]


def test_serve_edge_refuses_a_bad_thresholds_file_before_loading_anything(run_copy: Path, tmp_path: Path) -> None:
    bad = write_json_file(tmp_path / "thresholds.json", {"min_accuracy": "high"})
    result = CliRunner().invoke(main, ["serve", "edge", "--run", str(run_copy), "--thresholds", str(bad)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip() == (
        f"Error: {bad}: invalid MonitorThresholds: min_accuracy must be a finite number, got 'high' (str)"
    )


def test_serve_edge_refuses_a_min_window_its_live_windows_cannot_reach(run_copy: Path, tmp_path: Path) -> None:
    limits = write_json_file(tmp_path / "thresholds.json", {"min_window": 5000})
    result = CliRunner().invoke(main, ["serve", "edge", "--run", str(run_copy), "--thresholds", str(limits)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the live monitor's windows hold 1000 answers, fewer than min_window (5000)" in result.output


def test_serve_edge_passes_every_flag_to_the_service(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, object] = {}

    def keep(app: object, sock: socket.socket, **options: object) -> None:
        served.update(app=app, port=sock.getsockname()[1], **options)

    monkeypatch.setattr("hybridroute.serving.uvicorn_runner.serve_foreground", keep)
    monkeypatch.setattr("hybridroute.serving.uvicorn_runner.freeze_startup_heap", lambda: None)
    args = ["serve", "edge", "--run", str(run_copy), "--audit-db", str(tmp_path / "audit.sqlite"), "--port", "8123"]
    args += ["--audit-queue", "5000", "--audit-ack-timeout", "0.5", "--max-texts", "8", "--monitor-window", "200"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    settings = served["app"].state.service.settings  # type: ignore[attr-defined]
    assert (settings.audit_queue, settings.audit_ack_timeout_s, settings.max_texts) == (5000, 0.5, 8)
    assert settings.monitor_config.window_size == 200 and served["port"] == 8123
    assert settings.body_limit == EdgeSettings(run_copy, max_texts=8).body_limit  # derived from --max-texts


def test_a_malformed_drift_reference_leaves_the_service_ready_without_drift(run_copy: Path) -> None:
    write_json_file(run_copy / REFERENCE_FILE, {"text_length": 5, "unk_rate": [], "confidence": []})
    with serve_in_thread(create_app(EdgeSettings(run_copy, threads=1))) as url, httpx.Client(timeout=30.0) as client:
        wait_ready(client, url, timeout_s=30.0)
        answered = client.post(f"{url}/v1/classify", json={"text": ORDINARY[0]})
    assert answered.status_code == 200


@pytest.mark.parametrize("audit_db", ["foo://x", "{tmp}/afile/x.sqlite", "{tmp}/afile"])
def test_serve_edge_refuses_an_audit_database_it_cannot_open_in_one_line(
    run_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit_db: str
) -> None:
    (tmp_path / "afile").write_text("a regular file, not a folder and not SQLite\n")
    served: list[object] = []
    monkeypatch.setattr("hybridroute.serving.uvicorn_runner.serve_foreground", lambda app, *_, **__: served.append(app))
    monkeypatch.setattr("hybridroute.serving.uvicorn_runner.freeze_startup_heap", lambda: None)
    command = ["serve", "edge", "--run", str(run_copy), "--audit-db", audit_db.format(tmp=tmp_path)]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.splitlines()[-1].startswith("Error: ")
    assert "audit database" in result.output.splitlines()[-1]
    assert served == []  # refused before serving
