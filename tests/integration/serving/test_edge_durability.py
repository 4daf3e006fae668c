"""Durability: after ``kill -9`` of the edge service under load, every acknowledged request is in the audit log."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack, closing
from pathlib import Path

import httpx

from hybridroute.bench.load import HOST, free_port, started_server

CLIENTS = 8
ACKED_BEFORE_KILL = 100  # enough group commits to be interesting, little enough to stay quick


def load_until_killed(url: str, acked: list[tuple[str, str]], stop: threading.Event, client: int) -> None:
    """Send single-text requests until the server dies or ``stop``; record (request id, X-Audit) of each 200."""
    with httpx.Client(timeout=10.0) as http:
        sent = 0
        while not stop.is_set():
            try:
                response = http.post(f"{url}/v1/classify", json={"text": f"where is order {client}-{sent}"})
            except httpx.HTTPError:
                return  # killed: requests in flight get no answer, so they were never acknowledged
            if response.status_code == 200:
                acked.extend((r["request_id"], response.headers["x-audit"]) for r in response.json()["results"])
            sent += 1


def audit_contents(db: Path) -> tuple[set[str], int]:
    with closing(sqlite3.connect(db)) as connection:  # opening recovers the WAL left by the killed writer
        ids = {row[0] for row in connection.execute("SELECT request_id FROM audit")}
        dropped = connection.execute("SELECT COALESCE(SUM(value), 0) FROM audit_meta WHERE key = 'dropped'")
        return ids, int(dropped.fetchone()[0])


def serve_command(run: Path, port: int, db: Path) -> list[str]:
    command = [sys.executable, "-m", "hybridroute", "serve", "edge", "--run", str(run), "--host", HOST]
    return command + ["--port", str(port), "--audit-db", str(db), "--no-access-log", "--max-batch", "16"]


def kill_9_under_load(urls: list[str], victim: subprocess.Popen[bytes], linger_s: float = 0.0) -> list[tuple[str, str]]:
    """Load ``urls`` (clients alternate), ``kill -9`` the victim mid-load, load the rest ``linger_s`` more.

    Returns (request id, X-Audit) of every acknowledged answer.
    """
    acked: list[tuple[str, str]] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=load_until_killed, args=(urls[i % len(urls)], acked, stop, i)) for i in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 15.0
    while len(acked) < ACKED_BEFORE_KILL and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)  # mid-load: every client has a request in flight
    victim.wait(10.0)
    time.sleep(linger_s)
    stop.set()
    for thread in clients:
        thread.join(15.0)
    assert victim.returncode == -signal.SIGKILL
    return list(acked)


def assert_every_acknowledged_request_is_stored(acknowledged: list[tuple[str, str]], db: Path) -> None:
    stored, dropped = audit_contents(db)
    assert len(acknowledged) >= 20  # the kill came under load, even on a slow machine (15 s at most)
    # Each response waited for its record's group commit; none timed out or skipped the wait at this load.
    assert Counter(status for _, status in acknowledged) == {"committed": len(acknowledged)}
    assert [request_id for request_id, _ in acknowledged if request_id not in stored] == []
    assert dropped == 0  # the overflow counter reads zero at this load, so it accounts for nothing


def test_every_acknowledged_request_survives_kill_9(tiny_run: Path, tmp_path: Path) -> None:
    run, db = tmp_path / "run", tmp_path / "audit.sqlite"
    shutil.copytree(tiny_run / "edge", run / "edge")
    port = free_port()
    url = f"http://{HOST}:{port}"
    with started_server(serve_command(run, port, db), url, tmp_path / "serve.log", timeout_s=60.0) as process:
        acknowledged = kill_9_under_load([url], process)
    assert_every_acknowledged_request_is_stored(acknowledged, db)


def test_two_replicas_share_one_audit_database_and_a_kill_9_of_one_loses_nothing(
    tiny_run: Path, tmp_path: Path
) -> None:
    # Two service processes write one SQLite audit log at once (WAL: one writer at a time, the other waits);
    # one is killed mid-load, the other drains and stops; every answer either acknowledged is stored.
    run, db = tmp_path / "run", tmp_path / "audit.sqlite"
    shutil.copytree(tiny_run / "edge", run / "edge")
    with ExitStack() as servers:
        urls, processes = [], []
        for name in ("one", "two"):
            port = free_port()  # after the first server has bound its port
            urls.append(f"http://{HOST}:{port}")
            command = serve_command(run, port, db)
            processes.append(servers.enter_context(started_server(command, urls[-1], tmp_path / f"{name}.log", 60.0)))
        acknowledged = kill_9_under_load(urls, processes[0], linger_s=0.3)  # the survivor keeps answering
    assert_every_acknowledged_request_is_stored(acknowledged, db)
