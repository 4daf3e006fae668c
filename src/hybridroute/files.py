"""Files replaced whole, and an exclusive lock for changes that must not interleave.

:func:`write_text_atomic` and :func:`write_bytes_atomic` replace a file so that readers see the old content or
the new, never part of it. :func:`exclusive_lock` holds an ``flock`` on a lock file for the length of a block,
so a read-modify-write by one process cannot overwrite another's (POSIX only: the project targets Linux).
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it and one rename; returns ``path``.

    Readers see the old content or the new, never part of it, and a crash (or a full disk) leaves the old file
    and at most a stray ``.NAME.*.tmp`` file. The file gets the usual permissions (umask), as
    ``Path.write_bytes`` gives.

    Example: write_bytes_atomic(Path("plot.png"), png) -> Path("plot.png")
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it the file
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` as :func:`write_bytes_atomic` does; returns ``path``.

    Example: write_text_atomic(Path("run.json"), "{}") -> Path("run.json")
    """
    return write_bytes_atomic(path, text.encode("utf-8"))


def _flock(fd: int, wait: bool, on_wait: Callable[[], None] | None) -> None:
    """Take an exclusive ``flock`` on ``fd``; held elsewhere: call ``on_wait`` and wait, or raise BlockingIOError."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            raise
        if on_wait is not None:
            on_wait()
        fcntl.flock(fd, fcntl.LOCK_EX)


def _lock_file(path: Path, wait: bool, on_wait: Callable[[], None] | None) -> int:
    """An open descriptor of the lock file ``path`` that is still the file at ``path``, with ``flock`` held.

    The holder deletes the lock file before releasing it (:func:`exclusive_lock`), so one who was waiting
    may get the lock of a deleted file: it then opens ``path`` afresh and tries again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _flock(fd, wait, on_wait)
            on_wait = None  # said once is enough
            with suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


@contextmanager
def exclusive_lock(path: Path, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path`` (created if needed) for the block; delete it after.

    Locks conflict between processes and between two holders in one process. A process that dies holding the
    lock (even ``kill -9``) releases it; its lock file stays until the next holder deletes it.

    Args:
        path: the lock file; its folder must exist.
        wait: wait for the holder to finish; False: raise ``BlockingIOError`` at once when the lock is held.
        on_wait: called once before waiting for another holder (to say why nothing happens for a while).

    Example: with exclusive_lock(Path("run/.run.json.lock")): read, change and write run.json
    """
    path = Path(path)
    fd = _lock_file(path, wait, on_wait)
    try:
        yield
    finally:
        with suppress(OSError):
            path.unlink()  # before the release, so a waiter that gets this file's lock sees it is gone
        os.close(fd)
