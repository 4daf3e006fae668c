"""SIGTERM as Ctrl-C while a benchmark holds child processes, so they are stopped and temporary folders removed.

By default SIGTERM kills Python at once: no ``finally`` runs, so servers a benchmark started keep running
(reparented to PID 1) and its temporary folders stay behind. Inside :func:`sigterm_interrupts` the first
SIGTERM raises ``KeyboardInterrupt`` in the main thread instead, which unwinds through the same clean-up as
Ctrl-C; a repeat while that clean-up runs is ignored (it is bounded: servers get a grace period, then SIGKILL).
The previous handler is put back on the way out.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` (once); outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a caller there decides
        return
    fired = False

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:  # a second SIGTERM must not cut the clean-up the first one started
            fired = True
            raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
