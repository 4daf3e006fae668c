"""A second SIGINT/SIGTERM while a real edge service drains: it keeps draining, then shuts the application down.

The service runs in its own process, served as ``hybridroute serve edge`` serves it (the port bound with
:func:`listen` before the model loads, then :func:`serve_foreground`), while clients keep posting. Two SIGINTs
50 ms apart (an impatient Ctrl+C) used to make uvicorn force its exit: a CancelledError traceback, and no
application shutdown, so the audit records still queued were lost. Now the second signal only logs that the
service is still draining; every request it answered is a row of its audit log.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from hybridroute.bench.fuzz import shadow_run
from hybridroute.bench.load import free_port
from hybridroute.errors import HybridError
from hybridroute.serving.uvicorn_runner import listen
from support.processes import wait_ready

pytestmark = pytest.mark.timeout(300)

CLIENTS = 6


def serve_edge_command(run: Path, port: int, audit_db: Path) -> list[str]:
    """``hybridroute serve edge`` as a user runs it, edge-only, batches held 20 ms so requests are in flight."""
    return [
        *(sys.executable, "-m", "hybridroute", "serve", "edge", "--run", str(run), "--host", "127.0.0.1"),
        *("--port", str(port), "--audit-db", str(audit_db), "--policy", "always-edge", "--max-wait-ms", "20"),
        *("--threads", "1", "--no-access-log"),
    ]


def post_until_refused(url: str, stop: threading.Event, acknowledged: list[str], statuses: list[int]) -> None:
    with httpx.Client(timeout=30.0) as client:
        i = 0
        while not stop.is_set():
            try:
                response = client.post(f"{url}/v1/classify", json={"texts": [f"where is order {i}", "thanks"]})
            except httpx.TransportError:
                return
            statuses.append(response.status_code)
            if response.status_code == 200:
                acknowledged.extend(r["request_id"] for r in response.json()["results"])
            i += 1


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGTERM)])
def test_a_second_signal_while_draining_does_not_skip_the_application_shutdown(
    tiny_run: Path, tmp_path: Path, signals: tuple[signal.Signals, signal.Signals]
) -> None:
    run, port, audit_db, log = shadow_run(tiny_run, tmp_path), free_port(), tmp_path / "audit.sqlite", tmp_path / "log"
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    with log.open("wb") as handle:
        command = serve_edge_command(run, port, audit_db)
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        wait_ready(url, process, log)
        clients = [
            threading.Thread(target=post_until_refused, args=(url, stop, acknowledged, statuses))
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60.0
        while len(statuses) < 10 * CLIENTS and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signals[0])
        time.sleep(0.05)
        process.send_signal(signals[1])
        exit_code = process.wait(60)
        stop.set()
        for client in clients:
            client.join(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text(errors="replace")
    assert exit_code in (0, -signal.SIGTERM), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert "still draining" in output and "send it once more to force the exit" in output, output[-3000:]
    assert "Application shutdown complete" in output, output[-3000:]
    assert len(statuses) >= 10 * CLIENTS and set(statuses) == {200}, set(statuses)
    with sqlite3.connect(audit_db) as connection:
        stored = {row[0] for row in connection.execute("SELECT request_id FROM audit")}
    assert acknowledged and set(acknowledged) <= stored


def test_serve_edge_on_a_port_in_use_fails_in_one_line_before_loading(tiny_run: Path, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = serve_edge_command(tiny_run, port, tmp_path / "audit.sqlite")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"Error: cannot listen on 127.0.0.1:{port}: address already in use; "
        "stop what listens there or pick another --port"
    )
    assert "Traceback" not in done.stderr and not (tmp_path / "audit.sqlite").exists()  # refused before the audit log


def test_a_port_in_use_is_one_clear_error_before_anything_loads() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HybridError) as refused:
            listen("127.0.0.1", port)
    assert str(refused.value).startswith(f"cannot listen on 127.0.0.1:{port}: address already in use;")
