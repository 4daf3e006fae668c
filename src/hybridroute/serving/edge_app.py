"""The edge service: a FastAPI app that answers edge-first, micro-batched, audited and measured.

Build it with :func:`create_app`. The lifespan opens the audit log, starts the
audit writer and the micro-batcher, and loads and warms the model in the
background (``/readyz`` answers 503 until that is done); at shutdown it answers
every queued request, commits every audit record and closes. The running parts
live on ``app.state.service`` (:class:`~hybridroute.serving.edge_service.EdgeService`)
and reach the routes through :func:`get_service`. Nothing happens at import.

Routes:
    ``POST /v1/classify``: ``{"text": "..."}`` or ``{"texts": [...]}`` -> ``{"results": [...]}``, one per text
        with request_id, label, confidence, tier, reason, latency_ms, cost, model_version and fallback.
        The ``X-Audit`` header says whether the audit record was committed (see :mod:`.edge_service`).
    ``POST /v1/feedback``: ``{"request_id": ..., "label": ...}`` stores the true label (404 unknown id,
        422 unknown label, 503 while the audit database refuses writes).
    ``POST /admin/reload``: ``Authorization: Bearer TOKEN``, optional ``{"bundle": PATH}``; swaps in a
        verified edge bundle (404 when reloading is disabled, 401/403 for a missing/wrong token,
        422 bad bundle, 409 other labels or a reload already running).
    ``GET /healthz``: 200 while the process is up.
    ``GET /readyz``: 200 once the model is loaded and warmed, 503 before (and while draining).
    ``GET /metrics``: Prometheus text format. Every HTTP request counts once in
        ``hybridroute_http_requests_total`` by route (``other`` for a path not served) and status class.
    ``GET /v1/monitor``: the live monitor's analysis of the recent traffic this process answered: health score
        and status, alerts, trends, recommendations, cost projections, the current window (edge share, accuracy
        from feedback and estimated from confidence, latency percentiles) and drift PSI against the run's
        validation reference (text length, unknown-token rate, confidence).

Every error answers ``{"error": {"type": ..., "message": ...}}``.

Bodies are read within a byte limit before anything else (see :mod:`.request_body`): a classify body over
``settings.body_limit`` and a feedback or reload body over :data:`SMALL_BODY_BYTES` get 413
(``payload_too_large``), before the body is read when the Content-Length says so and the client waits for
``100 Continue``; a client that sends its whole body first has it read and dropped before the 413 (up to
:data:`~.request_body.DRAIN_BYTES`), so the answer is not lost to a connection reset. Large classify bodies are
parsed in a worker thread, and one with more than ``max_texts`` texts is refused before it is validated. A client
that goes away before it has sent its whole body gets no answer and is counted in ``hybridroute_errors_total``
as ``client_disconnected`` (not ``invalid_json``: nothing was wrong with what it sent).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, cast

from fastapi import Body, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybridroute.errors import HybridError, InferenceError
from hybridroute.monitoring.audit import AuditStore
from hybridroute.monitoring.metrics import OTHER_ROUTE, status_class
from hybridroute.monitoring.monitor import json_safe
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.serving.batcher import BatcherClosed
from hybridroute.serving.cloud_app import (
    ModelNotReady,
    describe_unreadable_body,
    describe_validation_errors,
    error_response,
    is_not_json,
    unreadable_body,
)
from hybridroute.serving.edge_schemas import (
    AuditUnavailable,
    ClassifyRequest,
    ClassifyResponse,
    Conflict,
    FeedbackRequest,
    FeedbackResponse,
    Forbidden,
    InvalidBundle,
    InvalidInput,
    NotFound,
    ReloadRequest,
    ReloadResponse,
    Unauthorized,
    accepted_classify,
)
from hybridroute.serving.edge_service import Answered, EdgeService, open_hybrid_for
from hybridroute.serving.edge_settings import EdgeSettings
from hybridroute.serving.openapi import (
    ONLY_THE_BYTE_LIMIT,
    error_responses,
    header_doc,
    install_openapi,
    require_bearer,
    set_enum,
    set_text_limits,
)
from hybridroute.serving.request_body import BodyLimit, BodyTooLarge, add_bounded_post
from hybridroute.serving.schemas import RequestTooLarge, check_limits, status_in

logger = logging.getLogger(__name__)

# A feedback or reload body is a few hundred bytes (an id and a label, or a folder path): 64 KiB is plenty.
SMALL_BODY_BYTES = 64 * 1024
SMALL_BODY_ACCEPTED = "a feedback or reload body is a few hundred bytes"

# Most specific first: the first matching class decides the status and the error type.
STATUS_BY_ERROR: tuple[tuple[type[HybridError], int, str], ...] = (
    (RequestTooLarge, 413, "payload_too_large"),
    (ModelNotReady, 503, "not_ready"),
    (BatcherClosed, 503, "shutting_down"),
    (AuditUnavailable, 503, "audit_unavailable"),
    (NotFound, 404, "not_found"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (Conflict, 409, "conflict"),
    (InvalidBundle, 422, "invalid_bundle"),
    (InvalidInput, 422, "validation_error"),
    (InferenceError, 500, "inference_error"),
    (HybridError, 400, "bad_request"),
)


def status_for(error: HybridError) -> tuple[int, str]:
    """HTTP status and error type for one of our errors.

    Example: status_for(NotFound("x")) -> (404, "not_found")
    """
    return status_in(STATUS_BY_ERROR, error)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None.

    Example: bearer_token("Bearer abc") -> "abc"; bearer_token("Basic abc") -> None
    """
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def answer_body(item: Answered, request_id: str, latency_ms: float) -> dict[str, Any]:
    """One result on the wire (see :class:`~.edge_schemas.AnswerBody`)."""
    a = item.answer
    return {
        "request_id": request_id,
        "label": a.label,
        "confidence": a.confidence,
        "tier": a.tier.value,
        "reason": a.reason,
        "latency_ms": latency_ms,
        "cost": a.cost,
        "model_version": a.model_version,
        "fallback": a.fallback,
    }


