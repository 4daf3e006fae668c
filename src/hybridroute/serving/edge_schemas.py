"""The edge service's HTTP contract: request and response bodies, and the errors only it raises.

Unknown fields are rejected everywhere (``extra="forbid"``). Limits that depend
on settings (texts per request, characters per text) are checked by the app
with :func:`hybridroute.serving.schemas.check_limits` (413), not by the models;
the app publishes them in its OpenAPI document (see :mod:`.openapi`), beside
what the validators check (exactly one of text/texts, no blank text, no null; no NUL character or lone
surrogate, which the audit log cannot store).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from hybridroute.errors import HybridError
from hybridroute.serving.schemas import BLANK_HINT, VISIBLE, blank_texts, not_unicode

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# A text must hold a visible character: not only whitespace and invisible characters (hybridroute.data.is_blank,
# which the validators apply). In the published schema as the pattern VISIBLE.
Text = Annotated[StrictStr, Field(json_schema_extra={"pattern": VISIBLE})]


class NotFound(HybridError):
    """The thing a request names does not exist (HTTP 404)."""


class Unauthorized(HybridError):
    """No credentials were given (HTTP 401)."""


class Forbidden(HybridError):
    """The credentials given are wrong (HTTP 403)."""


class Conflict(HybridError):
    """The request clashes with the service's state (HTTP 409)."""


class InvalidInput(HybridError):
    """Well-formed JSON whose values the service cannot accept (HTTP 422)."""


class AuditUnavailable(HybridError):
    """The audit database refuses a write the request needs (HTTP 503); retrying later may succeed."""


class InvalidBundle(HybridError):
    """A model bundle offered for reload is missing, corrupt or unusable (HTTP 422)."""


def holds_nul(texts: list[str]) -> list[int]:
    r"""Positions of the texts holding a NUL character (\u0000), which a PostgreSQL audit log cannot store.

    Example: holds_nul(["ok", "a\u0000b"]) -> [1]
    """
    return [i for i, text in enumerate(texts) if "\x00" in text]


def accepted_classify(max_texts: int, max_chars: int) -> str:
    """Describe an acceptable classify body in one line, for error messages."""
    return (
        f'a JSON object {{"text": "..."}} or {{"texts": [...]}} (exactly one of them) holding 1 to {max_texts} '
        f"non-blank strings of at most {max_chars} characters each, and no other fields"
    )


def exactly_one_of_text_or_texts(schema: dict[str, Any]) -> None:
    """Publish what the validators enforce: exactly one of the two fields, and neither may be null."""
    for field_schema in schema.get("properties", {}).values():
        field_schema.pop("default", None)
    schema["oneOf"] = [{"required": ["text"]}, {"required": ["texts"]}]


class ClassifyRequest(BaseModel):
    """``POST /v1/classify`` body: one text or a list of texts (exactly one of them; null is not a value)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=exactly_one_of_text_or_texts)

    text: Text | SkipJsonSchema[None] = None
    texts: Annotated[list[Text], Field(min_length=1)] | SkipJsonSchema[None] = None

    @field_validator("text", "texts", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # An explicit null is neither "given" nor "left out"; the published schema has no null either.
        if value is None:
            raise ValueError("null is not accepted; leave the field out instead")
        return value

    @model_validator(mode="after")
    def _exactly_one_non_blank(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError('give exactly one of "text" (a string) or "texts" (a list of strings)')
        blank = blank_texts(self.all_texts())
        if blank:
            where = "text is blank" if self.text is not None else f"texts at positions {blank[:10]} are blank"
            raise ValueError(f"{where}; {BLANK_HINT}")
        broken = not_unicode(self.all_texts())
        if broken:
            where = "text holds" if self.text is not None else f"texts at positions {broken[:10]} hold"
            raise ValueError(f"{where} a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff); send valid Unicode")
        nul = holds_nul(self.all_texts())
        if nul:
            where = "text holds" if self.text is not None else f"texts at positions {nul[:10]} hold"
            raise ValueError(f"{where} a NUL character (\\u0000), which cannot be stored; remove it")
        return self

    def all_texts(self) -> list[str]:
        """The texts to classify, as a list."""
        return [self.text] if self.text is not None else list(self.texts or [])


class AnswerBody(BaseModel):
    """One answered text."""

    model_config = ConfigDict(extra="forbid")

    request_id: str  # give it to POST /v1/feedback
    label: str
    confidence: Probability
    tier: str  # "edge" or "cloud"
    reason: str
    latency_ms: float  # server time for this text, queueing and batching included
    cost: float  # USD
    model_version: str  # the model that answered (the cloud model's for cloud answers)
    fallback: bool  # the cloud was wanted but failed, so the edge answered


class ClassifyResponse(BaseModel):
    """``POST /v1/classify`` answer: one result per text, in order."""

    model_config = ConfigDict(extra="forbid")

    results: list[AnswerBody]


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback`` body: the true label of an answered text."""

    model_config = ConfigDict(extra="forbid")

    request_id: StrictStr = Field(min_length=1, max_length=200)
    label: StrictStr = Field(min_length=1)

    @field_validator("request_id", "label")
    @classmethod
    def _storable(cls, value: str) -> str:
        # Both are stored (or looked up) in the audit log, which cannot take a NUL (lone surrogates fail as str).
        if holds_nul([value]):
            raise ValueError("holds a NUL character (\\u0000), which cannot be stored; remove it")
        return value


class FeedbackResponse(BaseModel):
    """``POST /v1/feedback`` answer."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    label: str
    status: str = "recorded"


class ReloadRequest(BaseModel):
    """``POST /admin/reload`` body (optional): a bundle folder other than the run's edge folder."""

    model_config = ConfigDict(extra="forbid")

    bundle: StrictStr | None = Field(default=None, min_length=1)


class ReloadResponse(BaseModel):
    """``POST /admin/reload`` answer: which model serves now, which one it replaced, and what to look at.

    ``warnings``: what still works but needs attention, e.g. the router was calibrated for another model or
    temperature than the new one (its threshold no longer fits: recalibrate, then restart).
    """

    model_config = ConfigDict(extra="forbid")

    status: str
    model_version: str
    previous_version: str
    bundle: str
    seconds: float
    warnings: list[str] = Field(default_factory=list)
