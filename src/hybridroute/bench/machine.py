"""Describe the machine a benchmark ran on, so every published number carries its context.

Reads ``/proc`` where it exists and falls back to :mod:`platform` elsewhere; package
versions come from installed metadata, so nothing heavy is imported.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")
PACKAGES = ("numpy", "onnxruntime", "torch", "transformers", "tokenizers", "scikit-learn")


def parse_cpu_model(cpuinfo: str) -> str:
    r"""The first ``model name`` in /proc/cpuinfo text, or '' when there is none.

    Example: parse_cpu_model("model name\t: Intel Xeon\n") -> "Intel Xeon"
    """
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return ""


def parse_mem_total_gb(meminfo: str) -> float | None:
    r"""Total memory in GB (1e9 bytes) from /proc/meminfo text, or None when absent.

    Example: parse_mem_total_gb("MemTotal:  2000000 kB\n") -> 2.048
    """
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) * 1024 / 1e9, 3)
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (None for a package that is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def usable_cores() -> int | None:
    """Cores this process may run on (the CPU affinity mask), where the OS reports it."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def machine_info(
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    cpuinfo: Path = CPUINFO,
    meminfo: Path = MEMINFO,
) -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and library versions, and a UTC timestamp."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": parse_cpu_model(_read_text(cpuinfo)) or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gb": parse_mem_total_gb(_read_text(meminfo)),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
        "load_average_1m": round(load[0], 2) if load else None,  # on a shared machine, how busy it was
        "timestamp_utc": now().isoformat(timespec="seconds"),
    }


def machine_summary(info: dict[str, Any]) -> str:
    """One line for reports.

    Example: -> "Intel Xeon, 2 logical cores, 8.3 GB, Linux-6.1-x86_64, Python 3.11.9, onnxruntime 1.17.0"
    """
    versions = info.get("versions", {})
    libs = ", ".join(f"{name} {v}" for name, v in versions.items() if v and name in ("onnxruntime", "torch"))
    return (
        f"{info.get('cpu_model', '?')}, {info.get('logical_cores', '?')} logical cores, "
        f"{info.get('memory_gb', '?')} GB, {info.get('os', '?')}, Python {info.get('python', '?')}"
        + (f", {libs}" if libs else "")
    )
