"""Files replaced whole, and the exclusive lock: checked through the real filesystem and real processes.

A write "cut off midway" is a child process whose file-size limit (``RLIMIT_FSIZE``) stops the write after a
few bytes with ``EFBIG``: the state a crash or a full disk leaves, without guessing how the code writes.
"Another user" is a child process that becomes user nobody when the tests run as root (whom permissions do not
stop), and otherwise the same user facing a file without write permission: either way it cannot write it.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridroute.errors import ConfigError
from hybridroute.files import (
    check_output_path,
    exclusive_lock,
    same_file,
    why_not_writable,
    write_bytes_atomic,
    write_text_atomic,
)
from support.files import run_with_file_size_limit
from support.users import BECOME_ANOTHER_USER, folder_anyone_may_enter


def test_write_text_atomic_replaces_the_content(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "a.json", "old")
    assert write_text_atomic(path, "new ü") == path
    assert path.read_text(encoding="utf-8") == "new ü"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("writer", ["write_text_atomic(path, 'x' * 10_000)", "write_bytes_atomic(path, b'x' * 10_000)"])
def test_a_write_cut_off_midway_leaves_the_previous_file(tmp_path: Path, writer: str) -> None:
    path = tmp_path / "result.json"
    path.write_text('{"old": true}\n', encoding="utf-8")
    result = run_with_file_size_limit(
        f"from pathlib import Path\nfrom hybridroute.files import write_bytes_atomic, write_text_atomic\n"
        f"path = Path({str(path)!r})\n",
        f"""
try:
    {writer}
except OSError as exc:
    print(exc.errno)
""",
    )
    assert result.stdout.strip() == "27", result.stderr  # EFBIG: the write really was cut off
    assert path.read_text(encoding="utf-8") == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left either


def test_write_bytes_atomic_gives_the_usual_permissions(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    written = write_bytes_atomic(tmp_path / "atomic", b"\x89PNG")
    assert written.read_bytes() == b"\x89PNG"
    assert written.stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_a_linked_file_stays_a_link_and_the_file_it_points_to_gets_the_content(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "router.json"
    shared.parent.mkdir()
    shared.write_text("old")
    link = tmp_path / "router.json"
    link.symlink_to(shared)
    write_text_atomic(link, "new")
    assert link.is_symlink() and link.resolve() == shared.resolve() and shared.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["router.json", "shared"]
    assert [p.name for p in shared.parent.iterdir()] == ["router.json"]  # no temporary file left


def test_an_existing_file_keeps_its_permissions(tmp_path: Path) -> None:
    """An audit export the user made owner-only must not come back world-readable."""
    umask = os.umask(0o022)
    try:
        path = tmp_path / "audit.csv"
        path.write_text("old rows")
        path.chmod(0o600)
        write_text_atomic(path, "new rows")
    finally:
        os.umask(umask)
    assert path.read_text() == "new rows" and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader is there, so the writer's open does not block
    try:
        write_text_atomic(fifo, "time,request_id\n1,a\n")
        received = os.read(reader, 1000)
    finally:
        os.close(reader)
    assert received == b"time,request_id\n1,a\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_device_path_is_written_into(tmp_path: Path) -> None:
    """``--csv /dev/fd/1``: the command's own output, not a file to replace (nor a temporary file beside it)."""
    code = "from pathlib import Path\nfrom hybridroute.files import write_text_atomic\n"
    code += "write_text_atomic(Path('/dev/fd/1'), 'time,request_id\\n')\nprint('done')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (0, "time,request_id\ndone\n"), result.stderr


def test_a_held_lock_refuses_a_second_holder_until_released_and_leaves_no_file(tmp_path: Path) -> None:
    lock = tmp_path / ".run.json.lock"
    with exclusive_lock(lock), pytest.raises(BlockingIOError), exclusive_lock(lock, wait=False):
        pass  # flock conflicts between two open files, even in one process
    with exclusive_lock(lock, wait=False):
        assert lock.exists()
    assert not lock.exists()


def test_a_waiting_holder_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    lock, order = tmp_path / "x.lock", []

    def second() -> None:
        with exclusive_lock(lock, on_wait=lambda: order.append("waiting")):
            order.append("second")

    with exclusive_lock(lock):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(10)
    assert order == ["waiting", "first", "second"] and not lock.exists()


