"""Files replaced whole, and an exclusive lock for changes that must not interleave.

:func:`write_text_atomic` and :func:`write_bytes_atomic` replace a file so that readers see the old content or
the new, never part of it. :func:`exclusive_lock` holds an ``flock`` on a lock file for the length of a block,
so a read-modify-write by one process cannot overwrite another's (POSIX only: the project targets Linux).
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# Why a file or folder cannot be changed by this process: permissions (another user's) or a read-only mount.
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _written_in_place(path: Path) -> bool:
    """Whether ``path`` names something to write into rather than a file to replace.

    That is a FIFO, a terminal or another device, or anything under ``/dev`` or ``/proc``: ``/dev/stdout`` may be
    a regular file the shell opened, and replacing that file would cut the command's later output off from it.

    Example: _written_in_place(Path("/dev/stdout")) -> True; _written_in_place(Path("run.json")) -> False
    """
    if os.path.abspath(path).startswith(("/dev/", "/proc/")):
        return True
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:  # nothing there yet (or a link to nothing): a new file
        return False


def _mode_of(path: Path) -> int | None:
    """The permission bits of the existing file ``path``, or None when there is none (umask then applies)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it and one rename; returns ``path``.

    Readers see the old content or the new, never part of it, and a crash (or a full disk) leaves the old file
    and at most a stray ``.NAME.*.tmp`` file. What a plain write keeps is kept: a symbolic link stays a link
    (the file it points to is the one replaced), and an existing file keeps its permissions; a new file gets
    the usual ones (umask), as ``Path.write_bytes`` gives. A target that is not a regular file (a FIFO,
    ``/dev/stdout``) cannot be replaced, so it is written directly, as a plain write would.

    Example: write_bytes_atomic(Path("plot.png"), png) -> Path("plot.png")
    """
    path = Path(path)
    if _written_in_place(path):
        with path.open("wb") as handle:
            handle.write(data)
        return path
    target = Path(os.path.realpath(path))
    temp = _temp_beside(target)
    try:
        _write_whole(temp, data, _mode_of(target))  # an owner-only file (an audit export) stays owner-only
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    return path


def create_bytes_atomic(path: Path, data: bytes, mode: int) -> bool:
    """Create ``path`` holding ``data`` with permissions ``mode``, whole, unless it exists; False when it did.

    The data is written to a temporary file beside it, then hard-linked to ``path``: unlike a rename, a link
    never replaces a file another process created meanwhile, so the first creator wins and a crash leaves no
    file or a whole one.

    Example: create_bytes_atomic(Path("audit.salt"), b"ab12", 0o600) -> True, then False
    """
    path = Path(path)
    temp = _temp_beside(path)
    try:
        _write_whole(temp, data, mode)
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        with suppress(OSError):
            temp.unlink()
    return True


def _temp_beside(path: Path) -> Path:
    """A new temporary file name in ``path``'s folder, hidden and unique to this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _write_whole(temp: Path, data: bytes, mode: int | None) -> None:
    """Create ``temp`` with ``data`` on disk (synced), permissions ``mode`` (None: the umask's)."""
    with temp.open("xb") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())  # the data is on disk before a rename or link gives it its name


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


def _open_lock_file(path: Path) -> int:
    """A descriptor of the lock file ``path``, created if missing (0o666 less the umask).

    An existing lock file this process may not write (another user's, or on a read-only mount) is opened for
    reading: ``flock`` needs only an open file, so a shared run folder or a read-only service still sees who
    holds the lock. The umask decides who else may write a new one: 0o002 in a folder shared by a group.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno not in NOT_WRITABLE:
            raise
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise exc from None  # none there, and none can be made: why it cannot be made is the news


def _lock_file(path: Path, wait: bool, on_wait: Callable[[], None] | None) -> int:
    """An open descriptor of the lock file ``path`` that is still the file at ``path``, with ``flock`` held.

    The holder deletes the lock file before releasing it (:func:`exclusive_lock`), so one who was waiting
    may get the lock of a deleted file: it then opens ``path`` afresh and tries again.
    """
    while True:
        fd = _open_lock_file(path)
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
    lock (even ``kill -9``) releases it; its lock file stays until the next holder deletes it. A lock file this
    process cannot write (another user's, one on a read-only mount) is opened for reading and locked all the same.

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
