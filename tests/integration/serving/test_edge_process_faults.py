"""The real edge service with the tiny trained model: SIGTERM under load, and a cloud outage.

SIGTERM goes to a real ``hybridroute serve edge`` process while clients keep posting: the requests it was
working on finish (200, none 5xx), the process exits cleanly, and every request it acknowledged is a row
of its audit log.

The outage check is the issue's target with a short timeout: while the cloud is not listening or hung,
100% of queries are answered and p99 stays within the configured cloud timeout + 10 ms (``bench
routing``'s outage scenarios measure the same on a real run). The breaker opens after 5 failed calls, so
over an outage of 600 queries those few slow ones are under 1%, as in any outage that lasts more than a
few seconds; each of them must still end within one timeout, so no query waits for a retry or a second
timeout. On a busy machine (this suite shares 2 cores with training jobs) the scheduler alone delays some
answers by tens of milliseconds; the allowance grows by the jitter measured in the same run on the answers
that never touched the network (circuit open: p99 - p50), which is about 1 ms on an idle machine.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from hybridroute.bench.fuzz import shadow_run
from hybridroute.bench.load import free_port
from hybridroute.hybrid import HybridSettings, open_hybrid
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import bind_socket, serve_in_thread, url_of
from support.processes import wait_ready

pytestmark = pytest.mark.timeout(300)

CLIENTS = 6
CLEAN_EXITS = (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its graceful shutdown


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """The tiny run seen through links, so files the service writes (salt, audit, reference) stay in tmp_path."""
    return shadow_run(tiny_run, tmp_path)


# ---------------------------------------------------------------- SIGTERM under load


@dataclass(frozen=True)
class Sent:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (refused or closed: the server had stopped taking requests)
    ids: tuple[str, ...] = ()
    audit: str = ""


def post_until_refused(client: httpx.Client, url: str, stop: threading.Event, out: list[Sent]) -> None:
    """One client: post small batches back to back until the server stops answering or ``stop`` is set."""
    with client:
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                response = client.post(f"{url}/v1/classify", json={"texts": [f"where is order {i}", "thanks"]})
            except httpx.TransportError as exc:
                out.append(Sent(started, time.monotonic(), None, audit=repr(exc)))
                return
            ids = tuple(r["request_id"] for r in response.json()["results"]) if response.status_code == 200 else ()
            out.append(Sent(started, time.monotonic(), response.status_code, ids, response.headers.get("x-audit", "")))
            i += 1


@contextmanager
def edge_process(run: Path, port: int, audit_db: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "hybridroute", "serve", "edge", "--run", str(run), "--port", str(port)]
    command += ["--audit-db", str(audit_db), "--policy", "always-edge", "--max-wait-ms", "20", "--no-access-log"]
    with log.open("wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def audited_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT request_id FROM audit")}


def test_sigterm_under_load_finishes_in_flight_requests_and_audits_every_acknowledged_one(
    run_copy: Path, tmp_path: Path
) -> None:
    port, audit_db, log = free_port(), tmp_path / "audit.sqlite", tmp_path / "edge.log"
    url = f"http://127.0.0.1:{port}"
    sent: list[Sent] = []
    stop = threading.Event()
    with edge_process(run_copy, port, audit_db, log) as process:
        wait_ready(url, process, log)
        pools = [httpx.Client(timeout=30.0) for _ in range(CLIENTS)]  # built first: building one takes a while
        clients = [threading.Thread(target=post_until_refused, args=(p, url, stop, sent)) for p in pools]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60.0
        while len(sent) < 10 * CLIENTS and time.monotonic() < deadline:
            time.sleep(0.01)  # under load: every client has a request in the service at any moment
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(60)
        stop.set()
        for client in clients:
            client.join(30)
    answered = [s for s in sent if s.status is not None]
    assert exit_code in CLEAN_EXITS, log.read_text(errors="replace")[-3000:]
    assert len(answered) >= 10 * CLIENTS and all(s.status == 200 for s in answered), {s.status for s in sent}
    finished_after_the_signal = [s for s in answered if s.started < signalled < s.ended]
    assert finished_after_the_signal, "no request was in flight at SIGTERM; the test proves nothing"
    acknowledged = {i for s in answered for i in s.ids}
    committed = {i for s in answered if s.audit == "committed" for i in s.ids}
    stored = audited_ids(audit_db)
    assert committed and committed <= stored  # acknowledged as committed: a row, whatever happens next
    assert acknowledged <= stored  # and after a graceful stop every answered text is a row
    assert "Traceback" not in log.read_text(errors="replace")


# ---------------------------------------------------------------- a cloud outage

TIMEOUT_S = 0.1  # the configured cloud timeout; the call budget equals it (no attempt outlives it)
ALLOWANCE_MS = 10.0  # the target: p99 <= cloud timeout + 10 ms
QUERIES = 600


def hung_cloud() -> FastAPI:
    app = FastAPI()

    async def never_in_time() -> dict[str, str]:
        await asyncio.sleep(20 * TIMEOUT_S)
        return {"status": "too late"}

    app.add_api_route("/v1/classify", never_in_time, methods=["POST"])
    return app


@contextmanager
def outage(kind: str) -> Iterator[str]:
    """A cloud URL that is down in the way ``kind`` says."""
    if kind == "not_listening":
        sock = bind_socket("127.0.0.1", 0)
        try:
            yield url_of(sock)
        finally:
            sock.close()
    else:
        with serve_in_thread(hung_cloud()) as url:
            yield url


@pytest.mark.parametrize("kind", ["not_listening", "hung"])
def test_during_a_cloud_outage_every_query_is_answered_within_the_cloud_timeout(run_copy: Path, kind: str) -> None:
    with outage(kind) as cloud_url:
        hybrid_settings = HybridSettings(
            run_copy, cloud_url, "always-cloud", cloud_timeout_s=TIMEOUT_S, cloud_budget_s=TIMEOUT_S, threads=1
        )
        settings = EdgeSettings(run_copy, hash_salt="outage", monitor_reference=False, threads=1)
        app = create_app(settings, open_hybrid(hybrid_settings))
        with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
            while (ready := client.get(f"{url}/readyz")).status_code != 200:
                time.sleep(0.02)
            labels = ready.json()["labels"]
            client.post(f"{url}/v1/classify", json={"text": "warm the connection"})
            wall_ms, answers = [], []
            for i in range(QUERIES):
                started = time.perf_counter()
                response = client.post(f"{url}/v1/classify", json={"text": f"my card number {i} was declined"})
                wall_ms.append(1000.0 * (time.perf_counter() - started))
                answers.append(response)
    assert all(r.status_code == 200 for r in answers)
    results = [r.json()["results"][0] for r in answers]
    assert all(r["label"] in labels and r["fallback"] is True for r in results)  # 100% answered, marked
    offline = [ms for ms, r in zip(wall_ms, results, strict=True) if r["reason"] == "fallback:circuit_open"]
    jitter = float(np.percentile(offline, 99) - np.percentile(offline, 50))  # the machine's, not the cloud's
    limit = 1000.0 * TIMEOUT_S + ALLOWANCE_MS + jitter
    assert float(np.percentile(wall_ms, 99)) <= limit, (limit, sorted(wall_ms)[-8:])
    assert max(wall_ms) <= 1000.0 * TIMEOUT_S + ALLOWANCE_MS + max(offline), (limit, sorted(wall_ms)[-8:])
