"""Request bodies read within a byte limit, and parsed off the event loop when they are large.

FastAPI reads a route's whole body, however large, and parses it as JSON on the event loop before the
route's model validates it; every other request waits meanwhile. A route made with
:func:`bounded_body_route` reads its body first, through :class:`BoundedRequest`:

* a ``Content-Length`` over the limit is refused (413) before any of the body is read when the client sent
  ``Expect: 100-continue``: uvicorn sends ``100 Continue`` only when the app asks for the body, so a client
  that waits for it never sends one;
* a client that sends no ``Expect`` sends its whole body before it reads the answer (Python's http.client and
  urllib, requests, httpx). Closing the connection while that body still arrives makes the kernel reset it,
  and the client loses the 413 to the reset. So the rest of such a body is read and dropped, nothing kept,
  and the 413 is answered once it has all arrived (nginx's lingering close does the same), up to
  :data:`DRAIN_BYTES` of body in all; beyond that it is refused at once, as with ``Expect``;
* a body without a length (chunked) is read until it passes the limit, then refused; without ``Expect`` the
  rest of it is read and dropped first, likewise;
* a JSON body over ``off_loop_bytes`` is parsed in a worker thread;
* a key given twice in one object is refused (422 ``invalid_json``, see :class:`DuplicateKey`), not resolved
  last-wins; the check costs little on a body of texts, and up to twice the parse on one of many small objects;
* :attr:`BodyLimit.check` looks at the parsed JSON before the model validates it, so a body that is over a
  count limit (300,000 texts where 64 are accepted) is refused without validating each item on the loop;
* a client that goes away before it has sent its whole body gets no answer (nobody would read it); the
  route's :attr:`BodyLimit.on_disconnect` hears of it (the edge counts it as ``client_disconnected``).

What bounds the loop's stall is the byte limit. CPython's C JSON parser holds the GIL for a whole document,
so the worker thread does not shorten the parse's own stall (300,000 short strings, 3.6 MB: 20-30 ms; the
default classify limit, 7.68 MB, admits 630,000 of them, about 50 ms, or an object of 320,000 keys, about 125 ms;
a body of a few long texts: a few ms); it keeps the parse from running inside a loop callback, and a build of
Python without the GIL gains the rest. The pure-Python scanner (which hands the GIL over between values)
was measured and rejected: it costs 5-20x the CPU on bodies of many small values (1.5 s for 3.8 MB of
integers), and every GIL hand-over while it runs costs a concurrent request up to the 5 ms switch interval.

Errors keep the app's shape: the 413 is raised as :class:`BodyTooLarge` (a
:class:`~hybridroute.serving.schemas.RequestTooLarge`), and a body that is not JSON fails inside FastAPI's
handler exactly as before.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from hybridroute.config import RepeatedKey, unique_keys
from hybridroute.serving.schemas import RequestTooLarge, check_text_count, default_body_limit

logger = logging.getLogger(__name__)

# json.loads of 64 KiB takes about 0.2 ms (a short stall), about what handing it to a worker thread costs.
OFF_LOOP_BYTES = 64 * 1024
# Most bytes of a body over its limit read and dropped so that a client sending it whole sees the 413 (see the
# module's docstring). 8x the default classify limit (7.68 MB): a batch that overshoots it by any honest margin
# still gets its 413. Dropping keeps nothing (the server's RSS stays flat) and costs the loop little: 64 MiB took
# about 55 ms of CPU on loopback, in reads of uvicorn's buffer spread over the transfer. A client could tie up a
# connection as long with a slow body under the limit, so this opens nothing new. Past it, a client is more likely
# broken or hostile than mistaken, and may get a reset.
DRAIN_BYTES = 64 * 1024 * 1024

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class BodyTooLarge(RequestTooLarge):
    """A request body is over its route's byte limit (HTTP 413; the connection is closed after the answer)."""