# ---------------------------------------------------------------- dependencies


async def get_service(request: Request) -> EdgeService:
    """The app's running parts (async: FastAPI would run a plain function in its thread pool, per request)."""
    service: EdgeService = request.app.state.service
    return service


ServiceDep = Annotated[EdgeService, Depends(get_service)]


def require_admin(request: Request, service: ServiceDep) -> None:
    """Allow only requests carrying the admin token; 404 when reloading is disabled."""
    expected = service.settings.admin_token
    if expected is None:
        raise NotFound("reloading is disabled: start the service with an admin token to enable POST /admin/reload")
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("POST /admin/reload needs the header 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise Forbidden("the admin token is wrong")


# ---------------------------------------------------------------- routes


async def classify(body: ClassifyRequest, service: ServiceDep) -> Response:
    """Classify one text or a list of texts, edge first."""
    started = service.clock()
    texts = body.all_texts()
    check_limits(texts, service.settings.max_texts, service.settings.max_chars, single=body.text is not None)
    answered = await service.classify(texts)
    latency_ms = 1000.0 * (service.clock() - started)
    ids = [service.new_id() for _ in texts]
    records = service.records(texts, answered, ids, latency_ms)
    service.monitor.observe(records)
    # The histogram takes the latency the answer, the audit log and the monitor carry; the commit wait is apart.
    service.observe(answered, latency_ms / 1000.0)
    audit_started = service.clock()
    audit_status = await service.audit(records)
    service.metrics.audit_ack.observe(service.clock() - audit_started)
    results = [answer_body(item, i, latency_ms) for item, i in zip(answered, ids, strict=True)]
    return JSONResponse({"results": results}, headers={"X-Audit": audit_status})


async def feedback(body: FeedbackRequest, service: ServiceDep) -> FeedbackResponse:
    """Store the true label of an answered text in the audit log."""
    labels = service.labels()
    if body.label not in labels:
        raise InvalidInput(f"label {body.label!r} is not one of the model's labels {list(labels)}")
    if not await service.add_feedback(body.request_id, body.label):
        raise NotFound(f"request id {body.request_id!r} is not in the audit log")
    return FeedbackResponse(request_id=body.request_id, label=body.label)


async def admin_reload(
    service: ServiceDep,
    _admin: Annotated[None, Depends(require_admin)],
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    """Swap in a verified edge bundle (the run's edge folder unless the body names another)."""
    bundle = Path(body.bundle) if body is not None and body.bundle else service.settings.edge_dir
    outcome = await service.reload(bundle)
    return ReloadResponse(
        status="reloaded",
        model_version=outcome.model_version,
        previous_version=outcome.previous_version,
        bundle=str(outcome.bundle),
        seconds=outcome.seconds,
        warnings=list(outcome.warnings),
    )


async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


async def readyz(service: ServiceDep) -> dict[str, Any]:
    """The model is loaded and warmed: say which one."""
    if not service.ready:
        raise ModelNotReady(f"not ready: {service.state}")
    return service.describe()


async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics of this app (the live monitor's gauges are refreshed first, at most every 30 s)."""
    await service.refresh_monitor_gauges()
    return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)


async def monitor_report(service: ServiceDep) -> JSONResponse:
    """Health, alerts, trends, recommendations, cost and drift over the recent traffic this process answered."""
    report = await run_in_threadpool(service.monitor.report)  # numpy over thousands of records: off the loop
    body = report.to_dict() | {
        "held_records": service.monitor.held,
        "drift_reference": service.monitor.reference is not None,
    }
    return JSONResponse(json_safe(body))


def publish_limits(document: dict[str, Any], service: EdgeService) -> None:
    """Put what the routes check beyond the models into the OpenAPI document: sizes, labels, the admin token."""
    set_text_limits(document, "ClassifyRequest", service.settings.max_texts, service.settings.max_chars)
    hybrid = service.holder.current
    if hybrid is not None:  # the labels are known once the model is loaded
        set_enum(document, "FeedbackRequest", "label", hybrid.edge.labels)
    require_bearer(document, "/admin/reload", "post", "the service's admin token (reloading is off without one)")


def add_routes(app: FastAPI, settings: EdgeSettings) -> None:
    """Register the edge service's routes on ``app``; bodies are read within the limits ``settings`` give."""
    # Every status each route answers with is documented (schemathesis checks it in the tests).
    x_audit = header_doc("committed, dropped, pending, queued, retrying or failed: see edge_service")
    audited = {200: {"headers": {"X-Audit": x_audit}}}
    classify_responses = audited | error_responses(400, 413, 422, 500, 503)
    limit = BodyLimit.for_texts(settings.body_limit, settings.max_texts, settings.max_chars, count_disconnect)
    add_bounded_post(
        app, "/v1/classify", classify, limit, response_model=ClassifyResponse, responses=classify_responses
    )
    small = BodyLimit(SMALL_BODY_BYTES, SMALL_BODY_ACCEPTED, on_disconnect=count_disconnect)
    feedback_responses = error_responses(400, 404, 413, 422, 500, 503, meanings=ONLY_THE_BYTE_LIMIT)
    add_bounded_post(
        app, "/v1/feedback", feedback, small, response_model=FeedbackResponse, responses=feedback_responses
    )
    reload_responses = error_responses(400, 401, 403, 404, 409, 413, 422, 500, 503, meanings=ONLY_THE_BYTE_LIMIT)
    add_bounded_post(
        app, "/admin/reload", admin_reload, small, response_model=ReloadResponse, responses=reload_responses
    )
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/readyz", readyz, methods=["GET"], responses=error_responses(503))
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=PlainTextResponse)
    app.add_api_route("/v1/monitor", monitor_report, methods=["GET"])


# ---------------------------------------------------------------- error handlers


def _count_error(request: Request, kind: str) -> None:
    service: EdgeService | None = getattr(request.app.state, "service", None)
    if service is not None:
        service.metrics.errors.labels(kind).inc()


def count_disconnect(request: Request) -> None:
    """Count a client that went away before sending its whole body (it gets no answer: nobody would read it)."""
    _count_error(request, "client_disconnected")


async def on_hybrid_error(request: Request, exc: Exception) -> JSONResponse:
    """Map our errors to their status (see :data:`STATUS_BY_ERROR`)."""
    status, kind = status_for(cast(HybridError, exc))  # registered for HybridError only
    if status >= 500 and status != 503:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    _count_error(request, kind)
    response = error_response(status, kind, str(exc))
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, BodyTooLarge):  # the rest of the body is not wanted: do not read it to keep the connection
        response.headers["Connection"] = "close"
    return response


