"""``hybridroute bench load`` through real servers on loopback with the tiny run: a given URL and started servers."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import httpx
from click.testing import CliRunner

from hybridroute.cli import main
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import serve_in_thread


def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout_s} s")


def test_bench_load_measures_all_three_configurations(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", run / "edge")
    shutil.copytree(tiny_run / "data", run / "data")
    settings = EdgeSettings(run, hash_salt="test-salt", audit_db=str(tmp_path / "given.sqlite"), policy="always-edge")
    out = tmp_path / "load.json"
    with serve_in_thread(create_app(settings)) as url:  # the batched service is given by URL ...
        wait_ready(url)
        args = ["bench", "load", "--url", url, "--run", str(run), "--concurrency", "4", "--processes", "2"]
        args += ["--duration", "1", "--warmup", "0.3", "--json", str(out)]
        result = CliRunner().invoke(main, args)  # ... the other two are started from the run
    assert result.exit_code == 0, result.output
    assert "[1/3] batched" in result.output and "[3/3] plain" in result.output and "| plain |" in result.output

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["batched"]["url"] == url and report["unbatched"]["url"] != url
    for name in ("batched", "unbatched", "plain"):
        phase = report[name]
        assert phase["errors"] == 0 and phase["ok"] > 0 and phase["throughput_rps"] > 0, phase
        assert phase["unsent"] == 0 and phase["warmup_unsent"] == 0  # a closed loop has no schedule to fall behind
        latency = phase["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert report["batched"]["mean_batch_size"] >= 1.0 and report["unbatched"]["mean_batch_size"] == 1.0
    assert report["plain"]["mean_batch_size"] is None
    assert report["batched"]["server_cpu_ms_per_request"] is None  # given by URL: no process of ours to read
    for name in ("batched", "unbatched", "plain"):  # this machine's CPUs, whoever started the server
        assert 0 < report[name]["machine_busy_pct"] <= 100, report[name]
    cores = report["machine"]["logical_cores"] + 0.1  # + clock-tick rounding
    for name in ("unbatched", "plain"):  # started here: their CPU over the window is read from /proc
        phase = report[name]
        assert phase["server_cpu_ms_per_request"] > 0 and 0 < phase["server_cores"] <= cores, phase
    assert report["server_cpu_ratio"] == {"unbatched_vs_batched": None, "plain_vs_batched": None}
    assert set(report["speedup"]) == {"batched_vs_unbatched", "batched_vs_plain"}
    assert report["not_measured"] == {}
    assert report["machine"]["logical_cores"] and report["settings"]["concurrency"] == 4
    assert report["settings"]["texts"]["source"].endswith("validation split")
    assert not (run / "audit.sqlite").exists()  # the started services audit into a temporary folder


def test_bench_load_open_loop_offers_the_given_rate(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", run / "edge")
    settings = EdgeSettings(
        run, hash_salt="test-salt", audit_db=str(tmp_path / "a.sqlite"), policy="always-edge", workers=2, threads=1
    )
    out = tmp_path / "load.json"
    with serve_in_thread(create_app(settings)) as url:
        wait_ready(url)
        args = ["bench", "load", "--url", url, "--concurrency", "4", "--processes", "1", "--rate", "40"]
        args += ["--duration", "2", "--warmup", "0.5", "--json", str(out)]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "offering 40 req/s" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["settings"]["rate_rps"] == 40
    batched = report["batched"]
    assert batched["errors"] == 0 and 30 <= batched["throughput_rps"] <= 44, batched  # the offered rate, not more
    assert report["kept_up"] == {"batched": batched["throughput_rps"] >= 0.98 * 40}
    # 4 clients due every 0.1 s for 2 s: 80 requests, each sent (ok or error) or counted unsent (1 per client at the
    # window's edges either way, by rounding)
    assert 76 <= batched["ok"] + batched["errors"] + batched["unsent"] <= 84, batched
    assert ("requests were due but never sent" in result.output) == bool(batched["unsent"] + batched["warmup_unsent"])
    assert report["unbatched"] is None and "--unbatched-url" in report["not_measured"]["unbatched"]
    assert set(report["not_measured"]) == {"unbatched", "plain"} and "latency_ms" in report["definitions"]
    assert "batched: offered 40.0 req/s, served" in result.output


def test_bench_load_spreads_the_clients_over_started_replicas(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", run / "edge")
    out = tmp_path / "load.json"
    args = ["bench", "load", "--run", str(run), "--replicas", "2", "--workers", "1", "--threads", "1"]
    args += ["--concurrency", "4", "--processes", "2", "--duration", "1", "--warmup", "0.3", "--json", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "(replica 2/2): starting on" in result.output and "| batched (2 processes) |" in result.output

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["settings"]["server"]["replicas"] == 2
    for name in ("batched", "unbatched", "plain"):
        phase = report[name]
        urls = phase["url"].split(", ")
        assert phase["replicas"] == 2 and len(set(urls)) == 2, phase
        assert phase["errors"] == 0 and phase["warmup_errors"] == 0 and phase["ok"] > 0, phase
        assert phase["server_cpu_ms_per_request"] > 0, phase  # both processes read from /proc
    # the two edge services share one audit database: batches from both replicas' /metrics, none lost
    assert report["batched"]["mean_batch_size"] >= 1.0 and report["unbatched"]["mean_batch_size"] == 1.0


def test_bench_load_spreads_the_clients_over_replicas_given_by_url(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "edge", run / "edge")
    dbs = [tmp_path / "one.sqlite", tmp_path / "two.sqlite"]
    settings = [EdgeSettings(run, hash_salt="s", audit_db=str(db), policy="always-edge") for db in dbs]
    out = tmp_path / "load.json"
    with serve_in_thread(create_app(settings[0])) as one, serve_in_thread(create_app(settings[1])) as two:
        wait_ready(one)
        wait_ready(two)
        args = ["bench", "load", "--url", one, "--url", two, "--concurrency", "4", "--processes", "2"]
        args += ["--duration", "1", "--warmup", "0.3", "--json", str(out)]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    batched = json.loads(out.read_text(encoding="utf-8"))["batched"]
    assert batched["replicas"] == 2 and batched["url"] == f"{one}, {two}" and batched["errors"] == 0
    assert batched["mean_batch_size"] >= 1.0  # from both services' /metrics
    with closing(sqlite3.connect(dbs[0])) as first, closing(sqlite3.connect(dbs[1])) as second:
        counts = [db.execute("SELECT COUNT(*) FROM audit").fetchone()[0] for db in (first, second)]
    assert min(counts) > 0.5 * max(counts), counts  # two clients each, both services answered
