"""Run an ASGI app with uvicorn: in the foreground (the CLI) or on a background thread (tests, benchmarks).

The CLI binds its port with :func:`listen` before it loads the model (a port in use fails at once, in one
line), then serves with :func:`serve_foreground` (after :func:`freeze_startup_heap`), whose server drains on
SIGINT/SIGTERM and keeps draining through a second signal (see :class:`DrainingServer`).
:func:`serve_in_thread` is for code that needs a real HTTP server next to itself, on loopback, for a while.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Literal

import uvicorn

from hybridroute.errors import HybridError

logger = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Move every object alive now (imports, model, app) out of the garbage collector's view.

    Call it once in a serving process, after loading and before serving: the collector's
    full passes then stop rescanning tens of thousands of long-lived objects. In a served
    edge model under load (banking77, 400 req/s) the longest full pass fell from 44-49 ms,
    a p99-sized stall, to 8 ms. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)``; port 0 lets the OS pick a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``(host, port)`` for :func:`serve_foreground`; call it before loading, to fail fast.

    The socket only starts listening when serving starts, so clients are refused, not left waiting, while the
    model loads.

    Raises:
        HybridError: the address cannot be bound (in use, not an address of this machine, a privileged port).

    Example: listen("127.0.0.1", 8000) while another service listens there
        -> HybridError("cannot listen on 127.0.0.1:8000: address already in use; ...")
    """
    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise listen_error(host, port, exc) from exc


def listen_error(host: str, port: int, exc: OSError) -> HybridError:
    """The one-line error of an address that cannot be bound or listened on.

    Example: listen_error("0.0.0.0", 8000, OSError(errno.EADDRINUSE, "Address already in use"))
        -> HybridError("cannot listen on 0.0.0.0:8000: address already in use; stop what listens there ...")
    """
    where = host_port(host, port)
    if exc.errno == errno.EADDRINUSE:
        return HybridError(
            f"cannot listen on {where}: address already in use; stop what listens there or pick another --port"
        )
    reason = (exc.strerror or str(exc)).lower()
    return HybridError(f"cannot listen on {where}: {reason}; check --host and --port")


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets.

    Example: host_port("::1", 8000) -> "[::1]:8000"; host_port("127.0.0.1", 8000) -> "127.0.0.1:8000"
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def url_of(sock: socket.socket) -> str:
    """The base URL of a bound socket.

    Example: a socket bound to ("127.0.0.1", 8123) -> "http://127.0.0.1:8123"
    """
    return f"http://{host_port(*sock.getsockname()[:2])}"


