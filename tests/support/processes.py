"""Helpers for tests that run a service as its own process."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180.0) -> None:
    """Return once ``url``/readyz answers 200; fail with the log's tail if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout_s} s: {log.read_text(errors='replace')[-3000:]}")
