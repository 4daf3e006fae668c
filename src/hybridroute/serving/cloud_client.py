"""Call the cloud tier without letting it hurt the edge: bounded time, bounded retries, a breaker.

:class:`CloudClient` posts texts to a cloud app (see :mod:`.cloud_app`) and
never raises for network, HTTP or garbage-response problems: it returns a
:class:`CloudResult` with ``ok=False`` and a short reason code, so the caller
can fall back to the edge answer and count why. :class:`InProcessCloud` offers
the same interface around a classifier in this process (benchmarks, tests).

Reason codes (``CloudResult.error``):
    ``timeout``: an attempt got no complete answer within its time.
    ``connect_error``: nothing accepted the connection, or it was not made in time (nothing was sent).
    ``connection_error``: the connection was reset or closed before a full answer.
    ``transport_error``: another transport failure (proxy, TLS, ...).
    ``http_<status>``: the service answered with a status other than 200.
    ``malformed_response``: a 200 whose body breaks the contract, or a response httpx cannot read
        (a body its ``Content-Encoding`` does not describe, too many redirects).
    ``label_mismatch``: a valid answer whose label set differs from the one expected.
    ``budget_exhausted``: a retry was due but the call's time budget had run out.
    ``circuit_open``: the breaker is open; the network was not touched.
    ``inference_error``: the in-process model failed (:class:`InProcessCloud` only).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from hybridroute.config import check_positive, check_range
from hybridroute.errors import ConfigError, InferenceError
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.schemas import CloudClassifyResponse, ErrorBody, brief
from hybridroute.types import Prediction

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLASSIFY_PATH = "/v1/classify"

TIMEOUT = "timeout"
CONNECT_ERROR = "connect_error"
CONNECTION_ERROR = "connection_error"
TRANSPORT_ERROR = "transport_error"
MALFORMED_RESPONSE = "malformed_response"
LABEL_MISMATCH = "label_mismatch"
BUDGET_EXHAUSTED = "budget_exhausted"
CIRCUIT_OPEN = "circuit_open"
INFERENCE_ERROR = "inference_error"
TOO_LARGE = "http_413"

# Transient failures worth another try. A 4xx is our request's fault and would fail again.
RETRYABLE = frozenset({TIMEOUT, CONNECT_ERROR, CONNECTION_ERROR, TRANSPORT_ERROR, MALFORMED_RESPONSE})
MIN_ATTEMPT_S = 0.01  # with less time left than this, no round trip can finish: report the budget instead


def is_retryable(reason: str) -> bool:
    """Whether a failed attempt is worth repeating.

    Example: is_retryable("http_503") -> True; is_retryable("http_422") -> False
    """
    return reason in RETRYABLE or reason.startswith("http_5")


# ---------------------------------------------------------------- config


def check_http_url(name: str, url: str) -> None:
    """Raise unless ``url`` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(
            f"{name} is not a valid URL ({exc}); got {url!r}; expected one like http://cloud:8000"
        ) from exc
    try:
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError as exc:
        raise ConfigError(f"{name} has an invalid port ({exc}); got {url!r}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL with a host, like http://cloud:8000; got {url!r}")


