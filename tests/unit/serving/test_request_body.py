"""The pieces of the body limits: the default limit, the settings, the headers read, the checks before validation,
and the reading itself (what is dropped, when, and what a client that goes away gets)."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect

from hybridroute.errors import ConfigError
from hybridroute.serving.cloud_app import CloudSettings
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.request_body import (
    BodyLimit,
    BodyTooLarge,
    BoundedRequest,
    declared_length,
    expects_continue,
    is_json_media,
)
from hybridroute.serving.schemas import RequestTooLarge, check_text_count, default_body_limit

EMOJI = "\N{GRINNING FACE}"  # escaped by json.dumps as a surrogate pair, \ud83d\ude00: 12 bytes


def test_the_default_limit_fits_the_largest_escaped_request_and_little_more() -> None:
    limit = default_body_limit(64, 10_000)
    largest = len(json.dumps({"texts": [EMOJI * 10_000] * 64}, indent=2).encode())  # pretty-printed
    assert limit == 7_681_280 and largest <= limit < 1.01 * largest
    assert default_body_limit(1, 1) == 1040


def test_edge_settings_derive_the_limit_unless_it_is_given(tmp_path: Path) -> None:
    assert EdgeSettings(tmp_path).body_limit == 7_681_280
    assert EdgeSettings(tmp_path, max_texts=2, max_chars=100).body_limit == default_body_limit(2, 100)
    assert EdgeSettings(tmp_path, max_body_bytes=5000).body_limit == 5000
    with pytest.raises(ConfigError, match=r"max_body_bytes must be in \[1, .*got 0"):
        EdgeSettings(tmp_path, max_body_bytes=0)


def test_cloud_settings_derive_the_limit_from_max_batch_unless_it_is_given() -> None:
    assert CloudSettings(bundle=None).body_limit == 7_681_280  # 64 texts of 10,000 characters, as on the edge
    assert CloudSettings(bundle=None, max_batch=4, max_chars=50).body_limit == default_body_limit(4, 50) == 3440
    assert CloudSettings(bundle=None, max_batch=4, max_body_bytes=5000).body_limit == 5000
    for bad in (0, -1, 2**40 + 1):
        with pytest.raises(ConfigError, match=rf"max_body_bytes must be in \[1, 1099511627776\], got {bad}"):
            CloudSettings(bundle=None, max_body_bytes=bad)


def test_a_texts_limit_names_the_text_limits_and_counts_the_texts() -> None:
    limit = BodyLimit.for_texts(5000, 4, 50)
    assert str(limit.refuse("6000 bytes")) == (
        "body is 6000 bytes; at most 5000 bytes are accepted "
        "(room for 4 texts of 50 characters each; split the batch into smaller requests)"
    )
    assert limit.check is not None
    limit.check({"texts": ["a"] * 4})
    with pytest.raises(RequestTooLarge, match="batch has 5 texts; at most 4 are accepted"):
        limit.check({"texts": ["a"] * 5})


def test_a_texts_limit_below_what_the_text_limits_need_claims_no_room_for_them() -> None:
    needed = default_body_limit(64, 10_000)
    assert "room for 64 texts" in str(BodyLimit.for_texts(needed, 64, 10_000).refuse("x"))
    assert str(BodyLimit.for_texts(needed - 1, 64, 10_000).refuse("7681280 bytes")) == (
        f"body is 7681280 bytes; at most {needed - 1} bytes are accepted "
        "(set below what 64 texts of 10000 characters need; send fewer or shorter texts)"
    )
    assert "room for" not in str(BodyLimit.for_texts(100, 64, 10_000).refuse("120 bytes"))


def test_a_refusal_says_what_was_received_and_what_is_accepted() -> None:
    error = BodyLimit(100, "room for 2 texts").refuse("120 bytes (its Content-Length)")
    assert isinstance(error, BodyTooLarge) and isinstance(error, RequestTooLarge)  # 413 payload_too_large
    assert str(error) == "body is 120 bytes (its Content-Length); at most 100 bytes are accepted (room for 2 texts)"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"content-length": "12"}, 12), ({"transfer-encoding": "chunked"}, None), ({"content-length": " 7 "}, 7)],
)
def test_declared_length(headers: dict[str, str], expected: int | None) -> None:
    assert declared_length(Headers(headers)) == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/plain", False),
        ("application/jsonx", False),
        (None, False),
    ],
)
def test_json_media_types_are_the_ones_fastapi_parses(content_type: str | None, expected: bool) -> None:
    assert is_json_media(content_type) is expected


def test_too_many_texts_are_refused_before_validation_and_nothing_else_is() -> None:
    with pytest.raises(RequestTooLarge, match="batch has 65 texts; at most 64 are accepted per request"):
        check_text_count({"texts": ["a"] * 64 + [5]}, 64)
    for body in ({"texts": ["a"] * 64}, {"texts": "abc"}, {"text": "a"}, ["a"] * 100, None, 5):
        check_text_count(body, 64)  # the model says what is wrong with these, if anything


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"expect": "100-continue"}, True), ({"expect": " 100-Continue "}, True), ({}, False), ({"expect": "x"}, False)],
)
def test_expects_continue(headers: dict[str, str], expected: bool) -> None:
    assert expects_continue(Headers(headers)) is expected


# ---------------------------------------------------------------- reading, with a fake ASGI receive

PIECE = b"a" * 65_536


def bounded_request(pieces: Iterator[bytes], limit: BodyLimit, **headers: str) -> tuple[BoundedRequest, list[int]]:
    """A request whose body arrives as ``pieces`` (a disconnect after the last if it ends with ``None``)."""
    read: list[int] = []  # how many pieces the request asked for

    async def receive() -> dict[str, Any]:
        piece = next(pieces, b"")
        read.append(1)
        if piece is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": piece, "more_body": bool(piece)}

    raw = [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw, "query_string": b""}
    return BoundedRequest(scope, receive, limit), read


def refusal(request: BoundedRequest) -> str:
    with pytest.raises(BodyTooLarge) as caught:
        asyncio.run(request.body())
    return str(caught.value)


def test_an_oversize_declared_body_is_read_and_dropped_in_constant_memory() -> None:
    n_pieces = 512  # 32 MiB in 64 KiB pieces, the same piece each time: only what the request keeps is traced
    request, read = bounded_request(iter([PIECE] * n_pieces), BodyLimit(1000), Content_Length=str(n_pieces * 65_536))
    tracemalloc.start()
    try:
        message = refusal(request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.startswith(f"body is {n_pieces * 65_536} bytes (its Content-Length); at most 1000 bytes")
    assert len(read) == n_pieces + 1  # every piece, then the end of the body
    assert peak < 1_000_000, peak  # no piece kept: a 32 MiB body in well under 1 MB


@pytest.mark.parametrize(
    "headers",
    [{"Content_Length": str(100 * 65_536), "Expect": "100-continue"}, {"Content_Length": str(64 * 2**20 + 1)}],
    ids=["expect-100-continue", "beyond-the-drain-bound"],
)
def test_an_oversize_declared_body_is_refused_without_reading_when_reading_is_not_worth_it(
    headers: dict[str, str],
) -> None:
    request, read = bounded_request(iter([PIECE] * 2000), BodyLimit(1000), **headers)
    assert refusal(request).startswith(f"body is {headers['Content_Length']} bytes (its Content-Length)")
    assert read == []  # nothing asked for: uvicorn sends no 100 Continue, and no byte of the body is read


def test_a_chunked_body_past_the_limit_is_dropped_to_its_end_within_the_drain_bound() -> None:
    request, read = bounded_request(iter([PIECE] * 10), BodyLimit(100_000, drain_bytes=1_000_000))
    assert refusal(request).startswith("body is 655360 bytes; at most 100000 bytes are accepted")
    assert len(read) == 11


def test_a_chunked_body_is_refused_once_it_passes_the_drain_bound_or_the_limit_when_expecting_continue() -> None:
    request, read = bounded_request(iter([PIECE] * 100), BodyLimit(100_000, drain_bytes=300_000))
    assert refusal(request).startswith("body is over 100000 bytes (327680 received when reading stopped)")
    assert len(read) == 5  # 5 pieces: 327,680 bytes, past the drain bound
    request, read = bounded_request(iter([PIECE] * 100), BodyLimit(100_000), Expect="100-continue")
    assert refusal(request).startswith("body is over 100000 bytes (131072 received when reading stopped)")
    assert len(read) == 2


@pytest.mark.parametrize("headers", [{"Content_Length": "9999999"}, {}], ids=["declared", "chunked"])
def test_a_client_that_goes_away_while_its_oversize_body_is_dropped_is_a_disconnect(headers: dict[str, str]) -> None:
    request, _ = bounded_request(iter([PIECE, PIECE, PIECE, None]), BodyLimit(100_000), **headers)
    with pytest.raises(ClientDisconnect):
        asyncio.run(request.body())
