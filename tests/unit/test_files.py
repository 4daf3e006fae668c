"""Files replaced whole, and the exclusive lock: checked through the real filesystem and real processes.

A write "cut off midway" is a child process whose file-size limit (``RLIMIT_FSIZE``) stops the write after a
few bytes with ``EFBIG``: the state a crash or a full disk leaves, without guessing how the code writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hybridroute.files import exclusive_lock, write_bytes_atomic, write_text_atomic
from support.files import run_with_file_size_limit


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