@dataclass(frozen=True)
class ClientConfig:
    """Where the cloud tier is and how long and how often to try it.

    Attributes:
        url: base URL of the cloud app; the client posts to ``{url}/v1/classify``.
        timeout_s: the longest one attempt may take, connect to last byte.
        retries: extra attempts after a retryable failure (so at most ``retries + 1``).
        backoff_s: pause before the first retry, doubled before each further one.
        budget_s: the longest a whole call may take, attempts and pauses included.
        breaker_failures: consecutive failed calls that open the circuit.
        breaker_reset_s: how long the circuit stays open before one trial call.
        max_texts: most texts per request; a larger call goes as several requests in turn, within one budget.
            Keep it at or below the service's ``--max-batch``, beyond which it answers 413.
        max_chars: longer texts are cut to this many characters before they are sent (the model truncates
            anyway). Keep it at or below the service's ``--max-chars``, beyond which it answers 413.
    """

    url: str
    timeout_s: float = 1.0  # a healthy cloud answers a small batch well within it; a stuck one must not
    retries: int = 1  # one retry rides out a dropped connection or a replica restart; more feeds a sick one
    backoff_s: float = 0.05  # short: a customer is waiting, and the budget bounds the total anyway
    budget_s: float = 2.0  # the most an escalated query may add to its latency, retries included
    breaker_failures: int = 5  # tolerates isolated blips but stops hammering a service that is down
    breaker_reset_s: float = 10.0  # long enough for a replica to restart, short enough to recover soon after
    max_texts: int = 64  # the cloud service's default --max-batch
    max_chars: int = 10_000  # the cloud service's default --max-chars

    def __post_init__(self) -> None:
        check_http_url("url", self.url)
        check_range("timeout_s", self.timeout_s, 0.001, 600.0)
        check_range("retries", self.retries, 0, 10)
        check_range("backoff_s", self.backoff_s, 0.0, 60.0)
        check_range("budget_s", self.budget_s, MIN_ATTEMPT_S, 600.0)
        check_range("breaker_failures", self.breaker_failures, 1, 1_000_000)
        check_positive("breaker_reset_s", self.breaker_reset_s)
        check_range("max_texts", self.max_texts, 1, 4096)
        check_range("max_chars", self.max_chars, 1, 1_000_000)


# ---------------------------------------------------------------- circuit breaker


