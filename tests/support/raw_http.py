"""HTTP as a client sees it: raw HTTP/1.1 over a socket (interim 100 Continue included), and our error shape."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


def error_of(response: httpx.Response) -> dict[str, str]:
    """The ``{"error": {"type", "message"}}`` of an error response, checking that it holds nothing else."""
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    error: dict[str, str] = body["error"]
    return error


@dataclass(frozen=True)
class Answer:
    """One response read off a raw connection."""

    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, str]:
        """The ``{"type", "message"}`` of an error answer."""
        error: dict[str, str] = json.loads(self.body)["error"]
        return error


def parse_answers(data: bytes) -> list[Answer]:
    """The responses in what a connection received, interim ones (100 Continue) included."""
    answers: list[Answer] = []
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return answers
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
        length = int(headers.get("content-length", "0"))
        answers.append(Answer(int(status_line.split()[1]), headers, rest[:length]))
        data = rest[length:]


@contextmanager
def connection(url: str) -> Iterator[socket.socket]:
    """A TCP connection to the server at ``url`` (``http://HOST:PORT``)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5.0) as sock:
        yield sock


def request_head(path: str, **headers: str) -> bytes:
    """The head of a JSON ``POST path``; ``Content_Length="12"`` adds ``Content-Length: 12``."""
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def receive_until_closed(sock: socket.socket, wait_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection, or until ``wait_s`` passes without it.

    A reset ends it too: a server that closes with bytes of ours unread (it refused a body we kept sending)
    makes its kernel answer them with a reset, after what it sent before.
    """
    sock.settimeout(wait_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:  # the server still waits for the body: what the tests are about
        pass
    except ConnectionResetError:
        pass
    return received


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n"


def post_whole_body(url: str, path: str, body: bytes, **headers: str) -> tuple[int, str] | str:
    """POST ``body`` as Python's http.client does: the whole body, then the answer (no ``Expect: 100-continue``).

    Returns the status and error type of the answer, or the name of the error the connection met instead
    (ConnectionResetError, BrokenPipeError: the server closed while the body was still arriving).
    """
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30.0)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        answer = json.loads(response.read())
        return response.status, answer["error"]["type"] if "error" in answer else "ok"
    except OSError as exc:
        return type(exc).__name__
    finally:
        conn.close()
