"""The edge request bodies refuse what the audit log cannot store: NUL characters (PostgreSQL) and lone surrogates."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hybridroute.serving.edge_schemas import ClassifyRequest, FeedbackRequest, holds_nul


def test_holds_nul_names_the_texts_with_a_nul_character() -> None:
    assert holds_nul(["ok", "a\x00b", "\x00", "fine"]) == [1, 2]
    assert holds_nul(["ok", "\\u0000 spelled out"]) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "hello\x00there"}, "text holds a NUL character (\\u0000)"),
        ({"texts": ["ok", "\x00", "fine", "a\x00"]}, "texts at positions [1, 3] hold a NUL character (\\u0000)"),
    ],
)
def test_a_text_with_a_nul_character_is_refused_clearly(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ClassifyRequest.model_validate(body)
    (error,) = info.value.errors()
    assert message in error["msg"] and "remove it" in error["msg"]


def test_texts_without_nul_are_accepted() -> None:
    assert ClassifyRequest.model_validate({"texts": ["ok", "caf\u00e9 \N{GRINNING FACE}"]}).all_texts()[0] == "ok"


@pytest.mark.parametrize("field", ["request_id", "label"])
@pytest.mark.parametrize(("value", "message"), [("a\x00b", "NUL character (\\u0000)"), ("a\ud800", "unicode")])
def test_feedback_refuses_what_the_audit_log_cannot_store(field: str, value: str, message: str) -> None:
    body = {"request_id": "req-1", "label": "positive", field: value}
    with pytest.raises(ValidationError) as info:
        FeedbackRequest.model_validate(body)
    (error,) = info.value.errors()
    assert error["loc"] == (field,) and message in error["msg"]
    assert FeedbackRequest.model_validate({"request_id": "req-1", "label": "positive"}).label == "positive"
