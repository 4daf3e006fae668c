"""CloudClient against real servers on loopback that misbehave in every way we could think of."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_client import (
    BreakerState,
    CircuitBreaker,
    ClientConfig,
    CloudBackend,
    CloudClient,
    CloudResult,
    InProcessCloud,
    thread_safe_client,
)
from hybridroute.serving.uvicorn_runner import serve_in_thread

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["where is my refund", "thanks"]
ClientFor = Callable[..., CloudClient]  # client_for(mode, expected_labels=None, **config)
FAST = {"timeout_s": 0.2, "retries": 1, "backoff_s": 0.01, "budget_s": 1.0}


# ---------------------------------------------------------------- a cloud that misbehaves on request


class Behaviour:
    """What the misbehaving cloud does: hit counts per mode and a switch for the 'toggle' mode."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.fail = True


def good_body(n: int, labels: list[str] = LABELS) -> dict[str, Any]:
    probabilities = dict(zip(labels, [0.7, 0.2, 0.1], strict=True))
    prediction = {"label": labels[0], "confidence": 0.7, "probabilities": probabilities}
    return {"model_version": "fake-cloud-1", "labels": labels, "predictions": [prediction] * n}


def answer(mode: str, n: int, behaviour: Behaviour) -> Response:
    if mode == "toggle":
        mode = "error500" if behaviour.fail else "ok"
    if mode == "flaky":
        mode = "error500" if behaviour.hits["flaky"] == 1 else "ok"
    bodies: dict[str, Any] = {
        "ok": good_body(n),
        "wrong_shape": {"predictions": "none"},
        "wrong_count": good_body(n - 1),
        "unknown_label": good_body(n)
        | {"predictions": [{"label": "angry", "confidence": 0.9, "probabilities": {}}] * n},
        "other_labels": good_body(n, ["bad", "meh", "good"]),
    }
    if mode in bodies:
        return JSONResponse(bodies[mode])
    if mode == "nan_confidence":
        return Response(json.dumps(good_body(n)).replace("0.7,", "NaN,", 1), media_type="application/json")
    if mode == "not_json":
        return Response("<html>hello</html>", media_type="text/html")
    if mode == "bad_gzip":  # says gzip, is not: httpx raises DecodingError while reading the body
        return Response(b"this is not gzip", media_type="application/json", headers={"Content-Encoding": "gzip"})
    if mode == "error500":
        error = {"type": "inference_error", "message": "model fell over"}
        return JSONResponse({"error": error}, status_code=500)
    if mode == "rejects":
        return JSONResponse({"error": {"type": "validation_error", "message": "no"}}, status_code=422)
    raise AssertionError(f"unknown mode {mode}")


def misbehaving_app(behaviour: Behaviour) -> Starlette:
    async def classify(request: Request) -> Response:
        mode = request.path_params["mode"]
        behaviour.hits[mode] += 1
        texts = (await request.json())["texts"]
        if mode == "slow":
            await asyncio.sleep(1.0)
            mode = "ok"
        if mode == "reloading":  # a new model version for every request
            return JSONResponse(good_body(len(texts)) | {"model_version": f"v{behaviour.hits[mode]}"})
        return answer(mode, len(texts), behaviour)

    return Starlette(routes=[Route("/{mode}/v1/classify", classify, methods=["POST"])])


@pytest.fixture(scope="module")
def cloud() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    with serve_in_thread(misbehaving_app(behaviour)) as url:
        yield url, behaviour


@pytest.fixture
def behaviour(cloud: tuple[str, Behaviour]) -> Behaviour:
    cloud[1].hits.clear()
    cloud[1].fail = True
    return cloud[1]


@pytest.fixture
def client_for(cloud: tuple[str, Behaviour], http: httpx.Client) -> Callable[..., CloudClient]:
    """Build clients for one misbehaviour; they share one connection pool (building a pool is slow)."""

    def build(mode: str, expected_labels: list[str] | None = None, **config: Any) -> CloudClient:
        config = FAST | config
        return CloudClient(
            ClientConfig(f"{cloud[0]}/{mode}", **config), expected_labels=expected_labels, http_client=http
        )

    return build


def timed(client: CloudClient, texts: list[str] = TEXTS) -> tuple[CloudResult, float]:
    started = time.perf_counter()
    result = client.classify(texts)
    return result, time.perf_counter() - started


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- happy paths


