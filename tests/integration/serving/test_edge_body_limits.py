"""Body size limits of the edge service over real HTTP on loopback.

A body whose Content-Length is over its route's limit is refused (413) before any of it is read when the client
waits for ``100 Continue``; a client that sends its whole body first has it read and dropped before the 413, so
the answer is not lost to a reset. A chunked body is refused once it passes the limit (read to its end first,
likewise). A large body under the limit is parsed in a worker thread, and one with far too many texts is refused
without validating them, so small requests keep being answered meanwhile. A client that goes away mid-body gets
no answer and is counted as ``client_disconnected``.
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
from hybridroute.serving import request_body
from hybridroute.serving.edge_app import create_app
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.uvicorn_runner import serve_in_thread
from support.raw_http import (
    chunk,
    connection,
    error_of,
    parse_answers,
    post_whole_body,
    receive_until_closed,
    request_head,
)

pytestmark = pytest.mark.timeout(120)

DEFAULT_LIMIT = 7_681_280  # the default classify limit: 64 texts of 10,000 characters, each escaped as \ud83d\ude00
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


def test_a_chunked_body_is_refused_once_it_passes_the_limit_when_the_client_waits_for_continue(
    tmp_path: Path, hybrid: HybridClassifier
) -> None:
    piece = b"a" * 16_384
    with running(create_app(settings(tmp_path, max_body_bytes=100_000), hybrid)) as (url, _), connection(url) as sock:
        head = request_head("/v1/classify", Transfer_Encoding="chunked", Expect="100-continue")
        sock.sendall(head + chunk(b'{"text": "'))
        for _ in range(7):  # 114,698 bytes: the server must read all of them to pass 100,000 ...
            sock.sendall(chunk(piece))
        answers = parse_answers(receive_until_closed(sock))  # ... and the last chunk never comes
    assert [a.status for a in answers] == [100, 413], answers  # 100 Continue: the server asked for the body
    message = answers[1].error()["message"]
    assert message.startswith("body is over 100000 bytes (") and "at most 100000 bytes are accepted" in message
    assert answers[1].headers["connection"] == "close"


def test_a_chunked_body_past_the_limit_is_read_to_its_end_then_refused(
    tmp_path: Path, hybrid: HybridClassifier
) -> None:
    pieces = [b'{"text": "'] + [b"a" * 16_384] * 7  # 114,698 bytes
    with running(create_app(settings(tmp_path, max_body_bytes=100_000), hybrid)) as (url, _), connection(url) as sock:
        sock.sendall(request_head("/v1/classify", Transfer_Encoding="chunked") + b"".join(map(chunk, pieces)))
        early = receive_until_closed(sock, wait_s=0.5)  # past the limit, but the body goes on: read, not answered
        sock.sendall(chunk(b'"}') + b"0\r\n\r\n")
        answers = parse_answers(receive_until_closed(sock))
    assert early == b""
    assert [a.status for a in answers] == [413], answers
    message = answers[0].error()["message"]
    assert message.startswith("body is 114700 bytes; at most 100000 bytes are accepted (")
    assert answers[0].headers["connection"] == "close"


def test_max_body_bytes_sets_the_classify_limit(tmp_path: Path, hybrid: HybridClassifier) -> None:
    body = json.dumps({"texts": ["a" * 40] * 20}).encode()  # 901 bytes, every text within the text limits
    with running(create_app(settings(tmp_path, max_body_bytes=len(body) - 1), hybrid)) as (url, client):
        refused = client.post(f"{url}/v1/classify", content=body, headers=JSON)
    with running(create_app(settings(tmp_path, max_body_bytes=len(body)), hybrid)) as (url, client):
        accepted = client.post(f"{url}/v1/classify", content=body, headers=JSON)
    # Below what 64 texts of 10,000 characters need, the 413 does not claim room for them.
    assert refused.status_code == 413 and error_of(refused)["message"] == (
        f"body is {len(body)} bytes (its Content-Length); at most {len(body) - 1} bytes are accepted "
        "(set below what 64 texts of 10000 characters need; send fewer or shorter texts)"
    )
    assert accepted.status_code == 200 and len(accepted.json()["results"]) == 20


def test_the_default_limit_takes_the_largest_request_the_text_limits_accept(
    tmp_path: Path, hybrid: HybridClassifier
) -> None:
    # requests' json= and json.dumps escape every non-ASCII character; an emoji as a surrogate pair, 12 bytes.
    body = json.dumps({"texts": ["\N{GRINNING FACE}" * 10_000] * 64}).encode()
    assert DEFAULT_LIMIT - 2000 < len(body) <= DEFAULT_LIMIT
    with running(create_app(settings(tmp_path), hybrid)) as (url, client):
        response = client.post(f"{url}/v1/classify", content=body, headers=JSON)
    assert response.status_code == 200 and len(response.json()["results"]) == 64


# ---------------------------------------------------------------- clients that send the whole body before reading

OVERSIZE = json.dumps({"texts": ["hi there"] * 750_000}).encode()  # 9 MB: over every limit, under the drain bound


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/feedback"])
def test_a_client_that_sends_its_whole_oversize_body_first_gets_the_413(
    tmp_path: Path, hybrid: HybridClassifier, path: str
) -> None:
    # Python's http.client and urllib send the whole body, then read (no Expect: 100-continue). A server that
    # closes while the body still arrives makes the kernel reset the connection, and the 413 is lost (19 times
    # in 20 here before the body was read and dropped first).
    with running(create_app(settings(tmp_path), hybrid)) as (url, client):
        outcomes = Counter(post_whole_body(url, path, OVERSIZE) for _ in range(20))
        metrics = client.get(f"{url}/metrics").text
    assert outcomes == {(413, "payload_too_large"): 20}, outcomes
    assert 'hybridroute_errors_total{type="payload_too_large"} 20.0' in metrics


def test_an_oversize_body_sent_without_expect_is_read_and_dropped_before_the_413(
    tmp_path: Path, hybrid: HybridClassifier
) -> None:
    body = b'{"text": "' + b"a" * 200_000 + b'"}'
    with running(create_app(settings(tmp_path, max_body_bytes=100_000), hybrid)) as (url, _), connection(url) as sock:
        sock.sendall(request_head("/v1/classify", Content_Length=str(len(body))))
        early = receive_until_closed(sock, wait_s=0.5)  # no answer yet: the server waits for the body, to drop it
        sock.sendall(body)
        answers = parse_answers(receive_until_closed(sock))
    assert early == b""
    assert [a.status for a in answers] == [413], answers
    assert (
        answers[0]
        .error()["message"]
        .startswith(f"body is {len(body)} bytes (its Content-Length); at most 100000 bytes are accepted (")
    )
    assert answers[0].headers["connection"] == "close"


def test_a_body_declared_beyond_the_drain_bound_is_refused_at_once(tmp_path: Path, hybrid: HybridClassifier) -> None:
    declared = request_body.DRAIN_BYTES + 1  # reading that much only to drop it is not worth the 413: refused now
    with running(create_app(settings(tmp_path), hybrid)) as (url, _), connection(url) as sock:
        sock.sendall(request_head("/v1/classify", Content_Length=str(declared)))
        answers = parse_answers(receive_until_closed(sock))
    assert [a.status for a in answers] == [413], answers
    assert answers[0].error()["message"].startswith(f"body is {declared} bytes (its Content-Length)")


# ---------------------------------------------------------------- clients that go away mid-body


def errors_counted(client: httpx.Client, url: str) -> dict[str, float]:
    lines = client.get(f"{url}/metrics").text.splitlines()
    prefix = 'hybridroute_errors_total{type="'
    return {
        line.removeprefix(prefix).split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(prefix)
    }


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/feedback"])
def test_a_client_that_goes_away_mid_body_gets_no_answer_and_is_counted_as_disconnected(
    tmp_path: Path, hybrid: HybridClassifier, path: str
) -> None:
    with running(create_app(settings(tmp_path), hybrid)) as (url, client):
        with connection(url) as sock:  # promises 1000 bytes, sends 100, goes away
            sock.sendall(request_head(path, Content_Length="1000") + b'{"text": "' + b"a" * 90)
        with connection(url) as sock:  # chunked, gone after the first chunk
            sock.sendall(request_head(path, Transfer_Encoding="chunked") + chunk(b'{"tex'))
        deadline = time.monotonic() + 5.0
        while errors_counted(client, url).get("client_disconnected", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        counted = errors_counted(client, url)
    assert counted == {"client_disconnected": 2.0}, counted  # not invalid_json: the body was fine, only unfinished


# ---------------------------------------------------------------- the document


def test_the_413_of_feedback_and_reload_names_only_the_byte_limit(tmp_path: Path, hybrid: HybridClassifier) -> None:
    with running(create_app(settings(tmp_path, admin_token="t" * 16), hybrid)) as (url, client):
        paths = client.get(f"{url}/openapi.json").json()["paths"]
    described = {path: doc["post"]["responses"]["413"]["description"] for path, doc in paths.items() if "post" in doc}
    assert described["/v1/feedback"] == described["/admin/reload"] == "The body is over the route's byte limit"
    assert described["/v1/classify"] == (
        "Too many texts, a text with too many characters, or a body over the byte limit"
    )


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
    # Not counted (not a list of texts): the message shows the start of what came and its size, not all of it.
    "a list where the text goes": (
        json.dumps({"text": ["hi there"] * 300_000}).encode(),
        "application/json",
        422,
        "validation_error",
        "text: Input should be a valid string "
        "(received ['hi there', 'hi there', 'hi there', 'hi there', 'hi there'… (300000 items))",
    ),
    "an object where the texts go": (
        json.dumps({"texts": {str(i): "hi there" for i in range(150_000)}}).encode(),
        "application/json",
        422,
        "validation_error",
        "texts: Input should be a valid list "
        "(received {'0': 'hi there', '1': 'hi there', '2': 'hi there', '3': 'h… (150000 keys))",
    ),
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
    over = json.dumps({"texts": ["hi there"] * 700_000}).encode()  # 8.4 MB: over the limit, read, dropped, refused
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
