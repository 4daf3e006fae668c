"""The pieces of the body limits: the default limit, the settings, the headers read, the checks before validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.datastructures import Headers

from hybridroute.errors import ConfigError
from hybridroute.serving.cloud_app import CloudSettings
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.request_body import BodyLimit, BodyTooLarge, declared_length, is_json_media
from hybridroute.serving.schemas import RequestTooLarge, check_text_count, default_body_limit


def test_the_default_limit_fits_the_largest_escaped_request_and_little_more() -> None:
    limit = default_body_limit(64, 10_000)
    largest = len(json.dumps({"texts": ["é" * 10_000] * 64}, indent=2).encode())  # \u00e9, pretty-printed
    assert limit == 3_841_280 and largest <= limit < 1.01 * largest
    assert default_body_limit(1, 1) == 1034


def test_edge_settings_derive_the_limit_unless_it_is_given(tmp_path: Path) -> None:
    assert EdgeSettings(tmp_path).body_limit == 3_841_280
    assert EdgeSettings(tmp_path, max_texts=2, max_chars=100).body_limit == default_body_limit(2, 100)
    assert EdgeSettings(tmp_path, max_body_bytes=5000).body_limit == 5000
    with pytest.raises(ConfigError, match=r"max_body_bytes must be in \[1, .*got 0"):
        EdgeSettings(tmp_path, max_body_bytes=0)


def test_cloud_settings_derive_the_limit_from_max_batch_unless_it_is_given() -> None:
    assert CloudSettings(bundle=None).body_limit == 3_841_280  # 64 texts of 10,000 characters, as on the edge
    assert CloudSettings(bundle=None, max_batch=4, max_chars=50).body_limit == default_body_limit(4, 50) == 2240
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