def test_a_good_answer(client_for: ClientFor, behaviour: Behaviour) -> None:
    with client_for("ok") as client:
        result, _ = timed(client)
    assert result.ok and result.error is None and result.attempts == 1
    assert result.model_version == "fake-cloud-1"
    assert [p.label for p in result.predictions or []] == ["negative", "negative"]
    assert result.latency_ms > 0
    assert behaviour.hits["ok"] == 1


def test_the_real_cloud_app_agrees_with_the_model_in_process(
    fake_cloud_url: str, fake_classifier: EdgeClassifier
) -> None:
    texts = ["awful", "fine thanks", "please tell me where my parcel is now"]
    with CloudClient(ClientConfig(fake_cloud_url), expected_labels=LABELS) as client:
        backends: list[CloudBackend] = [client, InProcessCloud(fake_classifier)]
        remote, local = (backend.classify(texts) for backend in backends)
    assert remote.ok and local.ok
    assert remote.model_version == local.model_version == "unversioned"
    assert remote.predictions is not None and local.predictions is not None
    for r, expected in zip(remote.predictions, local.predictions, strict=True):
        assert r.label == expected.label
        assert r.probabilities == pytest.approx(expected.probabilities, abs=1e-9)


def test_the_real_cloud_app_rejects_are_not_retried(fake_cloud_url: str, http: httpx.Client) -> None:
    with CloudClient(ClientConfig(fake_cloud_url, retries=3, breaker_failures=1), http_client=http) as client:
        blank = client.classify(["ok", " "])
        assert client.breaker.state is BreakerState.CLOSED  # the service is fine; our requests were not
    assert (blank.error, blank.attempts) == ("http_422", 1)
    assert blank.ran == (False, False) and not blank.model_ran(0)  # refused unread: the model did not run


def test_a_batch_refused_as_too_large_goes_again_text_by_text(fake_cloud_url: str, http: httpx.Client) -> None:
    with CloudClient(ClientConfig(fake_cloud_url, retries=3), http_client=http) as client:
        too_many = client.classify(["a"] * 5)  # the app accepts 4 per request
        one_too_long = client.classify(["ok", "x" * 60, "fine"])  # the app accepts 50 characters
    assert too_many.ok and too_many.attempts == 6, too_many.detail  # the refused request, then one per text
    assert (one_too_long.ok, one_too_long.error, one_too_long.attempts) == (False, "http_413", 4)
    assert [p is not None for p in one_too_long.partial] == [True, False, True]
    assert one_too_long.ran == (True, False, True)  # only the answered texts ran the model


def test_texts_over_max_chars_are_cut_before_sending(fake_cloud_url: str, http: httpx.Client) -> None:
    with CloudClient(ClientConfig(fake_cloud_url, max_chars=50), http_client=http) as client:
        result = client.classify(["ok", "x" * 60])
    assert result.ok and result.attempts == 1, result.detail


def test_a_call_larger_than_the_service_takes_goes_as_several_requests(
    fake_cloud_url: str, fake_classifier: EdgeClassifier, http: httpx.Client
) -> None:
    texts = [f"where is parcel {i}, it is late" if i % 2 else f"thanks {i}" for i in range(10)]
    with CloudClient(ClientConfig(fake_cloud_url, max_texts=4), http_client=http) as client:
        remote = client.classify(texts)  # the app accepts 4 per request: 4 + 4 + 2
    local = InProcessCloud(fake_classifier).classify(texts)
    assert remote.ok and remote.attempts == 3, remote.detail
    assert [p.label for p in remote.predictions or []] == [p.label for p in local.predictions or []]


def test_a_failing_chunk_fails_the_call_without_sending_the_rest(client_for: ClientFor, behaviour: Behaviour) -> None:
    with client_for("ok", max_texts=3) as client:
        result = client.classify(["a"] * 7)
    assert result.ok and len(result.predictions or []) == 7 and behaviour.hits["ok"] == 3
    with client_for("error500", max_texts=2) as client:
        result = client.classify(["a"] * 5)
    assert (result.error, result.attempts) == ("http_500", 2)
    assert behaviour.hits["error500"] == 2  # the first chunk and its one retry; the other chunks never went


