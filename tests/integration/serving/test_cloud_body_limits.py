"""Body size limits of the cloud app over real HTTP on loopback.

A classify body whose Content-Length is over ``CloudSettings.body_limit`` is refused (413) before any of it is
read when the client waits for ``100 Continue``, and read and dropped first when the client sends it whole (so
the 413 is not lost to a reset); a chunked one once it passes the limit; one exactly at the limit is answered.
A body with more texts than ``max_batch`` is refused before its texts are validated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_app import CloudSettings, create_app
from hybridroute.serving.schemas import default_body_limit
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

MAX_BATCH, MAX_CHARS = 4, 50
DERIVED_LIMIT = default_body_limit(MAX_BATCH, MAX_CHARS)  # 3440 bytes
ACCEPTED = f"room for {MAX_BATCH} texts of {MAX_CHARS} characters each; split the batch into smaller requests"
JSON = {"content-type": "application/json"}
GOOD = {"texts": ["fine", "where is my order please"]}


def settings(**changes: Any) -> CloudSettings:
    return CloudSettings(bundle=None, max_batch=MAX_BATCH, max_chars=MAX_CHARS, **changes)


def classify(client: httpx.Client, url: str, body: bytes, chunked: bool = False) -> httpx.Response:
    """POST ``body`` with its Content-Length, or ``chunked`` (an iterator: httpx sends no length)."""
    content: bytes | Iterator[bytes] = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
    return client.post(f"{url}/v1/classify", content=content, headers=JSON)


def test_an_oversize_content_length_is_413_before_the_body_is_read(
    http: httpx.Client, fake_classifier: EdgeClassifier
) -> None:
    with serve_in_thread(create_app(settings(), fake_classifier)) as url, connection(url) as sock:
        # Expect: 100-continue: uvicorn says "100 Continue" only once the app asks for the body, so a 413 with no
        # 100 before it shows that nothing asked; and this client sends no body at all, so none could be read.
        sock.sendall(request_head("/v1/classify", Content_Length=str(DERIVED_LIMIT + 1), Expect="100-continue"))
        answers = parse_answers(receive_until_closed(sock))
        after = http.post(f"{url}/v1/classify", json=GOOD)
    assert [a.status for a in answers] == [413], answers
    (answer,) = answers
    assert answer.error() == {
        "type": "payload_too_large",
        "message": f"body is {DERIVED_LIMIT + 1} bytes (its Content-Length); at most {DERIVED_LIMIT} bytes "
        f"are accepted ({ACCEPTED})",
    }
    assert answer.headers["connection"] == "close"  # the rest of the body is not read to keep the connection
    assert after.status_code == 200


def test_a_chunked_body_is_refused_once_it_passes_the_limit(fake_classifier: EdgeClassifier) -> None:
    app = create_app(settings(max_body_bytes=10_000), fake_classifier)
    with serve_in_thread(app) as url, connection(url) as sock:
        head = request_head("/v1/classify", Transfer_Encoding="chunked", Expect="100-continue")
        sock.sendall(head + chunk(b'{"texts": ["'))
        for _ in range(3):  # 12,299 bytes: the server must read all of them to pass 10,000 ...
            sock.sendall(chunk(b"a" * 4096))
        answers = parse_answers(receive_until_closed(sock))  # ... and the last chunk never comes
    assert [a.status for a in answers] == [100, 413], answers  # 100 Continue: the server asked for the body
    assert answers[1].error()["type"] == "payload_too_large"
    message = answers[1].error()["message"]
    assert message.startswith("body is over 10000 bytes (") and "at most 10000 bytes are accepted" in message
    assert answers[1].headers["connection"] == "close"


def test_a_client_that_sends_its_whole_oversize_body_first_gets_the_413(fake_classifier: EdgeClassifier) -> None:
    body = json.dumps({"texts": ["hi there"] * 750_000}).encode()  # 9 MB: a reset lost the 413 19 times in 20
    with serve_in_thread(create_app(settings(), fake_classifier)) as url:
        outcomes = [post_whole_body(url, "/v1/classify", body) for _ in range(20)]
        chunked = [post_whole_body(url, "/v1/classify", body, Transfer_Encoding="chunked") for _ in range(5)]
    assert outcomes == [(413, "payload_too_large")] * 20, outcomes
    assert chunked == [(413, "payload_too_large")] * 5, chunked


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_exactly_at_the_limit_is_answered_and_one_byte_more_is_not(
    http: httpx.Client, fake_classifier: EdgeClassifier, chunked: bool
) -> None:
    body = json.dumps({"texts": ["a" * 40] * 3}).encode()  # 144 bytes, within the text limits
    with serve_in_thread(create_app(settings(max_body_bytes=len(body)), fake_classifier)) as url:
        accepted = classify(http, url, body, chunked)
    with serve_in_thread(create_app(settings(max_body_bytes=len(body) - 1), fake_classifier)) as url:
        refused = classify(http, url, body, chunked)
    assert accepted.status_code == 200, accepted.text
    assert len(accepted.json()["predictions"]) == 3
    assert refused.status_code == 413 and error_of(refused)["type"] == "payload_too_large"
    # Below what the text limits need, the 413 does not claim room for MAX_BATCH texts of MAX_CHARS characters.
    assert error_of(refused)["message"].endswith(
        f"at most {len(body) - 1} bytes are accepted (set below what {MAX_BATCH} texts of {MAX_CHARS} characters "
        "need; send fewer or shorter texts)"
    )


def test_the_derived_limit_takes_the_largest_request_the_text_limits_accept(
    http: httpx.Client, fake_classifier: EdgeClassifier
) -> None:
    largest = {"texts": ["\N{GRINNING FACE}" * MAX_CHARS] * MAX_BATCH}
    body = json.dumps(largest, indent=2).encode()  # ensure_ascii: every emoji as \ud83d\ude00, pretty-printed
    assert DERIVED_LIMIT - 1100 < len(body) <= DERIVED_LIMIT
    with serve_in_thread(create_app(settings(), fake_classifier)) as url:
        response = classify(http, url, body)
    assert response.status_code == 200 and len(response.json()["predictions"]) == MAX_BATCH


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param(["ok"] * MAX_BATCH + [7], id="a-text-not-a-string"),  # validation would answer 422
        pytest.param(["ok"] * 20_000 + [None], id="large-parsed-off-the-loop"),  # 140 KB: over 64 KiB
    ],
)
def test_too_many_texts_are_413_before_the_texts_are_validated(
    http: httpx.Client, fake_classifier: EdgeClassifier, texts: list[Any]
) -> None:
    app = create_app(settings(max_body_bytes=1_000_000), fake_classifier)
    with serve_in_thread(app) as url:
        response = http.post(f"{url}/v1/classify", json={"texts": texts})
        after = http.post(f"{url}/v1/classify", json=GOOD)
    assert response.status_code == 413, response.text[:300]
    assert error_of(response) == {
        "type": "payload_too_large",
        "message": f"batch has {len(texts)} texts; at most {MAX_BATCH} are accepted per request "
        "(split the batch into smaller requests)",
    }
    assert after.status_code == 200


def test_the_byte_limit_is_documented_as_a_413(http: httpx.Client, fake_cloud_url: str) -> None:
    spec = http.get(f"{fake_cloud_url}/openapi.json").json()
    refused = spec["paths"]["/v1/classify"]["post"]["responses"]["413"]
    assert "a body over the byte limit" in refused["description"]
    assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
