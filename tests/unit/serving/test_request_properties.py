"""Properties of the HTTP boundary over generated inputs: validators accept or reject, and never break.

Any JSON value (lone surrogates, NaN and huge numbers included) sent as a request body must either
validate into a request the routes can use, or fail with pydantic's ValidationError, whose errors the
apps turn into one readable message that can always be sent as UTF-8 JSON.
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from hybridroute.serving.cloud_app import describe_validation_errors
from hybridroute.serving.edge_app import bearer_token
from hybridroute.serving.edge_schemas import ClassifyRequest, FeedbackRequest, ReloadRequest
from hybridroute.serving.schemas import CloudClassifyRequest, RequestTooLarge, brief, check_limits, not_unicode

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS: list[type[BaseModel]] = [ClassifyRequest, FeedbackRequest, ReloadRequest, CloudClassifyRequest]
KEYS = ["text", "texts", "request_id", "label", "bundle"]

# Text with everything JSON can carry: controls, whitespace of every kind, astral characters, lone surrogates.
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(), texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | texts, inner, max_size=4),
    max_leaves=12,
)
# Bodies near the real shapes, so the deeper validators (blank, exactly-one, surrogates) run too.
shaped = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(texts, json_values),
        "texts": st.one_of(st.lists(texts, max_size=4), json_values),
        "request_id": st.one_of(texts, json_values),
        "label": st.one_of(texts, json_values),
        "bundle": st.one_of(texts, json_values),
    },
)
bodies = st.one_of(
    json_values, shaped, st.dictionaries(texts, json_values, max_size=3).map(lambda d: d | {"text": "x"})
)


def sendable(message: str) -> None:
    """What an app does with an error message: JSON, encoded as UTF-8 (a lone surrogate would raise here)."""
    json.dumps({"error": {"message": message}}, ensure_ascii=False).encode("utf-8")


@SETTINGS
@given(st.sampled_from(MODELS), bodies)
@example(ClassifyRequest, {"text": "\ud800 hi"})
@example(ClassifyRequest, {"text": "x", "\udc00": 1})
@example(FeedbackRequest, {"request_id": "\ud800", "label": "x"})
@example(CloudClassifyRequest, {"texts": ["ok", "\udfff"]})
@example(ClassifyRequest, {"text": None, "texts": ["b"]})
def test_a_body_validates_or_raises_a_validation_error_with_a_sendable_message(
    model: type[BaseModel], body: Any
) -> None:
    try:
        request = model.model_validate(body)
    except ValidationError as exc:
        errors = [e | {"loc": ("body", *e["loc"])} for e in exc.errors()]  # as FastAPI reports them
        message = describe_validation_errors(errors, "a valid body")
        assert message.endswith("Expected a valid body.")
        sendable(message)
        return
    if isinstance(request, ClassifyRequest):
        chosen = request.all_texts()
        assert (request.text is None) != (request.texts is None) and chosen
        assert all(t.strip() for t in chosen) and not not_unicode(chosen)
    if isinstance(request, CloudClassifyRequest):
        assert request.texts and all(t.strip() for t in request.texts) and not not_unicode(request.texts)


@SETTINGS
@given(st.lists(texts, max_size=6), st.integers(1, 5), st.integers(1, 40))
def test_check_limits_raises_only_request_too_large(batch: list[str], max_batch: int, max_chars: int) -> None:
    try:
        check_limits(batch, max_batch, max_chars)
    except RequestTooLarge as exc:
        sendable(str(exc))
        assert len(batch) > max_batch or any(len(t) > max_chars for t in batch)
    else:
        assert len(batch) <= max_batch and all(len(t) <= max_chars for t in batch)


@SETTINGS
@given(st.lists(texts, max_size=6))
def test_not_unicode_names_exactly_the_texts_utf8_cannot_encode(batch: list[str]) -> None:
    def encodes(text: str) -> bool:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    assert not_unicode(batch) == [i for i, t in enumerate(batch) if not encodes(t)]


@SETTINGS
@given(json_values, st.integers(4, 80))
def test_brief_is_short_and_sendable(value: Any, limit: int) -> None:
    text = brief(value, limit)
    sendable(text)
    whole = repr(value)
    assert len(text) <= limit + len(" (99999 characters)")
    assert (text == whole) is (len(whole) <= limit)  # shown whole when it fits; cut, with its size, when not


@SETTINGS
@given(st.one_of(st.none(), st.text(string.printable + "\u00e9\u3000", max_size=40)))
def test_bearer_token_parses_any_header_without_raising(header: str | None) -> None:
    token = bearer_token(header)
    assert token is None or (token == token.strip() and token)


@pytest.mark.parametrize("model", MODELS)
def test_the_published_schemas_are_valid_json(model: type[BaseModel]) -> None:
    schema = model.model_json_schema()
    assert schema["additionalProperties"] is False
    json.dumps(schema)