def test_a_split_call_across_a_reload_names_each_answers_version(client_for: ClientFor, behaviour: Behaviour) -> None:
    with client_for("reloading", max_texts=2) as client:
        split = client.classify(["a"] * 5)
        whole = client.classify(["a"] * 2)
    assert split.ok and split.attempts == 3 and split.model_version == "v3"
    assert [split.version_of(k) for k in range(5)] == ["v1", "v1", "v2", "v2", "v3"]
    assert whole.versions == () and [whole.version_of(k) for k in range(2)] == ["v4", "v4"]


def test_an_empty_batch_needs_no_network(free_port: int) -> None:
    with CloudClient(ClientConfig(f"http://127.0.0.1:{free_port}")) as client:
        assert client.classify([]) == CloudResult(True, [], None, None, 0, 0.0)


def test_a_retry_rides_out_one_failure(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, _ = timed(client_for("flaky"))
    assert result.ok and result.attempts == 2
    assert behaviour.hits["flaky"] == 2


def test_many_threads_can_share_one_client(client_for: ClientFor, behaviour: Behaviour) -> None:
    client = client_for("ok", timeout_s=2.0, budget_s=3.0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: client.classify(TEXTS), range(12)))
    client.close()
    assert all(r.ok for r in results)
    assert behaviour.hits["ok"] == 12


def connections_opened(client: httpx.Client, threads: int, rounds: int) -> int:
    """Connections a keep-alive HTTP/1.1 server accepts while ``threads`` threads share ``client`` for ``rounds``."""
    opened: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            opened.append(1)
            super().setup()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(0.02)  # every thread's request is in flight at once
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog of 5 resets connections when 30 threads connect at once
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with client, ThreadPoolExecutor(threads) as pool:
            for _ in range(rounds):
                assert [r.status_code for r in pool.map(lambda _: client.post(url, json={}), range(threads))] == [
                    200
                ] * threads
    finally:
        server.shutdown()
        server.server_close()
    return len(opened)


def test_a_shared_client_never_closes_a_connection_to_make_room() -> None:
    # httpcore 1.0's pool closes "surplus" idle connections above 20 even when one was just handed to a
    # waiting request, which then fails with "Bad file descriptor" (encode/httpcore#1110); a default
    # client here opens about 40 connections. The shared client keeps at most one per thread, round after
    # round (fewer when a loaded machine lets a thread finish before another starts and reuse its connection).
    assert connections_opened(thread_safe_client(5.0), threads=30, rounds=3) <= 30


def test_in_process_cloud_reports_model_failures(fake_classifier: EdgeClassifier) -> None:
    result = InProcessCloud(fake_classifier).classify(["explode"])
    assert not result.ok and result.error == "inference_error"
    assert "fake session exploded" in result.detail


# ---------------------------------------------------------------- network faults


def test_cloud_down_is_a_connect_error(free_port: int, http: httpx.Client) -> None:
    client = CloudClient(ClientConfig(f"http://127.0.0.1:{free_port}", **FAST), http_client=http)
    result, elapsed = timed(client)
    assert not result.ok and result.predictions is None
    assert (result.error, result.attempts) == ("connect_error", 2)
    assert elapsed < 0.5


