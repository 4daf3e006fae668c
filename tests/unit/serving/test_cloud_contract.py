"""Pure parts of the cloud tier: configs, request and response checks, error messages."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from hybridroute.errors import ArtifactError, ConfigError, DataError, InferenceError
from hybridroute.serving.cloud_app import (
    CloudSettings,
    ModelNotReady,
    create_app,
    describe_validation_errors,
    location,
    status_for,
)
from hybridroute.serving.cloud_client import (
    ClientConfig,
    call_with_deadline,
    is_retryable,
    read_response,
    transport_reason,
)
from hybridroute.serving.schemas import CloudClassifyRequest, RequestTooLarge, brief, check_limits

LABELS = ["negative", "neutral", "positive"]


def _body(n: int = 2, **changes: Any) -> dict[str, Any]:
    prediction = {
        "label": "negative",
        "confidence": 0.7,
        "probabilities": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
    }
    predictions = [dict(prediction) for _ in range(n)]
    return {"model_version": "abc123", "labels": LABELS, "predictions": predictions} | changes


def _with(**prediction: Any) -> dict[str, Any]:
    """A two-text body whose predictions both have the given fields."""
    fields = {"label": "neutral", "confidence": 0.5, "probabilities": {}} | prediction
    return _body(2, predictions=[fields, fields])


def _read(body: Any, n: int = 2, status: int = 200, expected: list[str] | None = None) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return read_response(status, content, n, frozenset(expected) if expected is not None else None)


# ---------------------------------------------------------------- configs


def test_client_config_defaults_are_valid() -> None:
    config = ClientConfig("http://cloud:8000")
    assert config.timeout_s < config.budget_s
    assert ClientConfig("https://cloud.example.com/tier").url.startswith("https")


@pytest.mark.parametrize("url", ["cloud:8000", "ftp://cloud", "http://", "", "localhost"])
def test_client_config_rejects_non_http_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="url must be an http:// or https:// URL") as info:
        ClientConfig(url)
    assert repr(url) in str(info.value)


def test_client_config_rejects_a_bad_port() -> None:
    with pytest.raises(ConfigError, match="url has an invalid port"):
        ClientConfig("http://cloud:port")


def test_client_config_rejects_an_unparsable_url_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"url is not a valid URL \(Invalid IPv6 URL\); got 'http://\[::1'"):
        ClientConfig("http://[::1")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_s", 0.0),
        ("timeout_s", 601.0),
        ("retries", -1),
        ("retries", 11),
        ("backoff_s", -0.1),
        ("budget_s", 0.0),
        ("budget_s", 0.001),
        ("breaker_failures", 0),
        ("breaker_reset_s", 0.0),
    ],
)
def test_client_config_rejects_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        ClientConfig("http://cloud:8000", **{field: value})


def test_cloud_settings_validate_and_coerce_the_bundle_path() -> None:
    assert CloudSettings(bundle="models/cloud").bundle == Path("models/cloud")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_batch"):
        CloudSettings(bundle=None, max_batch=0)
    with pytest.raises(ConfigError, match="max_chars"):
        CloudSettings(bundle=None, max_chars=0)
    with pytest.raises(ConfigError, match="threads"):
        CloudSettings(bundle=None, threads=-1)


def test_create_app_needs_a_model_or_a_bundle() -> None:
    with pytest.raises(ConfigError, match="classifier or CloudSettings.bundle"):
        create_app(CloudSettings(bundle=None))


# ---------------------------------------------------------------- requests


def test_request_rejects_blank_texts_and_unknown_fields() -> None:
    assert CloudClassifyRequest(texts=["hi"]).texts == ["hi"]
    with pytest.raises(ValidationError, match=r"positions \[1\] are blank"):
        CloudClassifyRequest(texts=["hi", " \n\t"])
    with pytest.raises(ValidationError, match="Extra inputs"):
        CloudClassifyRequest.model_validate({"texts": ["hi"], "priority": 1})
    with pytest.raises(ValidationError, match="at least 1 item"):
        CloudClassifyRequest(texts=[])


def test_check_limits_names_the_limit_and_the_value() -> None:
    check_limits(["a" * 10] * 2, max_batch=2, max_chars=10)
    with pytest.raises(RequestTooLarge, match="batch has 3 texts; at most 2"):
        check_limits(["a"] * 3, max_batch=2, max_chars=10)
    with pytest.raises(RequestTooLarge, match=r"texts\[1\] has 11 characters; at most 10"):
        check_limits(["a", "b" * 11], max_batch=2, max_chars=10)


def test_error_statuses() -> None:
    assert status_for(RequestTooLarge("x")) == (413, "payload_too_large")
    assert status_for(ModelNotReady("x")) == (503, "not_ready")
    assert status_for(InferenceError("x")) == (500, "inference_error")
    assert status_for(DataError("x")) == (400, "bad_request")
    assert status_for(ArtifactError("x")) == (400, "bad_request")


def test_validation_messages_say_where_what_and_what_is_accepted() -> None:
    assert location(("body", "texts", 2)) == "texts[2]"
    assert location(("body",)) == "body"
    errors = [{"loc": ("body", "texts", i), "msg": "Input should be a valid string", "input": i} for i in range(5)]
    message = describe_validation_errors(errors, "ACCEPTED")
    assert message.startswith("texts[0]: Input should be a valid string (received 0); texts[1]")
    assert "and 2 more problems" in message and message.endswith("Expected ACCEPTED.")


def test_brief_truncates_long_values_and_says_how_large_they_are() -> None:
    assert brief("abc") == "'abc'"
    assert brief({"texts": ["a", 1, None, 2.5, True]}) == "{'texts': ['a', 1, None, 2.5, True]}"
    assert brief(("a",)) == "('a',)"
    assert brief("x" * 100, limit=8) == "'xxxxxx… (100 characters)"
    assert brief(b"\xff" * 100, limit=11) == "b'\\xff\\xff… (100 bytes)"
    assert brief(["hi there"] * 300_000, limit=30) == "['hi there', 'hi there', 'hi … (300000 items)"
    assert brief({str(i): "hi there" for i in range(150_000)}, limit=20) == "{'0': 'hi there', '… (150000 keys)"
    assert brief([["x" * 1000]], limit=10) == "[['xxxxxx… (1 item)"


class Counted:
    """A value that counts how often it is shown."""

    shown = 0

    def __repr__(self) -> str:
        Counted.shown += 1
        return "c"


@pytest.mark.parametrize(
    "value",
    [
        [Counted()] * 300_000,
        {"texts": {str(i): Counted() for i in range(150_000)}},
        [[Counted()] * 300_000],
        {"text": ["x" * 1_000_000] * 100 + [Counted()] * 300_000},
    ],
    ids=["list", "dict-in-dict", "list-in-list", "long-strings-then-many-items"],
)
def test_brief_costs_what_it_shows_not_what_it_received(value: Any) -> None:
    # The validation-error message shows the received value; repr() of all of it was 15-35 ms for 300,000 items.
    Counted.shown = 0
    text = brief(value)
    assert len(text) < 80 and Counted.shown <= 60, (text, Counted.shown)


# ---------------------------------------------------------------- responses (client side)


def test_a_valid_response_is_accepted() -> None:
    outcome = _read(_body(2))
    assert outcome.reason is None
    assert [p.label for p in outcome.response.predictions] == ["negative", "negative"]


def test_integer_probabilities_are_numbers_too() -> None:
    body = _body(
        1,
        predictions=[
            {"label": "neutral", "confidence": 1, "probabilities": {"negative": 0, "neutral": 1, "positive": 0}}
        ],
    )
    assert _read(body, n=1).reason is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"<html>oops</html>", "Invalid JSON"),
        (b"[]", "should be an object"),
        ({"predictions": []}, "model_version"),
        (_body(2, extra="field"), "Extra inputs"),
        (_body(1), "1 predictions for 2 texts"),
        (_body(3), "3 predictions for 2 texts"),
        (_body(2, labels=[]), "labels"),
        (_with(label="angry"), "'angry' is not in"),
        (_with(label=3), "valid string"),
        (_with(confidence=1.5), "less than or equal"),
        (_with(confidence=-0.1), "greater than or equal"),
        (_with(confidence=True), "valid number"),
        (_with(confidence="0.5"), "valid number"),
        (_with(confidence=None), "valid number"),
        (_with(probabilities=[0.5]), "should be an object"),
        (_with(probabilities={"x": 0.5}), "unknown labels ['x']"),
        (_with(probabilities={"neutral": 2.0}), "less than or equal"),
        (_with(extra=1), "Extra inputs"),
        (json.dumps(_body(2)).replace("0.7,", "NaN,").encode(), "finite number"),
        (json.dumps(_body(2)).replace("0.7,", "Infinity,").encode(), "finite number"),
    ],
)
def test_malformed_responses_are_refused_with_a_reason(content: Any, fragment: str) -> None:
    outcome = _read(content)
    assert outcome.response is None
    assert outcome.reason == "malformed_response"
    assert fragment in outcome.detail


def test_label_set_must_match_when_expected() -> None:
    assert _read(_body(2), expected=["positive", "negative", "neutral"]).reason is None  # order is free
    outcome = _read(_body(2), expected=["negative", "positive"])
    assert outcome.reason == "label_mismatch"
    assert "differ from the expected ['negative', 'positive']" in outcome.detail


def test_non_200_answers_keep_the_server_message() -> None:
    body = {"error": {"type": "not_ready", "message": "model loading"}}
    outcome = _read(body, status=503)
    assert (outcome.reason, outcome.detail) == ("http_503", "HTTP 503 not_ready: model loading")
    assert _read(b"Bad Gateway", status=502).detail == "HTTP 502: b'Bad Gateway'"


@pytest.mark.parametrize(
    ("reason", "retry"),
    [
        ("timeout", True),
        ("connect_error", True),
        ("connection_error", True),
        ("malformed_response", True),
        ("http_500", True),
        ("http_503", True),
        ("http_400", False),
        ("http_413", False),
        ("http_422", False),
        ("label_mismatch", False),
        ("circuit_open", False),
    ],
)
def test_only_transient_failures_are_retried(reason: str, retry: bool) -> None:
    assert is_retryable(reason) is retry


def test_transport_errors_map_to_reason_codes() -> None:
    assert transport_reason(httpx.ConnectError("refused")) == "connect_error"
    assert transport_reason(httpx.ConnectTimeout("slow")) == "connect_error"  # nothing was sent
    assert transport_reason(httpx.ReadTimeout("slow")) == "timeout"
    assert transport_reason(httpx.ReadError("reset")) == "connection_error"
    assert transport_reason(httpx.RemoteProtocolError("closed")) == "connection_error"
    assert transport_reason(httpx.ProxyError("proxy")) == "transport_error"


def test_call_with_deadline_returns_raises_or_gives_up_on_time() -> None:
    assert call_with_deadline(lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        call_with_deadline(lambda: 1 / 0, 1.0)
    started = time.perf_counter()
    with pytest.raises(concurrent.futures.TimeoutError):
        call_with_deadline(lambda: time.sleep(0.5), 0.05)
    assert time.perf_counter() - started < 0.3


# ---------------------------------------------------------------- dependencies


def test_the_client_loads_no_torch_or_transformers() -> None:
    code = (
        "import sys, hybridroute.serving.cloud_client, hybridroute.serving.cloud_app\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    src = str(Path(__file__).resolve().parents[3] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": src, "PATH": ""},
        timeout=60,
    )
    assert out.stdout.strip() == "[]"
