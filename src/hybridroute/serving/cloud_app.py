"""The cloud tier: a FastAPI app that serves a larger classifier over HTTP.

Build it with :func:`create_app`. The model is either handed in (tests, Ray
Serve, a CLI that loads first to fail fast) or loaded from ``settings.bundle``
in the app's lifespan; it lives on ``app.state`` and reaches the routes through
:func:`get_classifier`, which tests can replace with
``app.dependency_overrides``. Nothing happens at import.

Routes:
    ``POST /v1/classify``: ``{"texts": [...]}`` -> predictions (see :mod:`.schemas`).
    ``GET /healthz``: 200 while the process is up.
    ``GET /readyz``: 200 with the model version once the model is loaded, 503 before.

Every error answers ``{"error": {"type": ..., "message": ...}}``.

A classify body is read within ``settings.body_limit`` bytes before anything else (see :mod:`.request_body`):
over it, 413 (``payload_too_large``), before the body is read when the Content-Length says so and the client
waits for ``100 Continue``; a client that sends its whole body first has it read and dropped before the 413,
so the answer is not lost to a connection reset. A large body is parsed in a worker thread, and one with more
than ``max_batch`` texts is refused before it is validated. A client that goes away before it has sent its
whole body gets no answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hybridroute.config import check_range
from hybridroute.errors import ArtifactError, ConfigError, HybridError, InferenceError
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.openapi import error_responses, install_openapi, set_text_limits
from hybridroute.serving.request_body import DUPLICATE_KEY_HINT, BodyLimit, BodyTooLarge, add_bounded_post
from hybridroute.serving.schemas import (
    CloudClassifyRequest,
    CloudClassifyResponse,
    ErrorBody,
    RequestTooLarge,
    accepted_request,
    brief,
    check_limits,
    default_body_limit,
    status_in,
)
from hybridroute.types import Prediction

logger = logging.getLogger(__name__)


class ModelNotReady(HybridError):
    """The app has no model loaded yet (HTTP 503)."""


# Most specific first: the first matching class decides the status and the error type.
STATUS_BY_ERROR: tuple[tuple[type[HybridError], int, str], ...] = (
    (RequestTooLarge, 413, "payload_too_large"),
    (ModelNotReady, 503, "not_ready"),
    (InferenceError, 500, "inference_error"),
    (HybridError, 400, "bad_request"),
)


@dataclass(frozen=True)
class CloudSettings:
    """How the cloud tier serves its model.

    Attributes:
        bundle: model bundle folder, loaded at startup; None only when a classifier is handed in.
        max_batch: most texts accepted in one request.
        max_chars: most characters accepted in one text.
        threads: ONNX Runtime intra-op threads.
        max_body_bytes: most bytes in a classify body (413 beyond, before the body is read when its
            Content-Length says so); None: room for ``max_batch`` texts of ``max_chars`` characters, each
            counted as twelve JSON bytes, an escaped emoji (see
            :func:`~hybridroute.serving.schemas.default_body_limit`).
    """

    bundle: Path | None
    max_batch: int = 64  # the edge escalates a few texts at a time; backlogs belong to offline scoring
    max_chars: int = 10_000  # far above any customer message (the tokenizer truncates anyway); bounds work
    threads: int = 0  # 0 lets ONNX Runtime use every core, right for a machine that only serves
    max_body_bytes: int | None = None  # None: just enough for the text limits above (see body_limit)

    def __post_init__(self) -> None:
        if self.bundle is not None:
            object.__setattr__(self, "bundle", Path(self.bundle))
        check_range("max_batch", self.max_batch, 1, 4096)
        check_range("max_chars", self.max_chars, 1, 1_000_000)
        check_range("threads", self.threads, 0, 1024)
        if self.max_body_bytes is not None:
            check_range("max_body_bytes", self.max_body_bytes, 1, 2**40)

    @property
    def body_limit(self) -> int:
        """Most bytes in a classify body: ``max_body_bytes``, or what the text limits need."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return default_body_limit(self.max_batch, self.max_chars)


# ---------------------------------------------------------------- pure helpers


def status_for(error: HybridError) -> tuple[int, str]:
    """HTTP status and error type for one of our errors.

    Example: status_for(InferenceError("x")) -> (500, "inference_error")
    """
    return status_in(STATUS_BY_ERROR, error)