def accepted_body(request: Request) -> str:
    """What the route of ``request`` accepts as a body, in one line for error messages."""
    settings: EdgeSettings = request.app.state.service.settings
    if request.url.path == "/v1/classify":
        return accepted_classify(settings.max_texts, settings.max_chars)
    return "a JSON object with the documented fields and no others"


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 for a body of the wrong shape or type, or one that is not JSON at all."""
    errors = cast(RequestValidationError, exc).errors()  # registered for RequestValidationError only
    kind = "invalid_json" if any(is_not_json(e) for e in errors) else "validation_error"
    _count_error(request, kind)
    return error_response(422, kind, describe_validation_errors(errors, accepted_body(request)))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown routes, wrong methods and bodies that cannot be read as JSON, in our error shape."""
    http_error = cast(StarletteHTTPException, exc)  # registered for HTTPException only
    problem = unreadable_body(http_error) if http_error.status_code == 400 else None
    if problem is not None:
        _count_error(request, "invalid_json")
        return error_response(400, "invalid_json", describe_unreadable_body(problem, accepted_body(request)))
    message = (
        f"{request.method} {request.url.path}: {http_error.detail}; routes are POST /v1/classify, "
        "POST /v1/feedback, POST /admin/reload, GET /healthz, GET /readyz, GET /metrics and GET /v1/monitor"
    )
    _count_error(request, f"http_{http_error.status_code}")
    response = error_response(http_error.status_code, f"http_{http_error.status_code}", message)
    response.headers.update(http_error.headers or {})  # e.g. the Allow header of a 405 (RFC 9110)
    return response