class BreakerState(str, enum.Enum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls are refused without touching the network
    HALF_OPEN = "half_open"  # one trial call decides between closed and open


class CircuitBreaker:
    """Stop calling a failing service for a while, then let one trial call through.

    closed --N consecutive failures--> open --reset_s later--> half-open
    half-open --trial succeeds--> closed; half-open --trial fails--> open (for reset_s again).

    Thread-safe; time comes from the injected ``clock`` (seconds, monotonic).
    """

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        check_range("failures", failures, 1, 1_000_000)
        check_positive("reset_s", reset_s)
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """The current state (an open circuit reads half-open once ``reset_s`` has passed)."""
        with self._lock:
            return self._current()

    def allow(self) -> bool:
        """Whether a call may go ahead now; in half-open, True for one trial call at a time."""
        with self._lock:
            state = self._current()
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN and not self._trial_pending():
                self._trial_started_at = self._clock()
                return True
            return False

    def record_success(self) -> None:
        """A call succeeded: close the circuit and forget earlier failures."""
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                logger.info("circuit closed: the cloud tier answered again")
            self._state = BreakerState.CLOSED
            self._consecutive = 0
            self._trial_started_at = None

    def record_failure(self) -> None:
        """A call failed: count it, and open the circuit on the N-th in a row or a failed trial."""
        with self._lock:
            state = self._current()
            if state is BreakerState.HALF_OPEN:
                self._open("the trial call failed")
            elif state is BreakerState.CLOSED:
                self._consecutive += 1
                if self._consecutive >= self.failures:
                    self._open(f"{self._consecutive} consecutive failures")

    def _current(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_s:
            self._state = BreakerState.HALF_OPEN
            self._trial_started_at = None
        return self._state

    def _trial_pending(self) -> bool:
        # A trial whose caller never reported back must not block the circuit forever.
        started = self._trial_started_at
        return started is not None and self._clock() - started < self.reset_s

    def _open(self, why: str) -> None:
        logger.warning("circuit opened for %.1f s: %s", self.reset_s, why)
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._consecutive = 0
        self._trial_started_at = None


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class CloudResult:
    """What one call to the cloud tier produced.

    Attributes:
        ok: True when ``predictions`` holds one prediction per text.
        predictions: the predictions, in input order; None when not ok.
        model_version: the cloud model's version; None when not ok. A call sent in several requests that
            straddled a model reload reports the last request's version here, and each prediction's in
            ``versions``.
        error: a short reason code (see the module docstring); None when ok.
        attempts: HTTP attempts made (0 when the breaker refused the call).
        latency_ms: wall-clock time of the whole call.
        detail: a human-readable explanation of ``error``, for logs.
        versions: each prediction's model version; empty when all are ``model_version``.
        ran: per text, whether a request carrying it reached the cloud, so its model may have run (a 3xx or
            4xx answer, a refused connection or an open circuit: it did not); empty: judged from ``error``.
        partial: when not ok, the predictions that did come back (None for each text that failed with
            ``error``); empty when none came back.
    """

    ok: bool
    predictions: list[Prediction] | None
    model_version: str | None
    error: str | None
    attempts: int
    latency_ms: float
    detail: str = ""
    versions: tuple[str, ...] = ()
    ran: tuple[bool, ...] = ()
    partial: tuple[Prediction | None, ...] = ()

    def version_of(self, k: int) -> str | None:
        """The version of the model that made prediction ``k``."""
        return self.versions[k] if self.versions else self.model_version

    def prediction_of(self, k: int) -> Prediction | None:
        """The cloud's prediction for text ``k``, or None when it has none."""
        if self.ok and self.predictions is not None:
            return self.predictions[k]
        return self.partial[k] if self.partial else None

    def model_ran(self, k: int) -> bool:
        """Whether the cloud model may have run for text ``k`` (so the call is charged)."""
        if self.ran:
            return self.ran[k]
        return self.attempts > 0 and not never_ran(self.error)


def never_ran(reason: str | None) -> bool:
    """Whether a failure means the cloud model cannot have run: nothing was sent, or it was refused unread.

    Example: never_ran("http_413") -> True; never_ran("http_503") -> False; never_ran("timeout") -> False
    """
    if reason is None:
        return False
    return reason in (CONNECT_ERROR, CIRCUIT_OPEN) or reason.startswith(("http_3", "http_4"))


class CloudBackend(Protocol):
    """Anything that classifies texts with the cloud model and reports how it went."""

    def classify(self, texts: Sequence[str]) -> CloudResult:
        """Classify ``texts``; report failures in the result instead of raising."""
        ...


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome: a valid response, or the reason it failed."""

    response: CloudClassifyResponse | None = None
    reason: str | None = None
    detail: str = ""
    versions: tuple[str, ...] = ()  # per prediction, when a split call's requests met different versions
    reached: bool = False  # whether the request reached the cloud, so its model may have run


# ---------------------------------------------------------------- pure helpers


def error_detail(status: int, content: bytes) -> str:
    """A short description of a non-200 answer, using our error body when there is one.

    Example: error_detail(503, b'{"error": {"type": "not_ready", "message": "loading"}}')
        -> "HTTP 503 not_ready: loading"
    """
    try:
        error = ErrorBody.model_validate_json(content).error
    except ValidationError:
        return f"HTTP {status}: {brief(content[:200])}"
    return f"HTTP {status} {error.type}: {error.message}"


def read_response(status: int, content: bytes, n_texts: int, expected_labels: frozenset[str] | None) -> Attempt:
    """Judge one HTTP answer strictly: status, JSON shape, types, count and labels.

    Example: read_response(200, b"not json", 1, None) -> Attempt(reason="malformed_response", ...)
    """
    if status != 200:
        reason = f"http_{status}"
        return Attempt(reason=reason, detail=error_detail(status, content), reached=not never_ran(reason))
    try:
        body = CloudClassifyResponse.model_validate_json(content, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        detail = f"{where}: {first['msg']}{more}"
        return Attempt(reason=MALFORMED_RESPONSE, detail=detail, reached=True)
    problem = body.inconsistency(n_texts)
    if problem:
        return Attempt(reason=MALFORMED_RESPONSE, detail=problem, reached=True)
    if expected_labels is not None and set(body.labels) != expected_labels:
        detail = f"cloud labels {sorted(body.labels)} differ from the expected {sorted(expected_labels)}"
        return Attempt(reason=LABEL_MISMATCH, detail=detail, reached=True)
    return Attempt(response=body, reached=True)


def transport_reason(exc: httpx.TransportError) -> str:
    """The reason code for an httpx transport error.

    Example: transport_reason(httpx.ConnectTimeout("slow")) -> "connect_error"
    """
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return CONNECT_ERROR  # nothing was sent
    if isinstance(exc, httpx.TimeoutException):
        return TIMEOUT
    if isinstance(exc, (httpx.NetworkError, httpx.ProtocolError)):
        return CONNECTION_ERROR
    return TRANSPORT_ERROR


def thread_safe_client(timeout_s: float) -> httpx.Client:
    """An httpx client that threads can share without the pool closing a connection under a request.

    httpcore 1.0's pool may close an idle keep-alive connection it has just handed to a waiting
    request (a surplus above ``max_keepalive_connections``, or room made at ``max_connections``):
    that request then fails with "Bad file descriptor" (encode/httpcore#1110). Without those
    limits the pool never closes a connection for room; it holds at most one per calling thread.
    """
    return httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))


def call_with_deadline(fn: Callable[[], T], timeout_s: float) -> T:
    """Run ``fn`` in a daemon thread and wait at most ``timeout_s`` for its result.

    httpx timeouts apply to each network operation (connect, each read), so a
    server that trickles bytes could hold a request far beyond them; waiting
    from outside makes the bound hard. A thread left behind ends on its own
    httpx timeouts.

    Raises:
        concurrent.futures.TimeoutError: ``fn`` did not finish in time.
        Exception: whatever ``fn`` raised.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:  # handed to the waiting caller, who re-raises it
            future.set_exception(exc)

    threading.Thread(target=work, name="cloud-client-attempt", daemon=True).start()
    return future.result(timeout=timeout_s)


# ---------------------------------------------------------------- clients


class CloudClient:
    """Synchronous client for the cloud tier's ``POST /v1/classify``.

    Each call has a hard wall-clock budget (``budget_s``) covering every
    attempt and pause; each attempt gets ``min(timeout_s, budget left)``.
    Retryable failures (connect errors, timeouts, dropped connections, 5xx,
    malformed bodies) are retried with exponential backoff; 4xx and label
    mismatches are not. A circuit breaker refuses calls after repeated
    failures. Safe to share between threads.

    Example:
        with CloudClient(ClientConfig("http://cloud:8000")) as cloud:
            result = cloud.classify(["where is my refund?"])
            label = result.predictions[0].label if result.ok else edge_label
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        expected_labels: Sequence[str] | None = None,
        breaker: CircuitBreaker | None = None,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Build a client.

        Args:
            config: where the service is and the time limits.
            expected_labels: if given, an answer whose label set differs is refused (``label_mismatch``);
                pass the edge model's labels so the two tiers always speak about the same classes.
            breaker: a breaker to share or to drive with a fake clock; by default one from ``config``.
            http_client: an ``httpx.Client`` to send with (TLS client certificates, a custom CA, proxies,
                or one pool shared by several clients); the caller closes it. By default the client
                builds and owns one (building one costs ~0.1 s: keep clients long-lived).
            clock: monotonic seconds, for the budget and latency.
            sleep: how to pause between attempts.
        """
        self.config = config
        self.expected_labels = frozenset(expected_labels) if expected_labels is not None else None
        self.breaker = breaker or CircuitBreaker(config.breaker_failures, config.breaker_reset_s)
        self._clock = clock
        self._sleep = sleep
        self._endpoint = config.url.rstrip("/") + CLASSIFY_PATH
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else thread_safe_client(config.timeout_s)

    def classify(self, texts: Sequence[str]) -> CloudResult:
        """Classify ``texts`` with the cloud model; never raises for network, HTTP or body problems.

        Args:
            texts: texts to classify (already redacted); an empty list answers at once. Texts longer than
                ``max_chars`` are cut to it.

        Returns:
            ok with one prediction per text, or not ok with a reason code in ``error`` (and, in ``partial``,
            the predictions of the texts whose requests did succeed).
        """
        started = self._clock()
        texts = [t[: self.config.max_chars] for t in texts]
        if not texts:
            return CloudResult(True, [], None, None, 0, 0.0)
        if not self.breaker.allow():
            refused = Attempt(reason=CIRCUIT_OPEN, detail="circuit open; not calling")
            return self._failed(started, refused, 0, _Collected.empty(len(texts)))
        collected = _Collected.empty(len(texts))
        self._call_in_chunks(texts, collected, deadline=started + self.config.budget_s)
        self._record(collected.failure)
        return self._result(started, collected)

    def close(self) -> None:
        """Close the connection pool, unless it was handed in."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _call_in_chunks(self, texts: list[str], collected: _Collected, deadline: float) -> None:
        """One request per ``max_texts`` texts, each with its retries; a failing chunk stops the rest.

        A chunk refused as too large (413) is sent again one text at a time, so only the text the
        service will not take fails.
        """
        size = self.config.max_texts
        for start in range(0, len(texts), size):
            chunk = texts[start : start + size]
            outcome = self._call_with_retries(chunk, deadline, collected)
            if outcome.reason == TOO_LARGE and len(chunk) > 1:
                outcome = self._one_by_one(chunk, start, deadline, collected)
            else:
                collected.take(start, len(chunk), outcome)
            if outcome.response is None and outcome.reason != TOO_LARGE:
                return

    def _one_by_one(self, chunk: list[str], start: int, deadline: float, collected: _Collected) -> Attempt:
        """Send each text of a chunk refused as too large on its own; the outcome that ended the round."""
        outcome = Attempt(reason=TOO_LARGE)
        for k, text in enumerate(chunk, start):
            outcome = self._call_with_retries([text], deadline, collected)
            collected.take(k, 1, outcome)
            if outcome.response is None and outcome.reason != TOO_LARGE:
                break
        return outcome

    def _call_with_retries(self, texts: list[str], deadline: float, collected: _Collected) -> Attempt:
        """One request with its retries; the attempts are counted in ``collected``."""
        attempts = 0
        reached = False
        while True:
            left = deadline - self._clock()
            if left < MIN_ATTEMPT_S:
                detail = f"{self.config.budget_s} s budget used up"
                return Attempt(reason=BUDGET_EXHAUSTED, detail=detail, reached=reached)
            attempts += 1
            collected.attempts += 1
            outcome = self._attempt(texts, min(self.config.timeout_s, left))
            reached = reached or outcome.reached
            if outcome.reason is None or not is_retryable(outcome.reason) or attempts > self.config.retries:
                return dataclasses.replace(outcome, reached=reached)
            pause = self.config.backoff_s * 2 ** (attempts - 1)
            if deadline - self._clock() - pause < MIN_ATTEMPT_S:
                detail = (
                    f"no time left in the {self.config.budget_s} s budget to retry "
                    f"after {outcome.reason} ({outcome.detail})"
                )
                return Attempt(reason=BUDGET_EXHAUSTED, detail=detail, reached=reached)
            logger.debug("cloud attempt %d failed (%s); retrying in %.3f s", attempts, outcome.reason, pause)
            self._sleep(pause)

    def _attempt(self, texts: list[str], timeout_s: float) -> Attempt:
        progress = Progress()
        try:
            response = call_with_deadline(lambda: self._post(texts, timeout_s, progress), timeout_s)
        except concurrent.futures.TimeoutError:
            if progress.connecting and not progress.sent:
                detail = f"no connection within {timeout_s * 1000:.0f} ms"
                return Attempt(reason=CONNECT_ERROR, detail=detail)
            detail = f"no complete answer within {timeout_s * 1000:.0f} ms"
            return Attempt(reason=TIMEOUT, detail=detail, reached=progress.sent or not progress.connecting)
        except httpx.TransportError as exc:
            unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
            return Attempt(reason=transport_reason(exc), detail=f"{type(exc).__name__}: {exc}", reached=not unsent)
        except httpx.HTTPError as exc:  # e.g. DecodingError: a body its Content-Encoding does not describe
            detail = f"unreadable response ({type(exc).__name__}: {exc})"
            return Attempt(reason=MALFORMED_RESPONSE, detail=detail, reached=True)
        return read_response(response.status_code, response.content, len(texts), self.expected_labels)

    def _post(self, texts: list[str], timeout_s: float, progress: Progress) -> httpx.Response:
        extensions = {"trace": progress}
        return self._http.post(self._endpoint, json={"texts": texts}, timeout=timeout_s, extensions=extensions)

    def _record(self, failure: Attempt | None) -> None:
        reason = None if failure is None else failure.reason
        # A 4xx means the service is up and judged our request; it says nothing against the service.
        if reason is None or reason.startswith("http_4"):
            self.breaker.record_success()
        else:
            self.breaker.record_failure()

    def _result(self, started: float, collected: _Collected) -> CloudResult:
        if collected.failure is not None:
            return self._failed(started, collected.failure, collected.attempts, collected)
        latency_ms = (self._clock() - started) * 1000.0
        predictions = [p for p in collected.predictions if p is not None]
        version = collected.versions[-1]
        versions = tuple(v or "" for v in collected.versions)
        if len(set(versions)) > 1:
            logger.info("the cloud model changed during a call of several requests")
        else:
            versions = ()
        ran = tuple(collected.ran)
        return CloudResult(True, predictions, version, None, collected.attempts, latency_ms, versions=versions, ran=ran)

    def _failed(self, started: float, failure: Attempt, attempts: int, collected: _Collected) -> CloudResult:
        latency_ms = (self._clock() - started) * 1000.0
        log = logger.debug if failure.reason == CIRCUIT_OPEN else logger.warning
        log(
            "cloud call failed (%s) after %d attempts in %.0f ms: %s",
            failure.reason,
            attempts,
            latency_ms,
            failure.detail,
        )
        partial = tuple(collected.predictions) if any(p is not None for p in collected.predictions) else ()
        versions = tuple(v or "" for v in collected.versions) if partial else ()
        return CloudResult(
            False,
            None,
            None,
            failure.reason,
            attempts,
            latency_ms,
            failure.detail,
            versions=versions,
            ran=tuple(collected.ran),
            partial=partial,
        )


class Progress:
    """How far one request got, from httpcore's trace events: connecting, then sending."""

    def __init__(self) -> None:
        self.connecting = False
        self.sent = False

    def __call__(self, event: str, _info: dict[str, object]) -> None:
        """Note one trace event (``connection.connect_tcp.started``, ``http11.send_request_headers.started``...)."""
        if ".connect_" in event:
            self.connecting = True
        elif ".send_request" in event:
            self.sent = True


@dataclass
class _Collected:
    """What the requests of one call brought back, text by text."""

    predictions: list[Prediction | None]
    versions: list[str | None]
    ran: list[bool]
    attempts: int = 0
    failure: Attempt | None = None  # the last failed request's outcome

    @classmethod
    def empty(cls, n: int) -> _Collected:
        return cls([None] * n, [None] * n, [False] * n)

    def take(self, start: int, n: int, outcome: Attempt) -> None:
        """Record the outcome of one request that carried ``n`` texts from ``start`` on."""
        body = outcome.response
        if body is None:
            self.failure = outcome
            for k in range(start, start + n):
                self.ran[k] = outcome.reached
            return
        for k, p in enumerate(body.predictions):
            self.predictions[start + k] = p.to_prediction()
            self.versions[start + k] = body.model_version
            self.ran[start + k] = True


class InProcessCloud:
    """The cloud model run in this process, behind the same interface as :class:`CloudClient`."""

    def __init__(self, classifier: EdgeClassifier, clock: Callable[[], float] = time.perf_counter) -> None:
        """Wrap a loaded classifier (for example ``EdgeClassifier.from_dir(cloud_bundle)``)."""
        self.classifier = classifier
        self._clock = clock

    def classify(self, texts: Sequence[str]) -> CloudResult:
        """Classify ``texts`` in process; an inference failure is reported, not raised."""
        started = self._clock()
        try:
            predictions = self.classifier.predict(list(texts))
        except InferenceError as exc:
            latency_ms = (self._clock() - started) * 1000.0
            logger.warning("in-process cloud model failed: %s", exc)
            return CloudResult(False, None, None, INFERENCE_ERROR, 1, latency_ms, str(exc))
        latency_ms = (self._clock() - started) * 1000.0
        return CloudResult(True, predictions, self.classifier.model_version, None, 1, latency_ms)

    def close(self) -> None:
        """Nothing to release; here for symmetry with :class:`CloudClient`."""