def test_a_lock_left_by_a_killed_holder_is_free(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, os, time\nfd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    with pytest.raises(BlockingIOError), exclusive_lock(lock, wait=False):
        pass
    child.kill()
    child.wait()
    with exclusive_lock(lock, wait=False):
        pass
    assert not os.path.exists(lock)


def test_a_new_lock_file_is_writable_by_whoever_the_umask_allows(tmp_path: Path) -> None:
    """In a folder a team shares (umask 002) a teammate must be able to open the lock file one of them made."""
    umask = os.umask(0o002)
    try:
        with exclusive_lock(tmp_path / ".run.json.lock"):
            mode = stat.S_IMODE((tmp_path / ".run.json.lock").stat().st_mode)
    finally:
        os.umask(umask)
    assert mode == 0o664


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    with folder_anyone_may_enter() as folder:
        yield folder


def test_a_lock_file_another_user_made_is_locked_all_the_same(open_tmp: Path) -> None:
    """A teammate's lock file, left by a command killed while holding it, that this user may not write."""
    open_tmp.chmod(0o777)  # the shared folder: everyone may create and delete files in it
    lock = open_tmp / ".run.json.lock"
    lock.touch()
    lock.chmod(0o444)
    script = f"""
import os, sys
from pathlib import Path
from hybridroute.files import exclusive_lock
{BECOME_ANOTHER_USER}
lock = Path({str(lock)!r})
try:
    with exclusive_lock(lock, wait=False):
        print("got it while held", flush=True)
except BlockingIOError:
    print("held elsewhere", flush=True)
sys.stdin.readline()  # until the holder lets go
with exclusive_lock(lock, wait=False):
    print("got it", flush=True)
"""
    holder = os.open(lock, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline().strip()
    finally:
        fcntl.flock(holder, fcntl.LOCK_UN)
        os.close(holder)
        out, err = child.communicate("go\n", timeout=60)
    assert (first, child.returncode, out.strip()) == ("held elsewhere", 0, "got it"), err
    assert not lock.exists()  # the folder is writable, so the one who held it last deleted it


# ---------------------------------------------------------------- output paths checked before work


def test_an_output_that_is_an_input_is_refused_by_any_name(tmp_path: Path) -> None:
    data = tmp_path / "test.csv"
    data.write_text("text,label\n", encoding="utf-8")
    (tmp_path / "link.csv").symlink_to(data)
    (tmp_path / "sub").mkdir()
    inputs = {"the test file given with --test": data, "nothing given": None}
    for name in (data, tmp_path / "link.csv", tmp_path / "sub" / ".." / "test.csv"):
        with pytest.raises(ConfigError) as caught:
            check_output_path(name, "--json", inputs)
        assert str(caught.value) == f"--json {name} is the test file given with --test; choose another file"
    check_output_path(tmp_path / "other.json", "--json", inputs)  # another file is fine, even a new one
    assert same_file(tmp_path / "new.json", tmp_path / "sub" / ".." / "new.json")  # neither exists yet


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("afile/out.json", "it lies under {tmp}/afile, which is a file"),
        ("afile/deeper/out.json", "it lies under {tmp}/afile, which is a file"),
        ("afolder", "it is a folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused(tmp_path: Path, name: str, problem: str) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    (tmp_path / "afolder").mkdir()
    assert why_not_writable(tmp_path / name) == problem.format(tmp=tmp_path)
    with pytest.raises(ConfigError, match="cannot be written: it"):
        check_output_path(tmp_path / name, "--csv")


def test_an_output_must_name_a_file() -> None:
    assert why_not_writable(Path("")) == why_not_writable(Path("..")) == "it names no file"


def test_outputs_in_new_folders_and_devices_are_writable(tmp_path: Path) -> None:
    assert why_not_writable(tmp_path / "new" / "sub" / "out.json") is None
    assert why_not_writable(Path("/dev/stdout")) is None


def test_an_output_in_a_folder_this_user_may_not_write_is_refused(open_tmp: Path) -> None:
    """A read-only folder: refused before any work, naming the folder (and the folder it would have made)."""
    locked = open_tmp / "locked"
    locked.mkdir(mode=0o755)
    script = f"""
import os
from pathlib import Path
from hybridroute.files import why_not_writable
{BECOME_ANOTHER_USER}
print(why_not_writable(Path({str(locked / "out.json")!r})))
print(why_not_writable(Path({str(locked / "new" / "out.json")!r})))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines() == [
        f"the folder {locked} is not writable by this process",
        f"the folder {locked} is not writable by this process (it would hold the new folder {locked / 'new'})",
    ], done.stderr


def test_a_failed_write_names_the_path_given_not_the_temporary_file(tmp_path: Path, open_tmp: Path) -> None:
    missing = tmp_path / "no-such-folder" / "x.csv"
    with pytest.raises(FileNotFoundError) as caught:
        write_text_atomic(missing, "a")
    assert caught.value.filename == str(missing)
    locked = open_tmp / "locked"
    locked.mkdir(mode=0o755)
    script = f"""
import os
from pathlib import Path
from hybridroute.files import write_text_atomic
{BECOME_ANOTHER_USER}
try:
    write_text_atomic(Path({str(locked / "x.csv")!r}), "a")
except PermissionError as exc:
    print(exc.filename)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == str(locked / "x.csv"), done.stderr