async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Anything else is a bug: log it with its traceback and answer 500 in our shape."""
    logger.exception("%s %s failed unexpectedly", request.method, request.url.path)
    _count_error(request, "internal_error")
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; see the server log")


def add_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""
    app.add_exception_handler(HybridError, on_hybrid_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)


# ---------------------------------------------------------------- request counting


def route_label(path: str, served: frozenset[str]) -> str:
    """The route label of a request path: the path when the app serves it, else ``other`` (bounded labels).

    Example: route_label("/v1/classify", served) -> "/v1/classify"; route_label("/wp-admin", served) -> "other"
    """
    return path if path in served else OTHER_ROUTE


class HttpRequestCounter:
    """ASGI middleware counting each HTTP request once in ``hybridroute_http_requests_total``.

    By route and status class; a request that raised counts as 5xx (the app's last-resort handler answers 500
    outside this middleware), and one whose client went away before it was answered as ``none``.

    Args:
        app: the ASGI app inside.
        count: records one request as (route, status); it reads the service's metrics when called.
        served: the paths the app serves, kept as route labels.
    """

    def __init__(self, app: ASGIApp, count: Callable[[str, str], None], served: frozenset[str]) -> None:
        self.app, self.count, self.served = app, count, served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through, noting the status it was answered with."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def noting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        except Exception:
            status.append(500)
            raise
        finally:
            self.count(route_label(scope["path"], self.served), status_class(status[0]) if status else "none")


def count_http_request(app: FastAPI) -> Callable[[str, str], None]:
    """The counter :class:`HttpRequestCounter` calls: the app's service's ``http_requests`` by route and status."""

    def count(route: str, status: str) -> None:
        service: EdgeService | None = getattr(app.state, "service", None)
        if service is not None:
            service.metrics.http_requests.labels(route, status).inc()

    return count


# ---------------------------------------------------------------- factory


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the service's parts; at shutdown answer what is queued and commit every audit record."""
    service: EdgeService = app.state.service
    await service.start()
    try:
        yield
    finally:
        await service.stop()


def create_app(
    settings: EdgeSettings,
    hybrid: HybridClassifier | None = None,
    registry: CollectorRegistry | None = None,
    audit: AuditStore | None = None,
    *,
    load: Callable[[EdgeSettings], HybridClassifier] = open_hybrid_for,
    new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
) -> FastAPI:
    """Build the edge service's app.

    Args:
        settings: limits, batching, audit and reload settings.
        hybrid: a ready classifier (the CLI loads first to fail fast); None: ``load(settings)`` runs in the
            background at startup and ``/readyz`` answers 503 until it and the warm-up are done.
        registry: Prometheus registry for this app's metrics; a new one when None.
        audit: an audit store (the caller closes it); None opens ``settings.audit_url`` at startup.
        load: builds the classifier from settings; defaults to :func:`hybridroute.hybrid.open_hybrid`.
        new_id: makes request ids (random UUIDs by default).
    """
    app = FastAPI(title="hybridroute edge service", lifespan=lifespan)
    app.state.service = EdgeService(
        settings, hybrid, registry if registry is not None else CollectorRegistry(), audit, load, new_id
    )
    add_routes(app, settings)
    add_error_handlers(app)
    served = frozenset(str(getattr(route, "path", "")) for route in app.routes)
    app.add_middleware(HttpRequestCounter, count=count_http_request(app), served=served)
    install_openapi(app, lambda document: publish_limits(document, app.state.service))
    return app
