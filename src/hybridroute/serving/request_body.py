"""Request bodies read within a byte limit, and parsed off the event loop when they are large.

FastAPI reads a route's whole body, however large, and parses it as JSON on the event loop before the
route's model validates it; every other request waits meanwhile. A route made with
:func:`bounded_body_route` reads its body first, through :class:`BoundedRequest`:

* a ``Content-Length`` over the limit is refused (413) before any of the body is read: uvicorn sends
  ``100 Continue`` only when the app asks for the body, so a client that waits for it never sends one;
* a body without a length (chunked) is read until it passes the limit, then refused;
* a JSON body over ``off_loop_bytes`` is parsed in a worker thread;
* :attr:`BodyLimit.check` looks at the parsed JSON before the model validates it, so a body that is over a
  count limit (300,000 texts where 64 are accepted) is refused without validating each item on the loop.

What bounds the loop's stall is the byte limit. CPython's C JSON parser holds the GIL for a whole document,
so the worker thread does not shorten the parse's own stall (300,000 short strings, 3.6 MB: 20-30 ms; a
body of a few long texts: a few ms); it keeps the parse from running inside a loop callback, and a build of
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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from hybridroute.serving.schemas import RequestTooLarge, check_text_count

# json.loads of 64 KiB takes about 0.2 ms (a short stall), about what handing it to a worker thread costs.
OFF_LOOP_BYTES = 64 * 1024

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
    """

    max_bytes: int
    accepted: str = ""
    off_loop_bytes: int = OFF_LOOP_BYTES
    check: Callable[[Any], None] | None = None

    @classmethod
    def for_texts(cls, max_bytes: int, max_texts: int, max_chars: int) -> BodyLimit:
        """The limit of a ``{"texts": [...]}`` body: ``max_bytes``, and no more than ``max_texts`` texts (unvalidated).

        Example: BodyLimit.for_texts(5000, 4, 50).refuse("6000 bytes")
            -> "body is 6000 bytes; at most 5000 bytes are accepted (room for 4 texts of 50 characters each; ...)"
        """
        return cls(
            max_bytes,
            f"room for {max_texts} texts of {max_chars} characters each; split the batch into smaller requests",
            check=functools.partial(check_text_count, max_texts=max_texts),
        )

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
            BodyTooLarge: the declared or received length is over the limit (nothing more is read).
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
                    self._parsed = (await run_in_threadpool(json.loads, body),)
                else:
                    self._parsed = (json.loads(body),)
            except Exception as exc:  # not JSON, not UTF-8, nested too deeply: FastAPI's handler says which
                self._parsed = exc
        if isinstance(self._parsed, Exception):
            raise self._parsed
        return self._parsed[0]

    async def _read_within_limit(self) -> bytes:
        declared = declared_length(self.headers)
        if declared is not None and declared > self.limit.max_bytes:
            raise self.limit.refuse(f"{declared} bytes (its Content-Length)")
        chunks: list[bytes] = []
        size = 0
        async with contextlib.aclosing(self.stream()) as stream:
            async for chunk in stream:
                size += len(chunk)
                if size > self.limit.max_bytes:
                    raise self.limit.refuse(f"over {self.limit.max_bytes} bytes ({size} received when reading stopped)")
                chunks.append(chunk)
        return b"".join(chunks)


async def read_and_check(request: BoundedRequest) -> None:
    """Read the body within its limit and run the limit's check on its JSON (raises to refuse the request).

    A client that went away, or a body that is not JSON, is left to FastAPI's handler, which meets the same
    error when it reads the body and answers as it always has.
    """
    with contextlib.suppress(ClientDisconnect):
        await request.body()
    check = request.limit.check
    if check is None or not is_json_media(request.headers.get("content-type")):
        return
    try:
        parsed = await request.json()
    except Exception:  # kept by the request and raised again to FastAPI's handler
        return
    check(parsed)


def bounded_body_route(limit: BodyLimit) -> type[APIRoute]:
    """A route class (for ``route_class_override``) whose routes read their bodies within ``limit`` first."""

    class BoundedBodyRoute(APIRoute):
        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()
            if self.body_field is None:  # no body to read
                return handler

            async def bounded(request: Request) -> Response:
                bounded_request = BoundedRequest(request.scope, request.receive, limit)
                await read_and_check(bounded_request)
                return await handler(bounded_request)

            return bounded

    return BoundedBodyRoute


def add_bounded_post(app: FastAPI, path: str, endpoint: Callable[..., Any], limit: BodyLimit, **route: Any) -> None:
    """Register ``POST path`` on ``app``, its body read within ``limit``; ``route``: ``add_api_route``'s other options.

    Example: add_bounded_post(app, "/v1/feedback", feedback, BodyLimit(65_536), response_model=FeedbackResponse)
    """
    # app.router: FastAPI.add_api_route does not take route_class_override.
    app.router.add_api_route(path, endpoint, methods=["POST"], route_class_override=bounded_body_route(limit), **route)