@dataclass(frozen=True)
class BodyLimit:
    """How a route reads its body.

    Attributes:
        max_bytes: most bytes a body may hold (413 beyond).
        accepted: what fits, for the 413 message (e.g. "room for 64 texts of 10000 characters each").
        off_loop_bytes: JSON bodies larger than this are parsed in a worker thread.
        check: looks at the parsed JSON before the route's model validates it, and raises to refuse it
            (e.g. :class:`RequestTooLarge` for too many texts); not called for bodies that are not JSON.
        drain_bytes: most bytes of a body over ``max_bytes`` read and dropped before its 413, for a client that
            sends its whole body before reading (no ``Expect: 100-continue``); beyond, it is refused at once.
        on_disconnect: called with the request when the client goes away before sending its whole body (e.g. to
            count it); the request then gets no answer.
    """

    max_bytes: int
    accepted: str = ""
    off_loop_bytes: int = OFF_LOOP_BYTES
    check: Callable[[Any], None] | None = None
    drain_bytes: int = DRAIN_BYTES
    on_disconnect: Callable[[Request], None] | None = None

    @classmethod
    def for_texts(
        cls, max_bytes: int, max_texts: int, max_chars: int, on_disconnect: Callable[[Request], None] | None = None
    ) -> BodyLimit:
        """The limit of a ``{"texts": [...]}`` body: ``max_bytes``, and no more than ``max_texts`` texts (unvalidated).

        The 413 says there is room for ``max_texts`` texts of ``max_chars`` characters only when there is
        (``max_bytes`` at least :func:`~hybridroute.serving.schemas.default_body_limit`).

        Example: BodyLimit.for_texts(5000, 4, 50).refuse("6000 bytes")
            -> "body is 6000 bytes; at most 5000 bytes are accepted (room for 4 texts of 50 characters each; ...)";
            BodyLimit.for_texts(100, 4, 50).refuse("120 bytes")
            -> "body is 120 bytes; at most 100 bytes are accepted (set below what 4 texts of 50 characters need; ...)"
        """
        texts = f"{max_texts} texts of {max_chars} characters"
        if max_bytes >= default_body_limit(max_texts, max_chars):
            accepted = f"room for {texts} each; split the batch into smaller requests"
        else:
            accepted = f"set below what {texts} need; send fewer or shorter texts"
        check = functools.partial(check_text_count, max_texts=max_texts)
        return cls(max_bytes, accepted, check=check, on_disconnect=on_disconnect)

    def refuse(self, received: str) -> BodyTooLarge:
        """The 413 for a body of ``received`` size.

        Example: BodyLimit(100).refuse("120 bytes") -> BodyTooLarge("body is 120 bytes; at most 100 bytes ...")
        """
        fits = f" ({self.accepted})" if self.accepted else ""
        return BodyTooLarge(f"body is {received}; at most {self.max_bytes} bytes are accepted{fits}")


def declared_length(headers: Headers) -> int | None:
    """The body length a request declares; None without a Content-Length (chunked).

    Example: a request with "Content-Length: 12" -> 12; one with "Transfer-Encoding: chunked" -> None
    """
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None  # uvicorn refuses a malformed one before the app sees it


def expects_continue(headers: Headers) -> bool:
    """Whether a request waits for ``100 Continue`` before it sends its body.

    Example: a request with "Expect: 100-continue" -> True; one without an Expect header -> False
    """
    return headers.get("expect", "").strip().lower() == "100-continue"


async def discard(stream: AsyncIterator[bytes], received: int, most: int) -> tuple[int, bool]:
    """Read and drop ``stream`` until it ends or ``received`` passes ``most``: (bytes received, whether it ended).

    Example: a stream of three 10-byte chunks, received=0: most=25 -> (30, False); most=30 -> (30, True)
    """
    async for chunk in stream:
        received += len(chunk)
        if received > most:
            return received, False
    return received, True


# Ends the message of a repeated key (see :class:`DuplicateKey`), so an error handler can tell it from a syntax error.
DUPLICATE_KEY_HINT = "send each field once"


