"""The cloud tier's HTTP contract: request, response and error bodies.

Both sides use these models: the app validates requests and builds responses
with them, and the client validates what comes back with them, so a change to
the contract shows up on both sides at once. Unknown fields are rejected
everywhere (``extra="forbid"``).

Limits that depend on settings (``max_batch``, ``max_chars``) are checked by
:func:`check_limits`, not by the models, because they are only known when the
app is built. :func:`default_body_limit` sizes the byte limit of a ``{"texts": [...]}``
body from them, and :func:`check_text_count` counts the texts of a parsed body
before it is validated (both tiers use them).
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hybridroute.data import INVISIBLE, is_blank
from hybridroute.errors import HybridError
from hybridroute.types import Prediction

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# "\ud83d\ude00": the longest JSON spelling of one character. json.dumps (ensure_ascii, also what requests' json=
# sends) escapes every non-ASCII character, and one outside the Basic Multilingual Plane (an emoji) as a surrogate
# pair: 12 bytes for what Python and the text limits count as one character.
JSON_BYTES_PER_CHAR = 12
JSON_BYTES_PER_TEXT = 4  # its quotes, a comma and a space
JSON_BYTES_SLACK = 1024  # the envelope ({"texts": [...]}) and indentation


# How brief() shows and sizes what JSON parses to.
BRACKETS: dict[type, tuple[str, str]] = {list: ("[", "]"), tuple: ("(", ")"), dict: ("{", "}")}
SIZE_UNITS: dict[type, tuple[str, str]] = {
    str: ("character", "characters"),
    bytes: ("byte", "bytes"),
    bytearray: ("byte", "bytes"),
    list: ("item", "items"),
    tuple: ("item", "items"),
    dict: ("key", "keys"),
}


def visible_pattern(invisible: frozenset[str] = INVISIBLE) -> str:
    r"""A regular expression (JSON Schema's dialect) that finds a visible character: neither whitespace nor invisible.

    The published form of "not blank" (:func:`hybridroute.data.is_blank`): a text matches it when it holds one
    character that is not whitespace (``str.isspace``, which Python's ``\s`` matches) and not in ``invisible``.

    Example: visible_pattern(frozenset("\u200b")) -> r"[^\s\u200b]"
    """
    return "[^\\s" + "".join(f"\\u{ord(c):04x}" for c in sorted(invisible)) + "]"


# The pattern of a non-blank text in the published schemas (the validators apply is_blank itself).
VISIBLE = visible_pattern()
BLANK_HINT = "every text must hold a visible character, not only whitespace or invisible ones such as U+200B"


def blank_texts(texts: Sequence[str]) -> list[int]:
    r"""Positions of the blank texts: only whitespace and invisible characters (:func:`hybridroute.data.is_blank`).

    Example: blank_texts(["ok", " ", "\u200b\u200d"]) -> [1, 2]
    """
    return [i for i, text in enumerate(texts) if is_blank(text)]


class RequestTooLarge(HybridError):
    """A request is well formed but over a size limit (HTTP 413)."""


# ---------------------------------------------------------------- pure helpers


def repr_head(value: object, budget: int) -> tuple[str, bool]:
    """The start of ``repr(value)``, a little over ``budget`` characters when there is more, and whether it is all.

    Strings, bytes, lists, tuples and dicts (what JSON parses to) are shown piece by piece and only as far as
    ``budget``, so the work is proportional to what is shown, not to the value; anything else goes to ``repr()``.
    A cut string keeps the quote ``repr`` gives its shown part.

    Example: repr_head(["ab", 1], 100) -> ("['ab', 1]", True); repr_head(["ab"] * 10**6, 5) -> ("['ab', ", False)
    """
    pieces: list[str] = []
    room = budget + 1  # characters still to show before the shown part is known to be cut

    def show(text: str) -> bool:  # False once the budget is spent
        nonlocal room
        pieces.append(text)
        room -= len(text)
        return room > 0

    def walk(item: object) -> bool:
        if type(item) in (str, bytes, bytearray):
            sized = cast(str | bytes, item)
            head = sized[:room]
            return show(repr(head) if len(head) == len(sized) else repr(head)[:-1]) and len(head) == len(sized)
        if type(item) in (list, tuple, dict):
            return walk_container(cast(list[Any] | tuple[Any, ...] | dict[Any, Any], item))
        return show(repr(item))

    def walk_container(container: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> bool:
        opening, closing = BRACKETS[type(container)]
        if not show(opening):
            return False
        items = container.items() if isinstance(container, dict) else ((None, item) for item in container)
        for index, (key, item) in enumerate(items):
            if index and not show(", "):
                return False
            if isinstance(container, dict) and not (walk(key) and show(": ")):
                return False
            if not walk(item):
                return False
        return show("," + closing if isinstance(container, tuple) and len(container) == 1 else closing)

    whole = walk(value)  # False only past the budget (where the value may still have ended)
    return "".join(pieces), whole


def size_of(value: object) -> str:
    """How large a value is, in its own unit, for error messages.

    Example: size_of("abc") -> "3 characters"; size_of([1]) -> "1 item"; size_of({}) -> "0 keys"
    """
    units = SIZE_UNITS.get(type(value))
    if units is None:
        return f"{len(repr(value))} chars"  # not JSON-shaped: repr_head showed all of it anyway
    n = len(cast(Sized, value))
    return f"{n} {units[0] if n == 1 else units[1]}"


def brief(value: object, limit: int = 60) -> str:
    """A short ``repr`` of a received value, for error messages; its cost is proportional to ``limit``, not the value.

    Example: brief("x" * 100, limit=8) -> "'xxxxxx… (100 characters)";
        brief(["hi"] * 300_000, limit=12) -> "['hi', 'hi'… (300000 items)"
    """
    text, whole = repr_head(value, limit)
    return text if whole and len(text) <= limit else f"{text[: limit - 1]}… ({size_of(value)})"


def accepted_request(max_batch: int, max_chars: int) -> str:
    """Describe an acceptable request body in one line, for error messages."""
    return (
        f'a JSON object {{"texts": [...]}} holding 1 to {max_batch} non-blank strings '
        f"of at most {max_chars} characters each, and no other fields"
    )


def not_unicode(texts: Sequence[str]) -> list[int]:
    r"""Positions of the texts that are not valid Unicode (a lone surrogate).

    JSON lets the escape ``"\ud800"`` through as a lone surrogate, which no UTF-8 encoder
    (tokenizer, text hash, database, the cloud call) accepts.

    Example: not_unicode(["ok", "\ud800"]) -> [1]
    """
    broken = []
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            broken.append(index)
    return broken


def check_count(n_texts: int, max_batch: int) -> None:
    """Raise :class:`RequestTooLarge` if a batch of ``n_texts`` texts is over ``max_batch``.

    Example: check_count(3, max_batch=2) -> RequestTooLarge("batch has 3 texts; at most 2 are accepted ...")
    """
    if n_texts > max_batch:
        raise RequestTooLarge(
            f"batch has {n_texts} texts; at most {max_batch} are accepted per request "
            "(split the batch into smaller requests)"
        )


def check_text_count(body: Any, max_texts: int) -> None:
    """Refuse a body with more than ``max_texts`` texts from its parsed JSON, before validation.

    Validating each of 300,000 texts only to refuse the request would cost the event loop a tenth of a second;
    counting them costs nothing. Anything else about the body is left to the request model.

    Example: check_text_count({"texts": ["a"] * 65}, 64) -> RequestTooLarge("batch has 65 texts; ...");
        check_text_count({"texts": "abc"}, 64) -> None (the model says what is wrong)
    """
    texts = body.get("texts") if isinstance(body, dict) else None
    if isinstance(texts, list):
        check_count(len(texts), max_texts)


def default_body_limit(max_texts: int, max_chars: int) -> int:
    """Most bytes a ``{"texts": [...]}`` body needs to carry ``max_texts`` texts of ``max_chars`` characters, escaped.

    Every character is counted at 12 bytes, an escaped emoji (see :data:`JSON_BYTES_PER_CHAR`).

    Example: default_body_limit(64, 10_000) -> 7_681_280 (64 × (12 × 10,000 + 4) + 1024)
    """
    return max_texts * (JSON_BYTES_PER_CHAR * max_chars + JSON_BYTES_PER_TEXT) + JSON_BYTES_SLACK


def check_limits(texts: list[str], max_batch: int, max_chars: int, *, single: bool = False) -> None:
    """Raise :class:`RequestTooLarge` if the batch or one of its texts is too large.

    ``single``: the client sent one ``text`` rather than a ``texts`` list, so the message names ``text``.

    Example: check_limits(["hi"] * 3, max_batch=2, max_chars=10) -> RequestTooLarge("batch has 3 texts ...");
        check_limits(["x" * 30], 64, 20, single=True) -> RequestTooLarge("text has 30 characters; ...")
    """
    check_count(len(texts), max_batch)
    for index, text in enumerate(texts):
        if len(text) > max_chars:
            where = "text" if single else f"texts[{index}]"
            raise RequestTooLarge(f"{where} has {len(text)} characters; at most {max_chars} are accepted per text")


# ---------------------------------------------------------------- request and response


class CloudClassifyRequest(BaseModel):
    """``POST /v1/classify`` body: the texts to classify (already redacted by the edge)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[Annotated[str, Field(json_schema_extra={"pattern": VISIBLE})]] = Field(min_length=1)

    @field_validator("texts")
    @classmethod
    def _no_blank_texts(cls, texts: list[str]) -> list[str]:
        blank = blank_texts(texts)
        if blank:
            raise ValueError(f"texts at positions {blank[:10]} are blank; {BLANK_HINT}")
        broken = not_unicode(texts)
        if broken:
            raise ValueError(f"texts at positions {broken[:10]} hold a lone UTF-16 surrogate; send valid Unicode")
        return texts


class PredictionBody(BaseModel):
    """One prediction on the wire."""

    model_config = ConfigDict(extra="forbid")

    label: str
    confidence: Probability
    probabilities: dict[str, Probability]

    def to_prediction(self) -> Prediction:
        """Back to a runtime :class:`~hybridroute.types.Prediction`."""
        return Prediction(label=self.label, confidence=self.confidence, probabilities=dict(self.probabilities))


class CloudClassifyResponse(BaseModel):
    """``POST /v1/classify`` answer: one prediction per text, in order."""

    model_config = ConfigDict(extra="forbid")

    model_version: str
    labels: list[str] = Field(min_length=1)  # the model's full label list, in output order
    predictions: list[PredictionBody]

    def inconsistency(self, n_texts: int) -> str | None:
        """Why this response cannot answer ``n_texts`` texts, or None if it can.

        Example: a response with 2 predictions for 3 texts -> "2 predictions for 3 texts"
        """
        if len(self.predictions) != n_texts:
            return f"{len(self.predictions)} predictions for {n_texts} texts"
        known = set(self.labels)
        for index, prediction in enumerate(self.predictions):
            if prediction.label not in known:
                return f"predictions[{index}].label {brief(prediction.label)} is not in labels {self.labels}"
            unknown = sorted(set(prediction.probabilities) - known)
            if unknown:
                return f"predictions[{index}].probabilities has unknown labels {unknown[:5]}"
        return None


# ---------------------------------------------------------------- errors


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine-readable type and a message for people."""

    model_config = ConfigDict(extra="forbid")

    type: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"type": ..., "message": ...}}``."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail

    @classmethod
    def of(cls, type_: str, message: str) -> ErrorBody:
        """Build an error body."""
        return cls(error=ErrorDetail(type=type_, message=message))


def status_in(table: Sequence[tuple[type[Exception], int, str]], error: Exception) -> tuple[int, str]:
    """HTTP status and error type of ``error`` from the first matching row of ``table``; else (400, "bad_request").

    Example: status_in(((KeyError, 404, "not_found"),), KeyError("x")) -> (404, "not_found")
    """
    for cls, status, kind in table:
        if isinstance(error, cls):
            return status, kind
    return 400, "bad_request"
