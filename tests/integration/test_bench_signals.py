"""SIGTERM stops a benchmark as Ctrl-C does: the processes it started are stopped, its temporary folders removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:200]
    except OSError:
        return "(gone)"


def _descendants(root: int) -> set[int]:
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    parents = {pid: _parent_of(pid) for pid in pids}
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _start(args: list[str], tmp: Path) -> subprocess.Popen[str]:
    env = os.environ | {"TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "hybridroute", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # a terminal's Ctrl-C would reach the whole group; SIGTERM reaches only the bench
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    """Give the bench Ctrl-C's default meaning, as in a terminal.

    A shell without job control starts background commands (``make test &``, some CI runners) with SIGINT
    ignored, and Python then leaves it ignored in every process below: Ctrl-C could not be tested there.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _read_until(process: subprocess.Popen[str], marker: str, timeout_s: float = 120.0) -> str:
    assert process.stdout is not None
    deadline, seen = time.monotonic() + timeout_s, ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen += line
        if marker in line:
            return seen
    process.kill()
    raise AssertionError(f"never printed {marker!r}:\n{seen}")


SIGNALS = [
    pytest.param(signal.SIGTERM, False, id="SIGTERM-to-the-bench"),  # kill, systemd, a CI runner's cancel
    pytest.param(signal.SIGINT, True, id="SIGINT-to-the-group"),  # Ctrl-C in a terminal
]


def _stop_and_check(process: subprocess.Popen[str], tmp: Path, prefix: str, signum: int, group: bool) -> str:
    children = _descendants(process.pid)
    assert children, "the benchmark started no process"
    assert list(tmp.glob(f"{prefix}*")), "the benchmark made no temporary folder"
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=60)
    finally:
        commands = {pid: _command(pid) for pid in children}
        deadline = time.monotonic() + 5.0  # multiprocessing's resource tracker exits once it sees the bench gone
        while any(map(_alive, children)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in children if _alive(pid)]
        for pid in left:  # never leave them to the next test
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"still running after the benchmark exited: {[commands[pid] for pid in left]}"
    assert list(tmp.glob(f"{prefix}*")) == []
    assert process.returncode == 1, output
    assert "Error: interrupted" in output and "Traceback" not in output, output
    return output


@pytest.mark.parametrize(("signum", "group"), SIGNALS)
def test_a_stopped_bench_load_stops_its_servers_and_clients(
    tiny_run: Path, tmp_path: Path, signum: int, group: bool
) -> None:
    args = ["bench", "load", "--run", str(tiny_run), "--duration", "60", "--warmup", "0.5"]
    process = _start([*args, "--concurrency", "2", "--processes", "1"], tmp_path)
    _read_until(process, "ready in")
    time.sleep(1.5)  # the clients are loading
    _stop_and_check(process, tmp_path, "hybridroute-load-", signum, group)


@pytest.mark.parametrize(("signum", "group"), SIGNALS)
def test_a_stopped_bench_compression_stops_its_child(
    tiny_run: Path, toy_csv: Path, tmp_path: Path, signum: int, group: bool
) -> None:
    args = ["bench", "compression", "--run", str(tiny_run), "--test", str(toy_csv), "--repeats", "100"]
    process = _start([*args, "--latency-queries", "100000"], tmp_path)
    _read_until(process, "latency repeat 1/100")
    _stop_and_check(process, tmp_path, "hybridroute-bench-", signum, group)


def test_sigterm_stops_both_services_of_bench_fuzz(tiny_run: Path, tmp_path: Path) -> None:
    process = _start(["bench", "fuzz", "--run", str(tiny_run), "--requests", "100000"], tmp_path)
    _read_until(process, "generating 100000 requests")
    _stop_and_check(process, tmp_path, "hybridroute-fuzz-", signal.SIGTERM, False)