class DuplicateKey(json.JSONDecodeError):
    """A JSON body names the same key twice in one object.

    JSON parsers keep one of the two values (Python's the last), so a body like
    ``{"texts": ["a"], "texts": ["b", "c"]}`` would silently lose texts. A subclass of
    :class:`json.JSONDecodeError`, so FastAPI answers it as it answers any body that is not JSON
    (422 ``invalid_json``); its message is :data:`DUPLICATE_KEY_HINT`-terminated so the apps can word it.
    """

    def __init__(self, repeated: RepeatedKey, doc: str) -> None:
        super().__init__(f"{repeated}; {DUPLICATE_KEY_HINT}", doc, 0)


def parse_utf8_json(body: bytes) -> Any:
    """Parse a JSON body that must be UTF-8 (a leading UTF-8 byte order mark is allowed), each key once per object.

    ``json.loads`` on bytes would guess UTF-16 or UTF-32 too; the service accepts UTF-8 only. A NUL byte
    counts as not UTF-8: JSON text never holds one, and UTF-16 or UTF-32 text without a byte order mark
    (whose bytes are otherwise valid UTF-8) is full of them. A key repeated in one object is refused: the
    parser would keep only its last value, and drop the others without a word.

    Raises:
        UnicodeDecodeError: the body is not UTF-8 (a UTF-16 or UTF-32 body, Latin-1 text).
        DuplicateKey: an object names a key twice (a :class:`json.JSONDecodeError`).
        json.JSONDecodeError: the text is not JSON.
        RecursionError: the JSON nests too deeply.

    Example: parse_utf8_json('{"text": "hi"}'.encode("utf-16-le")) raises UnicodeDecodeError (byte 0x00 at 1);
        parse_utf8_json(b'{"texts": ["a"], "texts": ["b"]}') raises DuplicateKey("key 'texts' appears 2 times ...")
    """
    text = body.decode("utf-8-sig")
    nul = body.find(b"\x00")
    if nul >= 0:
        raise UnicodeDecodeError("utf-8", body, nul, nul + 1, "a NUL byte (UTF-16 or UTF-32 text?)")
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except RepeatedKey as exc:
        raise DuplicateKey(exc, text) from None


