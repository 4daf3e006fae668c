"""Faults under the real edge service over HTTP: a misbehaving cloud, and an audit database that fails.

The cloud: down, hung, answering 500, answering garbage, resetting connections. Every query must still be
answered 200, marked as a fallback, within the cloud call's budget (plus a small allowance for the edge).

The audit log: a real SQLite database that is full ("database or disk is full": ``PRAGMA max_page_count``,
and a real full disk, a tiny tmpfs, where this machine lets us mount one) or read-only (``PRAGMA
query_only``: SQLite's "attempt to write a readonly database"; a tmpfs cannot be remounted read-only while
the database is open on it, and as root file modes do not stop writes). The service must keep answering
within its budget, say so (``X-Audit: retrying``, ``/readyz``'s ``audit`` entry, ``hybridroute_audit_failing``),
keep the records and write every one of them once the disk is usable again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridroute.monitoring.audit import SQLiteAuditStore
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import AlwaysCloud
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_client import ClientConfig, CloudClient
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import bind_socket, serve_in_thread, url_of

pytestmark = pytest.mark.timeout(120)

LABELS = ["negative", "neutral", "positive"]  # the fake classifier's (see conftest.py)
TIMEOUT_S = 0.15  # one cloud attempt
BUDGET_S = 0.3  # the whole cloud call, retry included
EDGE_ALLOWANCE_S = 0.15  # the edge's own work and HTTP on loopback, on a busy test machine
QUERIES = 8  # more than the breaker's 5 failures: the later ones fail fast with circuit_open


# ---------------------------------------------------------------- a cloud that misbehaves


def cloud_app() -> Starlette:
    """Misbehaves as its path says: /slow, /error500, /not_json, /bad_gzip, /wrong_shape."""

    async def classify(request: Request) -> Response:
        mode = request.path_params["mode"]
        await request.body()
        if mode == "slow":
            await asyncio.sleep(10 * TIMEOUT_S)
            return JSONResponse({"too": "late"})
        if mode == "error500":
            return JSONResponse({"error": {"type": "inference_error", "message": "fell over"}}, status_code=500)
        if mode == "not_json":
            return Response("<html>hello</html>", media_type="text/html")
        if mode == "bad_gzip":  # a 200 whose body is not the gzip its header announces
            return Response(b"not gzip at all", media_type="application/json", headers={"Content-Encoding": "gzip"})
        return JSONResponse({"predictions": "none"})  # wrong_shape

    return Starlette(routes=[Route("/{mode}/v1/classify", classify, methods=["POST"])])


@contextmanager
def cloud_url_for(mode: str, resetting_server: Callable[..., Any]) -> Iterator[str]:
    """A base URL whose /v1/classify misbehaves as ``mode`` says."""
    if mode == "down":
        sock = bind_socket("127.0.0.1", 0)  # bound, never listening: connections are refused
        try:
            yield url_of(sock)
        finally:
            sock.close()
    elif mode in ("reset_on_accept", "reset_after_request"):
        with resetting_server(read_first=mode == "reset_after_request") as url:
            yield url
    else:
        with serve_in_thread(cloud_app()) as url:
            yield f"{url}/{mode}"


def always_cloud(classifier: EdgeClassifier, cloud_url: str) -> HybridClassifier:
    config = ClientConfig(cloud_url, timeout_s=TIMEOUT_S, retries=1, backoff_s=0.01, budget_s=BUDGET_S)
    return HybridClassifier(classifier, AlwaysCloud(), CloudClient(config, expected_labels=LABELS))


def settings(tmp_path: Path, **changes: Any) -> EdgeSettings:
    return EdgeSettings(tmp_path, hash_salt="faults", monitor_reference=False, **changes)


def wait_ready(client: httpx.Client, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10.0
    while (ready := client.get(f"{url}/readyz")).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.01)
    return dict(ready.json())


def timed_post(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.post(f"{url}/v1/classify", json=body)
    return response, time.perf_counter() - started


# ---------------------------------------------------------------- the cloud misbehaves


@pytest.mark.parametrize(
    ("mode", "cause"),
    [
        ("down", "connect_error"),
        ("slow", "timeout"),
        ("error500", "http_500"),
        ("not_json", "malformed_response"),
        ("bad_gzip", "malformed_response"),
        ("wrong_shape", "malformed_response"),
        ("reset_on_accept", "connect_error|connection_error"),  # httpx may see a reset during setup as a connect error
        ("reset_after_request", "connection_error"),
    ],
)
def test_every_query_is_answered_as_a_fallback_within_the_budget(
    mode: str, cause: str, fake_classifier: EdgeClassifier, tmp_path: Path, resetting_server: Callable[..., Any]
) -> None:
    with cloud_url_for(mode, resetting_server) as cloud_url:
        # Responses do not wait for their audit commit here: that wait has its own bound (audit_ack_timeout_s,
        # tested with the audit faults below); this test times what the cloud's failures cost.
        app = create_app(settings(tmp_path, audit_ack_timeout_s=0.0), always_cloud(fake_classifier, cloud_url))
        with serve_in_thread(app) as url, httpx.Client(timeout=10.0) as client:
            wait_ready(client, url)
            answers = [timed_post(client, url, {"texts": [f"query {i}", "two words"]}) for i in range(QUERIES)]
    for response, seconds in answers:
        assert response.status_code == 200, response.text
        assert seconds <= BUDGET_S + EDGE_ALLOWANCE_S, (mode, seconds)
        for result in response.json()["results"]:
            assert result["fallback"] is True and result["tier"] == "edge" and result["label"] in LABELS
    reasons = [r["reason"] for response, _ in answers for r in response.json()["results"]]
    assert reasons[0].removeprefix("fallback:") in cause.split("|")
    assert reasons[-1] == "fallback:circuit_open"  # the breaker stopped calling a cloud that keeps failing


# ---------------------------------------------------------------- the audit database fails


def pragma(store: SQLiteAuditStore, statement: str) -> Any:
    """Run a PRAGMA on the store's own connection (max_page_count and query_only hold per connection)."""
    with store._lock:  # the store has one connection, shared with its writer thread
        return store._connection.execute(statement).fetchone()


def metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.rsplit(" ", 1)[1])


def rows(db: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT request_id FROM audit")}


def run_until_the_disk_recovers(
    app_settings: EdgeSettings,
    store: SQLiteAuditStore,
    classifier: EdgeClassifier,
    break_disk: Callable[[], None],
    fix_disk: Callable[[], None],
    error: str,
) -> None:
    """Answer through a broken audit disk, check it shows, fix the disk, check every record was written."""
    hybrid = HybridClassifier(classifier, AlwaysCloud(), None)  # no cloud: the audit log is the fault here
    answered: list[str] = []
    app = create_app(app_settings, hybrid, audit=store)
    with serve_in_thread(app, graceful_shutdown_s=5) as url, httpx.Client(timeout=10.0) as client:
        wait_ready(client, url)
        first, _ = timed_post(client, url, {"text": "before the fault"})
        assert first.headers["x-audit"] == "committed"
        answered += [r["request_id"] for r in first.json()["results"]]
        break_disk()
        for i in range(40):
            response, seconds = timed_post(client, url, {"texts": [f"message {i} " + "x" * 400] * 4})
            assert response.status_code == 200 and seconds < 0.5, (response.status_code, seconds)
            answered += [r["request_id"] for r in response.json()["results"]]
        assert response.headers["x-audit"] == "retrying"  # answered without waiting for a disk that is full
        ready = wait_ready(client, url)  # still ready: the service answers; the detail says what is wrong
        assert ready["audit"]["ok"] is False and error in ready["audit"]["error"]
        assert metric(client.get(f"{url}/metrics").text, "hybridroute_audit_failing") == 1.0
        fix_disk()
        deadline = time.monotonic() + 10.0
        while not wait_ready(client, url)["audit"]["ok"]:
            assert time.monotonic() < deadline, "the writer did not recover"
            time.sleep(0.05)
        assert metric(client.get(f"{url}/metrics").text, "hybridroute_audit_failing") == 0.0
        after, _ = timed_post(client, url, {"text": "after the fault"})
        assert after.headers["x-audit"] == "committed"
        answered += [r["request_id"] for r in after.json()["results"]]
    assert rows(app_settings.run / "audit.sqlite") == set(answered)  # every answered text was written, once


def test_a_full_database_keeps_answering_and_loses_nothing(fake_classifier: EdgeClassifier, tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")

    def fill_up() -> None:  # no page beyond the ones in use: the next insert that needs one fails
        pages = pragma(store, "PRAGMA page_count")[0]
        assert pragma(store, f"PRAGMA max_page_count = {pages}")[0] == pages

    def free_space() -> None:
        pragma(store, "PRAGMA max_page_count = 1073741823")

    try:
        run_until_the_disk_recovers(
            settings(tmp_path), store, fake_classifier, fill_up, free_space, "database or disk is full"
        )
    finally:
        store.close()


def test_a_read_only_database_keeps_answering_and_loses_nothing(
    fake_classifier: EdgeClassifier, tmp_path: Path
) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    try:
        run_until_the_disk_recovers(
            settings(tmp_path),
            store,
            fake_classifier,
            lambda: pragma(store, "PRAGMA query_only = ON"),
            lambda: pragma(store, "PRAGMA query_only = OFF"),
            "readonly database",
        )
    finally:
        store.close()


def client_port(response: httpx.Response) -> int:
    """The local port of the connection a response came on (the same port: the connection was kept)."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_feedback_while_the_database_refuses_writes_is_503_and_keeps_the_connection(
    fake_classifier: EdgeClassifier, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    hybrid = HybridClassifier(fake_classifier, AlwaysCloud(), None)
    try:
        app = create_app(settings(tmp_path), hybrid, audit=store)
        with serve_in_thread(app, graceful_shutdown_s=5) as url, httpx.Client(timeout=10.0) as client:
            wait_ready(client, url)
            answered, _ = timed_post(client, url, {"text": "hello there"})
            feedback = {"request_id": answered.json()["results"][0]["request_id"], "label": LABELS[0]}
            pragma(store, "PRAGMA query_only = ON")
            refused = client.post(f"{url}/v1/feedback", json=feedback)
            pragma(store, "PRAGMA query_only = OFF")
            stored = client.post(f"{url}/v1/feedback", json=feedback)
            ports = client_port(refused), client_port(stored)
    finally:
        store.close()
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["type"] == "audit_unavailable"
    assert "audit database refuses writes" in error["message"] and "readonly database" in error["message"]
    assert stored.status_code == 200 and ports[0] == ports[1]  # the connection was kept
    warnings = [r for r in caplog.records if "feedback" in r.getMessage() and "not stored" in r.getMessage()]
    assert warnings and all(r.levelname == "WARNING" and r.exc_info is None for r in warnings)
    assert not any("failed unexpectedly" in r.getMessage() for r in caplog.records)


class DriverError(Exception):
    """An error of a database driver the edge service has never heard of."""


class OtherDriverStore(SQLiteAuditStore):
    """A store whose driver reports a failed statement with DriverError; feedback raises ``error``."""

    database_errors = (DriverError,)

    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(path)
        self.error = error

    def add_feedback(self, request_id: str, label: str, at: float) -> bool:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (DriverError("server closed the connection unexpectedly"), 503, "audit_unavailable"),
        (sqlite3.OperationalError("disk I/O error"), 500, "internal_error"),  # not this store's driver: a bug
        (KeyError("request_id"), 500, "internal_error"),
    ],
)
def test_feedback_asks_the_store_which_errors_mean_its_database_failed(
    fake_classifier: EdgeClassifier, tmp_path: Path, error: Exception, status: int, kind: str
) -> None:
    store = OtherDriverStore(tmp_path / "audit.sqlite", error)
    try:
        app = create_app(settings(tmp_path), HybridClassifier(fake_classifier, AlwaysCloud(), None), audit=store)
        with serve_in_thread(app, graceful_shutdown_s=5) as url, httpx.Client(timeout=10.0) as client:
            wait_ready(client, url)
            answered, _ = timed_post(client, url, {"text": "hello there"})
            feedback = {"request_id": answered.json()["results"][0]["request_id"], "label": LABELS[0]}
            response = client.post(f"{url}/v1/feedback", json=feedback)
    finally:
        store.close()
    assert response.status_code == status, response.text
    assert response.json()["error"]["type"] == kind
    if status == 503:
        assert f"DriverError: {error}" in response.json()["error"]["message"]


# ---------------------------------------------------------------- the same on a real (tmpfs) disk


@contextmanager
def tmpfs(size_kb: int) -> Iterator[Path]:
    """A tiny tmpfs mounted for the test; skip where this user may not mount (not root, no CAP_SYS_ADMIN)."""
    folder = Path(f"/tmp/hybridroute-tmpfs-{uuid.uuid4().hex[:8]}")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def test_a_full_disk_keeps_answering_and_loses_nothing(fake_classifier: EdgeClassifier) -> None:
    with tmpfs(320) as disk:
        store = SQLiteAuditStore(disk / "audit.sqlite")
        filler = disk / "filler"

        def fill_up() -> None:  # take every free block, so the database cannot grow
            with contextlib.suppress(OSError), filler.open("wb", buffering=0) as handle:
                while True:
                    handle.write(b"\0" * 4096)

        try:
            run_until_the_disk_recovers(
                settings(disk), store, fake_classifier, fill_up, filler.unlink, "database or disk is full"
            )
        finally:
            store.close()