def test_a_slow_cloud_times_out_within_the_budget(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, elapsed = timed(client_for("slow"))
    assert (result.error, result.attempts) == ("timeout", 2)
    assert 0.4 <= elapsed <= FAST["budget_s"] + 0.2
    assert result.latency_ms == pytest.approx(elapsed * 1000, abs=50)


def test_the_budget_stops_retries(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, elapsed = timed(client_for("slow", retries=10, budget_s=0.5))
    assert result.error == "budget_exhausted"
    assert "timeout" in result.detail
    assert 2 <= result.attempts <= 4
    assert elapsed <= 0.5 + 0.2


def test_a_timeout_longer_than_the_budget_is_cut_to_the_budget(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, elapsed = timed(client_for("slow", timeout_s=5.0, retries=0, budget_s=0.3))
    assert (result.error, result.attempts) == ("timeout", 1)
    assert elapsed <= 0.3 + 0.2


def test_a_connection_reset_on_accept_is_retried_then_reported(
    http: httpx.Client, resetting_server: Callable[..., Any]
) -> None:
    with resetting_server() as url:
        result, elapsed = timed(CloudClient(ClientConfig(url, **FAST), http_client=http))
    # httpx reports a reset that lands while it sets the connection up as a connect error
    assert result.error in ("connect_error", "connection_error")
    assert result.attempts == 2 and elapsed < 0.5


def test_a_connection_reset_after_the_request_is_retried_then_reported(
    http: httpx.Client, resetting_server: Callable[..., Any]
) -> None:
    with resetting_server(read_first=True) as url:
        result, elapsed = timed(CloudClient(ClientConfig(url, **FAST), http_client=http))
    assert (result.error, result.attempts) == ("connection_error", 2)
    assert elapsed < 0.5


# ---------------------------------------------------------------- bad answers


def test_http_500_is_retried_then_reported(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, _ = timed(client_for("error500", retries=2))
    assert (result.error, result.attempts) == ("http_500", 3)
    assert behaviour.hits["error500"] == 3
    assert "model fell over" in result.detail


def test_http_4xx_is_not_retried(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, _ = timed(client_for("rejects", retries=3))
    assert (result.error, result.attempts) == ("http_422", 1)
    assert behaviour.hits["rejects"] == 1


@pytest.mark.parametrize(
    ("mode", "fragment"),
    [
        ("not_json", "Invalid JSON"),
        ("wrong_shape", "model_version"),
        ("wrong_count", "1 predictions for 2 texts"),
        ("unknown_label", "'angry' is not in labels"),
        ("nan_confidence", "finite number"),
        ("bad_gzip", "DecodingError"),
    ],
)
def test_malformed_answers_are_refused(client_for: ClientFor, behaviour: Behaviour, mode: str, fragment: str) -> None:
    result, _ = timed(client_for(mode))
    assert not result.ok and result.predictions is None
    assert (result.error, result.attempts) == ("malformed_response", 2)
    assert fragment in result.detail
    assert behaviour.hits[mode] == 2


def test_an_undecodable_body_counts_against_the_breaker(client_for: ClientFor, behaviour: Behaviour) -> None:
    client = client_for("bad_gzip", retries=0, breaker_failures=2)
    results = [client.classify(TEXTS) for _ in range(3)]
    assert [r.error for r in results] == ["malformed_response", "malformed_response", "circuit_open"]
    assert "unreadable response" in results[0].detail
    assert client.breaker.state is BreakerState.OPEN and behaviour.hits["bad_gzip"] == 2


def test_a_cloud_with_other_labels_is_refused(client_for: ClientFor, behaviour: Behaviour) -> None:
    result, _ = timed(client_for("other_labels", expected_labels=LABELS))
    assert (result.error, result.attempts) == ("label_mismatch", 1)
    assert timed(client_for("other_labels"))[0].ok  # without expectations, any label set goes


# ---------------------------------------------------------------- circuit breaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_and_then_fails_fast_without_the_network(client_for: ClientFor, behaviour: Behaviour) -> None:
    client = client_for("toggle", retries=0, breaker_failures=2)
    assert [client.classify(TEXTS).error for _ in range(2)] == ["http_500", "http_500"]
    assert client.breaker.state is BreakerState.OPEN
    refused = [timed(client) for _ in range(5)]
    assert all((r.error, r.attempts) == ("circuit_open", 0) for r, _ in refused)
    assert statistics.median(elapsed for _, elapsed in refused) < 0.005
    assert behaviour.hits["toggle"] == 2  # the refused calls never reached the server


def test_the_breaker_half_opens_after_the_reset_time(
    cloud: tuple[str, Behaviour], behaviour: Behaviour, http: httpx.Client
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=2, reset_s=10.0, clock=clock)
    client = CloudClient(
        ClientConfig(f"{cloud[0]}/toggle", **(FAST | {"retries": 0})), breaker=breaker, http_client=http
    )
    client.classify(TEXTS)
    client.classify(TEXTS)
    assert client.classify(TEXTS).error == "circuit_open"

    clock.now += 10.0  # half-open: one trial, which fails and reopens the circuit
    assert client.classify(TEXTS).error == "http_500"
    assert client.classify(TEXTS).error == "circuit_open"
    assert behaviour.hits["toggle"] == 3

    clock.now += 10.0  # the cloud has recovered: the trial succeeds and closes the circuit
    behaviour.fail = False
    assert client.classify(TEXTS).ok
    assert breaker.state is BreakerState.CLOSED
    assert client.classify(TEXTS).ok
    assert behaviour.hits["toggle"] == 5
    client.close()