def is_json_media(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this content type as JSON.

    Example: is_json_media("application/problem+json; charset=utf-8") -> True; is_json_media("text/plain") -> False
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BoundedRequest(Request):
    """A request whose body is read within ``limit.max_bytes`` and parsed off the loop when large.

    The body and its parsed JSON are read once and kept, so FastAPI's handler, which asks for both,
    gets them without reading or parsing again. Errors are kept too and raised again to the next caller.
    """

    def __init__(self, scope: Scope, receive: Receive, limit: BodyLimit) -> None:
        super().__init__(scope, receive)
        self.limit = limit
        self._read: bytes | ClientDisconnect | None = None
        self._parsed: tuple[Any] | Exception | None = None

    async def body(self) -> bytes:
        """The whole body.

        Raises:
            BodyTooLarge: the declared or received length is over the limit (the rest of the body is read and
                dropped first when the client sends it whole, see :meth:`_drains`).
            ClientDisconnect: the client went away before sending it all.
        """
        if self._read is None:
            try:
                self._read = await self._read_within_limit()
            except ClientDisconnect as exc:
                self._read = exc
        if isinstance(self._read, ClientDisconnect):
            raise self._read
        return self._read

    async def json(self) -> Any:
        """The body parsed as JSON (in a worker thread above ``limit.off_loop_bytes``)."""
        if self._parsed is None:
            body = await self.body()
            try:
                if len(body) > self.limit.off_loop_bytes:
                    self._parsed = (await run_in_threadpool(parse_utf8_json, body),)
                else:
                    self._parsed = (parse_utf8_json(body),)
            except Exception as exc:  # not JSON, not UTF-8, nested too deeply: FastAPI's handler says which
                self._parsed = exc
        if isinstance(self._parsed, Exception):
            raise self._parsed
        return self._parsed[0]

    async def _read_within_limit(self) -> bytes:
        declared = declared_length(self.headers)
        if declared is not None and declared > self.limit.max_bytes:
            if self._drains(declared):
                async with contextlib.aclosing(self.stream()) as stream:
                    await discard(stream, 0, self.limit.drain_bytes)
            raise self.limit.refuse(f"{declared} bytes (its Content-Length)")
        chunks: list[bytes] = []
        size = 0
        async with contextlib.aclosing(self.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > self.limit.max_bytes:
                    chunks.clear()
                    raise self.limit.refuse(await self._received_past_limit(stream, size))
                chunks.append(chunk)
        return b"".join(chunks)

    def _drains(self, size: int) -> bool:
        """Whether a body over the limit, ``size`` bytes so far, is read to its end (and dropped) before its 413.

        Yes for a client that sends its whole body before reading the answer (no ``Expect: 100-continue``),
        which would otherwise lose the 413 to a reset, unless the body is larger than ``limit.drain_bytes``.
        """
        return size <= self.limit.drain_bytes and not expects_continue(self.headers)

    async def _received_past_limit(self, stream: AsyncIterator[bytes], size: int) -> str:
        """What was received of a chunked body past the limit, for its 413; the rest is dropped first if it drains."""
        if self._drains(size):
            size, ended = await discard(stream, size, self.limit.drain_bytes)
            if ended:
                return f"{size} bytes"
        return f"over {self.limit.max_bytes} bytes ({size} received when reading stopped)"


async def read_and_check(request: BoundedRequest) -> None:
    """Read the body within its limit and run the limit's check on its JSON (raises to refuse the request).

    A body that is not JSON is left to FastAPI's handler, which meets the same error when it parses the body
    and answers as it always has.

    Raises:
        BodyTooLarge: the body is over the limit.
        ClientDisconnect: the client went away before sending its whole body.
        Exception: what ``limit.check`` raises (e.g. RequestTooLarge).
    """
    await request.body()
    check = request.limit.check
    if check is None or not is_json_media(request.headers.get("content-type")):
        return
    try:
        parsed = await request.json()
    except Exception:  # kept by the request and raised again to FastAPI's handler
        return
    check(parsed)


class NoAnswer(Response):
    """The response to a client that went away before sending its whole body: nothing is sent.

    uvicorn sends nothing, and logs nothing, when an app ends a request without answering a client that is gone.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send nothing: nobody is listening."""


def client_gone(request: BoundedRequest) -> NoAnswer:
    """End a request whose client went away mid-body: tell ``limit.on_disconnect``, answer nothing.

    Not an error of the body (FastAPI would answer 400 "There was an error parsing the body" to nobody).
    """
    logger.debug("%s %s: the client went away before sending its whole body", request.method, request.url.path)
    if request.limit.on_disconnect is not None:
        request.limit.on_disconnect(request)
    return NoAnswer()


def bounded_body_route(limit: BodyLimit) -> type[APIRoute]:
    """A route class (for ``route_class_override``) whose routes read their bodies within ``limit`` first."""

    class BoundedBodyRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()
            if self.body_field is None:  # no body to read
                return handler

            async def bounded(request: Request) -> Response:
                bounded_request = BoundedRequest(request.scope, request.receive, limit)
                try:
                    await read_and_check(bounded_request)
                except ClientDisconnect:
                    return client_gone(bounded_request)
                return await handler(bounded_request)

            return bounded

    return BoundedBodyRoute


def add_bounded_post(app: FastAPI, path: str, endpoint: Callable[..., Any], limit: BodyLimit, **route: Any) -> None:
    """Register ``POST path`` on ``app``, its body read within ``limit``; ``route``: ``add_api_route``'s other options.

    Example: add_bounded_post(app, "/v1/feedback", feedback, BodyLimit(65_536), response_model=FeedbackResponse)
    """
    # app.router: FastAPI.add_api_route does not take route_class_override.
    app.router.add_api_route(path, endpoint, methods=["POST"], route_class_override=bounded_body_route(limit), **route)