# A graceful shutdown is cut short only at this many signals: a second one, sent by an impatient operator (or a
# supervisor that signals twice), must not skip the application's shutdown (batcher drain, audit flush).
FORCE_AT_SIGNAL = 3


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose graceful shutdown survives a second SIGINT/SIGTERM.

    uvicorn cuts its shutdown short at a second SIGINT: requests in flight are cancelled (a CancelledError
    traceback in the log) and the application's shutdown is skipped, so queued audit records are lost. Here
    the first signal starts the graceful shutdown, a second one only logs that the service is still draining,
    and the :data:`FORCE_AT_SIGNAL`-th forces the exit (SIGKILL always does).
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.signals_while_draining = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the graceful shutdown on the first signal; force it only at the :data:`FORCE_AT_SIGNAL`-th."""
        if not self.should_exit:
            super().handle_exit(sig, frame)  # graceful; the signal is re-raised once the server has stopped
            return
        self.signals_while_draining += 1
        name = signal.Signals(sig).name
        if self.signals_while_draining + 1 >= FORCE_AT_SIGNAL:
            logger.warning(
                "%s again: forcing the exit; requests in flight are cancelled and the application shutdown "
                "(audit flush) is skipped",
                name,
            )
            self.force_exit = True
            return
        logger.warning(
            "%s received while shutting down: still draining %d request(s) in flight, then the application "
            "shutdown (batcher drain, audit flush); send it once more to force the exit and skip them, or SIGKILL",
            name,
            len(self.server_state.tasks),
        )


def serve_foreground(app: Any, sock: socket.socket, **options: Any) -> None:
    """Serve ``app`` on ``sock`` (from :func:`listen`) in this thread until SIGINT/SIGTERM, draining gracefully.

    ``options``: :class:`uvicorn.Config`'s (``log_level``, ``access_log``, ``timeout_graceful_shutdown`` ...).
    As with ``uvicorn.run``, the first signal is raised again once the server has stopped (so SIGTERM ends the
    process with its usual status), and a SIGINT then ends it quietly.

    Raises:
        HybridError: the socket cannot listen, or the server did not start (the app's startup failed; uvicorn
            has logged why).
    """
    config = uvicorn.Config(app, **options)
    server = DrainingServer(config)
    host, port = sock.getsockname()[:2]
    try:
        sock.listen(config.backlog)  # a second process may have bound the same port (SO_REUSEADDR) meanwhile
    except OSError as exc:
        raise listen_error(host, port, exc) from exc
    logger.info("serving on %s (SIGINT or SIGTERM: finish requests in flight, then stop)", url_of(sock))
    with contextlib.suppress(KeyboardInterrupt):  # the SIGINT that stopped the server, raised again after it stopped
        server.run(sockets=[sock])
    if not server.started:
        raise HybridError("the server did not start (the application's startup failed); see the log above")


def wait_until_started(server: uvicorn.Server, thread: threading.Thread, timeout_s: float) -> None:
    """Block until uvicorn has started, or raise if its thread dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive():
            raise HybridError("uvicorn stopped during startup (did the app's lifespan fail?); see the log")
        if time.monotonic() > deadline:
            raise HybridError(f"uvicorn did not start within {timeout_s} s")
        time.sleep(0.005)


def run_server(server: uvicorn.Server, sock: socket.socket) -> None:
    """Run uvicorn on ``sock`` until it exits; a failed startup ends the thread quietly."""
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits when the app's startup fails; it has logged why
        logger.error("uvicorn exited with status %s", exc.code)


def stop_server(server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, timeout_s: float) -> bool:
    """Ask uvicorn to exit, wait up to ``timeout_s`` for its thread, close the socket; False if it still runs."""
    server.should_exit = True
    thread.join(timeout=timeout_s)
    sock.close()
    return not thread.is_alive()


@contextmanager
def serve_in_thread(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lifespan: Literal["on", "off", "auto"] = "on",
    startup_timeout_s: float = 30.0,
    graceful_shutdown_s: int = 1,
    stop_margin_s: float = 5.0,
) -> Iterator[str]:
    """Serve ``app`` on a background thread; yield its base URL; stop it on exit.

    Signal handlers stay with the main thread (uvicorn installs none off it), and
    logging is left as the caller configured it.

    Args:
        app: an ASGI app, such as one from ``create_app``.
        host: interface to listen on; loopback by default.
        port: port to listen on; 0 picks a free one.
        lifespan: "off" skips startup and shutdown (the app then never loads its model).
        startup_timeout_s: how long to wait for startup (model loading included).
        graceful_shutdown_s: how long requests still running at exit may take before being cancelled.
        stop_margin_s: how much longer than ``graceful_shutdown_s`` the app's shutdown may take at exit.

    Raises:
        HybridError: the server did not start (for example the lifespan failed to load a model), or it was
            still running ``graceful_shutdown_s + stop_margin_s`` after exit was asked for (logged instead
            when the ``with`` block is already raising, so that error is not hidden).
    """
    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app, lifespan=lifespan, log_config=None, access_log=False, timeout_graceful_shutdown=graceful_shutdown_s
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=run_server, args=(server, sock), name="uvicorn", daemon=True)
    thread.start()
    url = url_of(sock)
    raising = True
    try:
        wait_until_started(server, thread, startup_timeout_s)
        logger.debug("serving on %s", url)
        yield url
        raising = False
    finally:
        timeout_s = graceful_shutdown_s + stop_margin_s
        if not stop_server(server, thread, sock, timeout_s):
            message = (
                f"the server on {url} was still running {timeout_s:g} s after it was asked to stop "
                "(a request or the app's shutdown is stuck); its daemon thread is left behind"
            )
            logger.error("%s", message)
            if not raising:
                raise HybridError(message)
