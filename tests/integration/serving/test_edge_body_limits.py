"""Body size limits of the edge service over real HTTP on loopback.

A body whose Content-Length is over its route's limit is refused (413) before any of it is read; a chunked
one once it passes the limit. A large body under the limit is parsed in a worker thread, and one with far
too many texts is refused without validating them, so small requests keep being answered meanwhile.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import AlwaysEdge
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import serve_in_thread
from support.raw_http import chunk, connection, error_of, parse_answers, receive_until_closed, request_head

pytestmark = pytest.mark.timeout(120)

DEFAULT_LIMIT = 3_841_280  # the default classify limit: 64 texts of 10,000 characters, each escaped as \uXXXX
SMALL_LIMIT = 64 * 1024  # feedback and reload bodies
JSON = {"content-type": "application/json"}


@pytest.fixture
def hybrid(fake_classifier: EdgeClassifier) -> HybridClassifier:
    return HybridClassifier(fake_classifier, AlwaysEdge(), None)


def settings(tmp_path: Path, **changes: Any) -> EdgeSettings:
    return EdgeSettings(tmp_path, hash_salt="test-salt", monitor_reference=False, **changes)


@contextmanager
def running(app: Any) -> Iterator[tuple[str, httpx.Client]]:
    with serve_in_thread(app, graceful_shutdown_s=5) as url, httpx.Client(timeout=30.0) as client:
        deadline = time.monotonic() + 10.0
        while client.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready"
            time.sleep(0.01)
        yield url, client


# ---------------------------------------------------------------- the limit, before and while reading


@pytest.mark.parametrize(
    ("path", "limit"), [("/v1/classify", DEFAULT_LIMIT), ("/v1/feedback", SMALL_LIMIT), ("/admin/reload", SMALL_LIMIT)]
)
def test_an_oversize_content_length_is_413_before_the_body_is_read(
    tmp_path: Path, hybrid: HybridClassifier, path: str, limit: int
) -> None:
    app = create_app(settings(tmp_path, admin_token="t" * 16), hybrid)
    with running(app) as (url, client), connection(url) as sock:
        # Expect: 100-continue: uvicorn says "100 Continue" only once the app asks for the body, so a 413 with no
        # 100 before it shows that nothing asked; and this client sends no body at all, so none could be read.
        sock.sendall(request_head(path, Content_Length=str(limit + 1), Expect="100-continue"))
        answers = parse_answers(receive_until_closed(sock))
        after = client.post(f"{url}/v1/classify", json={"text": "still here"})
        metrics = client.get(f"{url}/metrics").text
    assert [a.status for a in answers] == [413], answers
    (answer,) = answers
    assert answer.error()["type"] == "payload_too_large"
    assert answer.error()["message"].startswith(
        f"body is {limit + 1} bytes (its Content-Length); at most {limit} bytes are accepted ("
    )
    assert answer.headers["connection"] == "close"  # the rest of the body is not read to keep the connection
    assert after.status_code == 200
    assert 'hybridroute_errors_total{type="payload_too_large"} 1.0' in metrics


def test_a_chunked_body_is_refused_once_it_passes_the_limit(tmp_path: Path, hybrid: HybridClassifier) -> None:
    piece = b"a" * 16_384
    with running(create_app(settings(tmp_path, max_body_bytes=100_000), hybrid)) as (url, _), connection(url) as sock:
        sock.sendall(request_head("/v1/classify", Transfer_Encoding="chunked") + chunk(b'{"text": "'))
        for _ in range(7):  # 114,698 bytes: the server must read all of them to pass 100,000 ...
            sock.sendall(chunk(piece))
        answers = parse_answers(receive_until_closed(sock))  # ... and the last chunk never comes
    assert [a.status for a in answers] == [413], answers
    message = answers[0].error()["message"]
    assert message.startswith("body is over 100000 bytes (") and "at most 100000 bytes are accepted" in message


def test_max_body_bytes_sets_the_classify_limit(tmp_path: Path, hybrid: HybridClassifier) -> None:
    body = json.dumps({"texts": ["a" * 40] * 20}).encode()  # 901 bytes, every text within the text limits
    with running(create_app(settings(tmp_path, max_body_bytes=len(body) - 1), hybrid)) as (url, client):
        refused = client.post(f"{url}/v1/classify", content=body, headers=JSON)
    with running(create_app(settings(tmp_path, max_body_bytes=len(body)), hybrid)) as (url, client):
        accepted = client.post(f"{url}/v1/classify", content=body, headers=JSON)
    assert refused.status_code == 413 and f"body is {len(body)} bytes" in error_of(refused)["message"]
    assert accepted.status_code == 200 and len(accepted.json()["results"]) == 20


def test_the_default_limit_takes_the_largest_request_the_text_limits_accept(
    tmp_path: Path, hybrid: HybridClassifier
) -> None:
    body = json.dumps({"texts": ["é" * 10_000] * 64}).encode()  # ensure_ascii: every character as \u00e9
    assert DEFAULT_LIMIT - 2000 < len(body) <= DEFAULT_LIMIT
    with running(create_app(settings(tmp_path), hybrid)) as (url, client):
        response = client.post(f"{url}/v1/classify", content=body, headers=JSON)
    assert response.status_code == 200 and len(response.json()["results"]) == 64


# ---------------------------------------------------------------- large bodies under the limit

# Over 64 KiB: parsed in a worker thread. Each answers as the same body did when it was parsed on the loop.
LARGE_BODIES: dict[str, tuple[bytes, str, int, str, str]] = {
    "too many texts": (
        json.dumps({"texts": ["hi there"] * 300_000}).encode(),
        "application/json",
        413,
        "payload_too_large",
        "batch has 300000 texts; at most 64 are accepted per request",
    ),
    "too many texts, one not a string": (  # counted before validation: the size is what is wrong first
        json.dumps({"texts": ["hi there"] * 10_000 + [5]}).encode(),
        "application/json",
        413,
        "payload_too_large",
        "batch has 10001 texts",
    ),
    "nested too deeply": (
        b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "application/json",
        400,
        "invalid_json",
        "nested too deeply",
    ),
    "not JSON": (b'{"text": "' + b"a" * 100_000 + b'"', "application/json", 422, "invalid_json", "not valid JSON"),
    "not declared as JSON": (
        json.dumps({"texts": ["hi there"] * 10_000}).encode(),
        "text/plain",
        422,
        "invalid_json",
        "body is not JSON",
    ),
}


@pytest.mark.parametrize("name", list(LARGE_BODIES))
def test_a_large_body_answers_as_it_would_when_parsed_on_the_loop(
    tmp_path: Path, hybrid: HybridClassifier, name: str
) -> None:
    body, content_type, status, kind, fragment = LARGE_BODIES[name]
    with running(create_app(settings(tmp_path), hybrid)) as (url, client):
        response = client.post(f"{url}/v1/classify", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text[:300]
    assert error_of(response)["type"] == kind and fragment in error_of(response)["message"]


# ---------------------------------------------------------------- small requests while large bodies arrive


def small_request_seconds(client: httpx.Client, url: str, n: int) -> list[float]:
    seconds = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(f"{url}/v1/classify", json={"text": "hi there"})
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        time.sleep(0.005)
    return seconds


@contextmanager
def sending(url: str, bodies: Sequence[bytes]) -> Iterator[Counter[Any]]:
    """A thread that posts ``bodies`` round robin to /v1/classify until the block ends; counts what came back."""
    stop = threading.Event()
    outcomes: Counter[Any] = Counter()

    def send() -> None:
        with httpx.Client(timeout=30.0) as client:
            while not stop.is_set():
                for body in bodies:
                    try:
                        outcomes[client.post(f"{url}/v1/classify", content=body, headers=JSON).status_code] += 1
                    except httpx.TransportError as exc:
                        outcomes[type(exc).__name__] += 1

    thread = threading.Thread(target=send, name="large-bodies", daemon=True)
    thread.start()
    try:
        time.sleep(0.2)  # the first body is on its way
        yield outcomes
    finally:
        stop.set()
        thread.join(timeout=30.0)


def test_small_requests_stay_fast_while_large_bodies_arrive(tmp_path: Path, hybrid: HybridClassifier) -> None:
    under = LARGE_BODIES["too many texts"][0]  # 3.6 MB, 300,000 texts: parsed, counted, refused
    over = json.dumps({"texts": ["hi there"] * 700_000}).encode()  # 8.4 MB: refused by its Content-Length
    with running(create_app(settings(tmp_path), hybrid)) as (url, client):
        small_request_seconds(client, url, 10)  # warm up
        baseline = small_request_seconds(client, url, 60)
        with sending(url, [under, over]) as outcomes:
            loaded = small_request_seconds(client, url, 60)
    before, during = statistics.median(baseline), statistics.median(loaded)
    slowest = sorted(loaded)[-6]  # the 90th percentile
    seen = f"median {1000 * before:.1f} ms alone, {1000 * during:.1f} ms (p90 {1000 * slowest:.1f} ms) meanwhile"
    assert outcomes[413] >= 4 and set(outcomes) == {413}, outcomes
    # Generous bounds: on 2 busy cores, about 15 ms (p90 50 ms) meanwhile against 5 ms alone. Before the limits,
    # the loop validated the 300,000 texts and read, parsed and validated the 8.4 MB body: about 200 ms (p90 300).
    assert during < 5 * before + 0.040, seen
    assert slowest < 10 * before + 0.100, seen