def location(loc: Sequence[Any]) -> str:
    """A readable field path from a pydantic error location.

    Example: location(("body", "texts", 2)) -> "texts[2]"; location(("body",)) -> "body"
    """
    parts = [p for p in loc if p != "body"]
    if not parts:
        return "body"
    text = str(parts[0])
    for part in parts[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def is_not_json(error: Mapping[str, Any]) -> bool:
    """Whether a request validation error means the body was not JSON at all.

    FastAPI reports a JSON syntax error as ``json_invalid``, and hands a body sent
    with another content type through as raw bytes.
    """
    if error.get("type") == "json_invalid":
        return True
    return isinstance(error.get("input"), bytes) and tuple(error.get("loc", ())) == ("body",)


def unreadable_body(error: BaseException) -> str | None:
    r"""Why a request body could not be read as JSON, from the cause of FastAPI's 400; None if it is not that.

    FastAPI answers a body it cannot decode (not UTF-8) or parse (nested too deeply for the parser)
    with ``HTTPException(400, "There was an error parsing the body")`` raised from the real error.

    Example: a 400 caused by UnicodeDecodeError("utf-8", b"caf\xe9", 3, 4, ...)
        -> "body is not valid UTF-8 (byte 0xe9 at position 3 cannot be decoded)"
    """
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        bad = cause.object[cause.start : cause.start + 1].hex()
        return f"body is not valid UTF-8 (byte 0x{bad} at position {cause.start} cannot be decoded)"
    if isinstance(cause, RecursionError):
        return "body is not JSON this service can read: its arrays or objects are nested too deeply"
    if cause is not None:
        return f"body could not be read as JSON ({type(cause).__name__}: {brief(str(cause))})"
    return None


def describe_unreadable_body(problem: str, accepted: str) -> str:
    """The message for a body that could not be read: what was wrong and what is accepted.

    Example: describe_unreadable_body("body is not valid UTF-8 (...)", 'a JSON object {"texts": [...]}')
        -> 'body is not valid UTF-8 (...). Expected a JSON object {"texts": [...]}, encoded as UTF-8.'
    """
    return f"{problem}. Expected {accepted}, encoded as UTF-8."


def without_union_branches(errors: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The errors of an optional field (``str | None``) as if it had one type.

    pydantic reports a value that fits no member of a union once per member, the member's tag in the
    location: ``text.str: Input should be a valid string``, ``text.none: Input should be None``. The None
    member's errors are dropped (null has its own message) and the tag is cut from the other locations.
    A field counts as a union when its errors carry two or more different tags right after its name.

    Example: [{"loc": ("body", "text", "str"), ...}, {"loc": ("body", "text", "none"), "type": "none_required", ...}]
        -> [{"loc": ("body", "text"), ...}]
    """
    tags: dict[tuple[Any, ...], set[str]] = {}
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if len(loc) >= 3 and loc[0] == "body" and isinstance(loc[2], str):
            tags.setdefault(loc[:2], set()).add(loc[2])
    unions = {field for field, seen in tags.items() if len(seen) > 1}
    kept: list[Mapping[str, Any]] = []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc[:2] not in unions:
            kept.append(error)
        elif error.get("type") != "none_required":
            kept.append({**error, "loc": loc[:2] + loc[3:]})
    return kept or list(errors)


def describe_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as "where: what (received value)".

    Example: {"loc": ("body", "texts", 0), "msg": "Input should be a valid string", "input": 1}
        -> "texts[0]: Input should be a valid string (received 1)"
    """
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error", "syntax error")
        if reason.endswith(DUPLICATE_KEY_HINT):  # valid JSON syntax, but a field would be lost: no position to give
            return f"body repeats a key: {reason}"
        return f"body is not valid JSON ({reason} at character {error.get('loc', ('body', '?'))[-1]})"
    if is_not_json(error):
        return f"body is not JSON (received {brief(error.get('input'))}); send Content-Type: application/json"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{location(error.get('loc', ()))}: {message} (received {brief(error.get('input'))})"


def describe_validation_errors(errors: Sequence[Mapping[str, Any]], accepted: str, limit: int = 3) -> str:
    """One message for a list of pydantic errors: what was wrong, what was received, what is accepted.

    Example: [{"loc": ("body", "texts"), "msg": "Field required", "input": {}}]
        -> "texts: Field required (received {}). Expected <accepted>."
    """
    errors = without_union_branches(errors)
    parts = [describe_error(e) for e in errors[:limit]]
    more = f"; and {len(errors) - limit} more problems" if len(errors) > limit else ""
    return "; ".join(parts) + more + f". Expected {accepted}."


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    """A JSON error response in our one error shape."""
    return JSONResponse(ErrorBody.of(kind, message).model_dump(), status_code=status)


def build_response(classifier: EdgeClassifier, predictions: list[Prediction], n_texts: int) -> CloudClassifyResponse:
    """The response body, refusing model output that breaks the contract (NaN, wrong count, unknown label)."""
    try:
        response = CloudClassifyResponse.model_validate(
            {
                "model_version": classifier.model_version,
                "labels": list(classifier.labels),
                "predictions": [p.to_dict() for p in predictions],
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = location(first["loc"])
        raise InferenceError(f"the model produced an invalid prediction ({where}: {first['msg']})") from exc
    problem = response.inconsistency(n_texts)
    if problem:
        raise InferenceError(f"the model's output is inconsistent with the request: {problem}")
    return response


# ---------------------------------------------------------------- model loading


CLOUD_KIND = "cloud"  # the manifest kind of a cloud bundle (a run's cloud/ folder); edge bundles say "edge"


def check_cloud_kind(classifier: EdgeClassifier, bundle: Path) -> None:
    """Refuse a bundle whose manifest says it is not a cloud model (a run's edge bundle, say).

    Serving the edge model as the cloud tier would answer every escalation with the model that was unsure.

    Raises:
        ArtifactError: the manifest's kind is not "cloud".
    """
    manifest = classifier.manifest
    if manifest is not None and manifest.kind != CLOUD_KIND:
        raise ArtifactError(
            f"{bundle} holds a bundle of kind {manifest.kind!r:.40} (its manifest.json), and the cloud service "
            f"serves only bundles of kind {CLOUD_KIND!r}: give the run folder or its cloud/ folder, made by "
            "`hybridroute train --tier cloud`"
        )


def load_classifier(settings: CloudSettings) -> EdgeClassifier:
    """Load and verify the model bundle named in ``settings``: a bundle of kind "cloud".

    Raises:
        ConfigError: ``settings.bundle`` is None.
        ArtifactError: the bundle is missing, corrupt, inconsistent or not of kind "cloud".
    """
    if settings.bundle is None:
        raise ConfigError("CloudSettings.bundle is None: give a bundle folder to load the cloud model from")
    started = time.perf_counter()
    classifier = EdgeClassifier.from_dir(settings.bundle, threads=settings.threads)
    check_cloud_kind(classifier, settings.bundle)
    logger.info(
        "cloud model %s loaded from %s (%d labels) in %.2f s",
        classifier.model_version,
        settings.bundle,
        len(classifier.labels),
        time.perf_counter() - started,
    )
    return classifier


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model at startup unless one was handed in; drop it at shutdown."""
    loads_here = app.state.classifier is None
    if loads_here:
        app.state.classifier = await run_in_threadpool(load_classifier, app.state.settings)
    try:
        yield
    finally:
        if loads_here:
            app.state.classifier = None


# ---------------------------------------------------------------- dependencies


def get_classifier(request: Request) -> EdgeClassifier:
    """The loaded model; raises :class:`ModelNotReady` (503) before it is loaded."""
    classifier: EdgeClassifier | None = request.app.state.classifier
    if classifier is None:
        raise ModelNotReady("the cloud model is not loaded yet; retry when GET /readyz answers 200")
    return classifier


def get_settings(request: Request) -> CloudSettings:
    """The app's settings."""
    settings: CloudSettings = request.app.state.settings
    return settings


ClassifierDep = Annotated[EdgeClassifier, Depends(get_classifier)]
SettingsDep = Annotated[CloudSettings, Depends(get_settings)]


# ---------------------------------------------------------------- routes


async def predict_off_loop(classifier: EdgeClassifier, texts: list[str]) -> list[Prediction]:
    """Run the model in a worker thread so the event loop keeps answering other requests."""
    try:
        return await run_in_threadpool(classifier.predict, texts)
    except HybridError:
        raise
    except Exception as exc:  # a model bug becomes a clean 500 instead of a dropped connection
        logger.exception("the cloud model failed unexpectedly")
        raise InferenceError(f"the model failed unexpectedly ({type(exc).__name__}: {exc})") from exc


async def classify(
    body: CloudClassifyRequest, classifier: ClassifierDep, settings: SettingsDep
) -> CloudClassifyResponse:
    """Classify a batch of texts."""
    check_limits(body.texts, settings.max_batch, settings.max_chars)
    predictions = await predict_off_loop(classifier, body.texts)
    return build_response(classifier, predictions, len(body.texts))


async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


async def readyz(classifier: ClassifierDep) -> dict[str, Any]:
    """The model is loaded: say which one."""
    return {"status": "ready", "model_version": classifier.model_version, "labels": list(classifier.labels)}


def publish_limits(document: dict[str, Any], settings: CloudSettings) -> None:
    """Put the app's size limits (413 beyond them) into its OpenAPI document."""
    set_text_limits(document, "CloudClassifyRequest", settings.max_batch, settings.max_chars)


def add_routes(app: FastAPI, settings: CloudSettings) -> None:
    """Register the cloud tier's routes on ``app``; the classify body is read within the limits ``settings`` give."""
    errors = error_responses(400, 413, 422, 500, 503)
    limit = BodyLimit.for_texts(settings.body_limit, settings.max_batch, settings.max_chars)
    add_bounded_post(app, "/v1/classify", classify, limit, response_model=CloudClassifyResponse, responses=errors)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"], responses=error_responses(503))


# ---------------------------------------------------------------- error handlers


async def on_hybrid_error(request: Request, exc: Exception) -> JSONResponse:
    """Map our errors to their status (see :data:`STATUS_BY_ERROR`)."""
    status, kind = status_for(cast(HybridError, exc))  # registered for HybridError only
    if status >= 500 and status != 503:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    response = error_response(status, kind, str(exc))
    if isinstance(exc, BodyTooLarge):  # the rest of the body is not wanted: do not read it to keep the connection
        response.headers["Connection"] = "close"
    return response


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 for a body of the wrong shape or type, or one that is not JSON at all."""
    errors = cast(RequestValidationError, exc).errors()  # registered for RequestValidationError only
    kind = "invalid_json" if any(is_not_json(e) for e in errors) else "validation_error"
    settings: CloudSettings = request.app.state.settings
    accepted = accepted_request(settings.max_batch, settings.max_chars)
    return error_response(422, kind, describe_validation_errors(errors, accepted))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown routes, wrong methods and bodies that cannot be read as JSON, in our error shape."""
    http_error = cast(StarletteHTTPException, exc)  # registered for HTTPException only
    problem = unreadable_body(http_error) if http_error.status_code == 400 else None
    if problem is not None:
        settings: CloudSettings = request.app.state.settings
        accepted = accepted_request(settings.max_batch, settings.max_chars)
        return error_response(400, "invalid_json", describe_unreadable_body(problem, accepted))
    message = (
        f"{request.method} {request.url.path}: {http_error.detail}; "
        "routes are POST /v1/classify, GET /healthz and GET /readyz"
    )
    response = error_response(http_error.status_code, f"http_{http_error.status_code}", message)
    response.headers.update(http_error.headers or {})  # e.g. the Allow header of a 405 (RFC 9110)
    return response


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else is a bug: log it with its traceback and answer 500 in our shape.

    Starlette re-raises the exception after this response, so the server also closes the connection.
    """
    logger.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; see the server log")


def add_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""
    app.add_exception_handler(HybridError, on_hybrid_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)


# ---------------------------------------------------------------- factory


def create_app(settings: CloudSettings, classifier: EdgeClassifier | None = None) -> FastAPI:
    """Build the cloud tier's app.

    Args:
        settings: limits and where the model lives.
        classifier: a ready model; if None, ``settings.bundle`` is loaded in the lifespan
            (so the server only starts answering once the model is verified and loaded).

    Raises:
        ConfigError: neither a classifier nor a bundle folder was given.
    """
    if classifier is None and settings.bundle is None:
        raise ConfigError("create_app needs a classifier or CloudSettings.bundle; both are None")
    app = FastAPI(title="hybridroute cloud tier", lifespan=lifespan)
    app.state.settings = settings
    app.state.classifier = classifier
    add_routes(app, settings)
    add_error_handlers(app)
    install_openapi(app, lambda document: publish_limits(document, settings))
    return app
