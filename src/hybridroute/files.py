"""Files replaced whole, output paths checked before work, and an exclusive lock for changes that must not interleave.

:func:`write_text_atomic` and :func:`write_bytes_atomic` replace a file so that readers see the old content or
the new, never part of it. :func:`check_output_path` refuses an output path that cannot be written or that names
one of the command's inputs, before the work whose result would go there. :func:`exclusive_lock` holds an
``flock`` on a lock file for the length of a block, so a read-modify-write by one process cannot overwrite
another's (POSIX only: the project targets Linux).
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

from hybridroute.errors import ConfigError

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
    except BaseException as exc:
        with suppress(OSError):
            temp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename == str(temp):
            raise _naming(exc, path) from exc  # the temporary file is ours: the user knows the path they gave
        raise
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` again (same class, errno and reason), naming ``path`` instead of the temporary file beside it.

    Example: _naming(FileNotFoundError(2, "No such file or directory", ".x.csv.1.ab.tmp"), Path("x.csv"))
    -> FileNotFoundError(2, "No such file or directory", "x.csv")
    """
    return type(exc)(exc.errno, exc.strerror, str(path))


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


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file: the same file on disk when both exist, else the same resolved path.

    Example: same_file(Path("a.csv"), Path("./sub/../a.csv")) -> True; with ``l.csv`` a link to it, also True
    """
    try:
        return os.path.samefile(first, second)
    except OSError:  # one is not there (yet), or cannot be looked at: compare where the names lead
        return os.path.realpath(first) == os.path.realpath(second)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``Path("/")`` at worst).

    Example: _nearest_existing(Path("/tmp/new/sub/x.json")) -> Path("/tmp") when /tmp/new does not exist
    """
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def why_not_writable(path: Path) -> str | None:
    """Why the file ``path`` could not be written as :func:`write_bytes_atomic` writes it, or None when it could.

    It must name a file (not a folder), lie in a folder that exists or can be created (not under a regular
    file), and that folder must be writable by this process: the new file is made beside the old one. A FIFO or
    ``/dev/stdout`` is written into, so only its existence matters.

    Example: why_not_writable(Path("notes.txt/out.json")) -> "it lies under notes.txt, which is a file"
    """
    if not str(path) or path.name in ("", ".", ".."):
        return "it names no file"
    if path.is_dir():
        return "it is a folder"
    target = Path(os.path.realpath(path))
    folder = _nearest_existing(target.parent)
    if not folder.is_dir():
        return f"it lies under {folder}, which is a file"
    if _written_in_place(path):
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        made = "" if folder == target.parent else f" (it would hold the new folder {target.parent})"
        return f"the folder {folder} is not writable by this process{made}"
    return None


def check_output_path(path: Path, option: str, inputs: Mapping[str, Path | None] | None = None) -> None:
    """Refuse an output path before any work: one naming an input, or one that cannot be written.

    Args:
        path: where the command will write.
        option: how the user gave it, for the message (``--json``).
        inputs: what each input is, in words, and its path (None: not given), e.g.
            ``{"the test file given with --test": Path("t.csv")}``.

    Raises:
        ConfigError: the path is one of ``inputs`` (compared as files: links and ``..`` lead to the same one),
            or :func:`why_not_writable` has a reason.

    Example: check_output_path(Path("t.csv"), "--json", {"the test file given with --test": Path("t.csv")})
    -> ConfigError("--json t.csv is the test file given with --test; choose another file")
    """
    path = Path(path)
    for what, source in (inputs or {}).items():
        if source is not None and same_file(path, Path(source)):
            raise ConfigError(f"{option} {path} is {what}; choose another file")
    problem = why_not_writable(path)
    if problem is not None:
        raise ConfigError(
            f"{option} {path} cannot be written: {problem}; give a file name in a folder this process may write "
            "(missing folders are created)"
        )


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
