"""The load benchmark (``hybridroute bench load``): real HTTP load on loopback, with and without micro-batching.

How the load is made:

* it comes from ``processes`` separate client processes (spawned, so they share no
  interpreter lock with each other or with the caller), each running its share of
  ``concurrency`` client threads; a client holds one keep-alive connection
  (``http.client``) and sends single-text ``POST /v1/classify`` requests one after
  another (a closed loop: ``concurrency`` requests are in flight at any time);
* or, with ``rate_rps``, an open loop: the clients together offer that many requests
  a second, each sending at its share of the rate on a fixed schedule. A request's
  latency counts from the moment it was due, so a server that falls behind is
  charged for the queue it causes (no "coordinated omission"). This is how a
  latency target at a given throughput is checked: by Little's law, 32 closed-loop
  clients at 400 requests/s wait 80 ms on average, whatever the server. A client that
  falls behind its schedule cannot catch up after the window: the requests that fell
  due before the window closed but were never sent are counted (``unsent``), never
  dropped silently;
* all clients start together, load for ``warmup_s`` unmeasured, then ``duration_s``
  measured: a request counts when it is sent inside the measured window (in the open
  loop: when it was due), however late it completes. Each
  client stops sending when the window closes but waits for its request in flight (up
  to ``timeout_s``) before reporting, so a slow or hung server's last requests are
  counted, as latencies or as errors. Throughput is the successful requests sent in
  the window over its length. Each client also stops at its share of ``max_requests``,
  so a run is bounded in time and in count;
* a response other than 200, a timeout or a broken connection is an error, by kind.
  Errors of requests sent during the warm-up are not measured but reported apart, so
  a server that never answered cannot pass for one that made no errors;
* a client process that dies (at start-up or during the load) fails the run within a
  fraction of a second of its exit, naming the process and its exit code: the caller
  polls the processes while it waits for their reports.

What is measured, one configuration after the other on the same model:

* ``batched``: the edge service (``hybridroute serve edge``) with micro-batching;
* ``unbatched``: the same service with ``--max-batch 1`` (every request its own model call);
* ``plain``: the edge model behind a plain FastAPI handler (``bench plain-server``): a
  synchronous route that calls :meth:`EdgeClassifier.predict` on one text, on the
  server's thread pool, with no batcher, router, audit log or metrics.

Each is a URL the caller gives (an already-running server) or a server this module
starts from a run folder (:class:`ServerPlan`) on a free loopback port, loads, and
stops before the next. For a started server the CPU time it used over the measured
window is read from ``/proc`` (Linux): CPU milliseconds per request, and the cores it
kept busy. When both edge services are CPU-bound, the unbatched one's CPU per request
over the batched one's is the most batching can multiply throughput by on that machine.
Whether they were is the machine's busy share over the same window (``/proc/stat``: every
CPU, every process, load clients included): well below 100% means the configuration was
held back by something other than CPU (waits, the interpreter lock, its concurrency).
Started edge services write their audit log to a temporary folder, not to the run.
SIGTERM stops the benchmark as Ctrl-C does: the servers it started are stopped and
the temporary folder removed (see :mod:`.interrupt`).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import math
import multiprocessing
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hybridroute.bench.interrupt import sigterm_interrupts
from hybridroute.config import check_positive, check_range
from hybridroute.errors import ConfigError, HybridError

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0  # longest a live client process may take to start (a dead one is noticed at once)
POLL_S = 0.1  # how often the caller checks that its client processes are still alive
CONFIGURATIONS = ("batched", "unbatched", "plain")
PROC_STAT = Path("/proc/stat")
# A configuration that left more than a tenth of the machine's CPU idle was held back by something else.
CPU_BOUND_PCT = 90.0
DESCRIPTIONS = {
    "batched": "edge service, micro-batching on",
    "unbatched": "edge service, micro-batching off (max batch 1)",
    "plain": "the edge model behind a plain FastAPI handler (no batching, no audit)",
}
CLASSIFY_PATH = "/v1/classify"
SERVING_PACKAGES = ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "prometheus-client")
# Customer-service messages of the usual lengths, used when neither a run nor a text file gives texts.
DEFAULT_TEXTS = (
    "where is my order",
    "I was charged twice for the same purchase, please refund one of the payments",
    "how do I reset my password?",
    "my card was declined at the store even though I have money in my account",
    "thanks, the agent solved it quickly",
    "can I change the delivery address after ordering",
    "the app keeps crashing when I open the transfers page",
    "what is the exchange rate for a transfer to euros",
    "I lost my card yesterday, block it now",
    "why is there a fee on my statement",
    "terrible service, nobody answers the phone",
    "how long does a bank transfer take to arrive",
    "I want to close my account",
    "my top up did not go through but the money left my account",
    "is there a limit on cash withdrawals per day",
    "the package arrived damaged and the box was open, what should I do now",
)


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class LoadConfig:
    """How much load, for how long.

    Attributes:
        concurrency: client connections with one request in flight each.
        duration_s: measured seconds per configuration.
        warmup_s: unmeasured load before the measurement (connections open, caches and allocators warm).
        processes: client processes the connections are spread over.
        max_requests: most requests per configuration (warm-up included), split evenly across clients.
        timeout_s: longest a request may take before it counts as an error.
        rate_rps: open loop at this many requests/s in all; None: closed loop.
    """

    concurrency: int = 32  # the target load: 32 concurrent clients
    duration_s: float = 10.0
    warmup_s: float = 2.0
    processes: int = 2  # one per core of the 2-core target machine; the server shares them
    max_requests: int = 1_000_000
    timeout_s: float = 10.0
    rate_rps: float | None = None

    def __post_init__(self) -> None:
        check_range("concurrency", self.concurrency, 1, 4096)
        if self.rate_rps is not None:
            check_range("rate_rps", self.rate_rps, 0.1, 1_000_000.0)
        check_range("duration_s", self.duration_s, 0.1, 86_400.0)
        check_range("warmup_s", self.warmup_s, 0.0, 3600.0)
        check_range("processes", self.processes, 1, 256)
        check_range("max_requests", self.max_requests, 1, 10**9)
        check_positive("timeout_s", self.timeout_s)
        if self.processes > self.concurrency:
            raise ConfigError(f"processes ({self.processes}) must be <= concurrency ({self.concurrency})")
        if self.max_requests < self.concurrency:
            raise ConfigError(f"max_requests ({self.max_requests}) must be >= concurrency ({self.concurrency})")


@dataclass(frozen=True)
class ServerPlan:
    """How to start the servers from a run folder.

    Attributes:
        run: the run folder (its ``edge`` bundle is served).
        max_batch: the batched service's most texts per model call (the unbatched one uses 1).
        max_wait_ms: the batched service's longest wait to fill a batch.
        threads: ONNX Runtime intra-op threads for every server (0: its default).
        workers: model batches at once in the edge services (the unbatched one too: only batching differs).
        policy: routing policy of the edge services; ``always-edge`` measures edge-only traffic.
        startup_timeout_s: longest a server may take to become ready.
        replicas: server processes per configuration, each on a port of its own, sharing one audit database;
            the clients are spread evenly over them (each process has its own interpreter lock).
    """

    run: Path
    max_batch: int = 32
    max_wait_ms: float = 2.0
    threads: int = 0
    workers: int = 1
    policy: str | None = "always-edge"  # the target is stated for edge-only traffic
    startup_timeout_s: float = 180.0
    replicas: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        check_range("max_batch", self.max_batch, 2, 4096)  # 1 would make "batched" the unbatched baseline
        check_range("max_wait_ms", self.max_wait_ms, 0.0, 1000.0)
        check_range("threads", self.threads, 0, 1024)
        check_range("workers", self.workers, 1, 256)
        check_positive("startup_timeout_s", self.startup_timeout_s)
        check_range("replicas", self.replicas, 1, 64)
        if not (self.run / "edge").is_dir():
            raise ConfigError(f"{self.run} has no edge bundle (RUN/edge); give a trained run folder")


@dataclass(frozen=True)
class Target:
    """One configuration to load: already-running servers (``urls``, one per replica) or one to start (none)."""

    name: str
    urls: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """What the configuration is."""
        return DESCRIPTIONS[self.name]


# ---------------------------------------------------------------- pure helpers


def check_url(url: str) -> str:
    """The base URL without a trailing slash, or ConfigError for anything but ``http://host:port``.

    Example: check_url("http://127.0.0.1:8000/") -> "http://127.0.0.1:8000"
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"URL {url!r} must look like http://HOST:PORT (plain HTTP; the load stays on loopback)")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ConfigError(f"URL {url!r} has a bad port: {exc}") from exc
    return url.rstrip("/")


def address_of(url: str) -> tuple[str, int]:
    """Host and port of an ``http://`` URL (port 80 when absent).

    Example: address_of("http://127.0.0.1:8000") -> ("127.0.0.1", 8000)
    """
    parts = urlsplit(check_url(url))
    return str(parts.hostname), parts.port or 80


def split_clients(concurrency: int, processes: int) -> list[int]:
    """Clients per process, as even as possible.

    Example: split_clients(32, 3) -> [11, 11, 10]
    """
    base, extra = divmod(concurrency, processes)
    return [base + (1 if i < extra else 0) for i in range(processes)]


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of sorted values, interpolated linearly (numpy's default); None when empty.

    Example: percentile([1.0, 2.0, 3.0, 4.0], 50) -> 2.5
    """
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99, mean and max of latencies in ms (None each when there are none).

    Example: latency_summary([1.0, 3.0]) -> {"p50": 2.0, "p95": 2.9, "p99": 2.98, "mean": 2.0, "max": 3.0}
    """
    ordered = sorted(latencies_ms)
    summary = {f"p{q}": percentile(ordered, q) for q in (50, 95, 99)}
    summary["mean"] = sum(ordered) / len(ordered) if ordered else None
    summary["max"] = ordered[-1] if ordered else None
    return summary


def batch_totals(metrics_text: str) -> tuple[float, float]:
    r"""Texts and model batches so far, from the edge service's Prometheus text (summed over the scrapes it joins).

    Example: "hybridroute_batch_size_sum 64.0\nhybridroute_batch_size_count 4.0" -> (64.0, 4.0)
    """
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("hybridroute_batch_size_sum", "hybridroute_batch_size_count"):
            values[name] = values.get(name, 0.0) + float(value)
    return values.get("hybridroute_batch_size_sum", 0.0), values.get("hybridroute_batch_size_count", 0.0)


def mean_batch_size(metrics_text: str, before: str | None = None) -> float | None:
    r"""Mean texts per model batch since ``before`` (an earlier scrape), or ever; None when there were no batches.

    Example: mean_batch_size("hybridroute_batch_size_sum 64.0\nhybridroute_batch_size_count 4.0") -> 16.0
    """
    texts, batches = batch_totals(metrics_text)
    if before is not None:
        texts_before, batches_before = batch_totals(before)
        texts, batches = texts - texts_before, batches - batches_before
    return texts / batches if batches else None


def request_bodies(texts: Sequence[str]) -> list[bytes]:
    """One JSON body per text: ``{"text": ...}``; blank texts are left out.

    Example: request_bodies(["hi", " "]) -> [b'{"text": "hi"}']
    """
    bodies = [json.dumps({"text": t}).encode("utf-8") for t in texts if t.strip()]
    if not bodies:
        raise ConfigError("no non-blank texts to send")
    return bodies


def read_texts(path: Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file, one text per line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read texts from {path}: {exc}") from exc
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ConfigError(f"{path} holds no non-blank lines; give one text per line")
    return texts


def run_texts(run: Path) -> list[str]:
    """The run's stored validation texts (what the model was checked on), or the built-in messages."""
    from hybridroute.runs import RunLayout, load_saved_split

    try:
        return list(load_saved_split(RunLayout(Path(run))).validation.texts)
    except HybridError:
        return list(DEFAULT_TEXTS)


NOT_MEASURED = {
    "batched": "no --url and no --run to start it",
    "unbatched": "no --unbatched-url (an edge service started with --max-batch 1) and no --run to start it",
    "plain": "no --plain-url (hybridroute bench plain-server) and no --run to start it",
}
DEFINITIONS = {
    "throughput_rps": "successful requests sent in the measured window, per second of the window",
    "latency_ms": "of the successful requests sent in the measured window, each waited for up to the timeout even "
    "past the window's end; null when none succeeded (see ok, errors)",
    "warmup_errors": "failed requests sent during the unmeasured warm-up (not in errors)",
    "unsent": "open loop: requests due in the measured window that their client never sent (still waiting on earlier "
    "ones when the window closed); in neither ok, errors nor latency_ms, so throughput falls short of the offered "
    "rate by them; always 0 in the closed loop",
    "warmup_unsent": "open loop: requests due during the warm-up that were never sent (not in unsent)",
    "mean_batch_size": "texts per model batch of the edge service in the measured window (its /metrics scraped when "
    "the window opened and after the last request); null for the plain handler or when a scrape failed",
    "speedup": "batched throughput over unbatched / plain; null when either was not measured or served nothing",
    "replicas": "server processes of the configuration, each on its own port (url lists them), the clients spread "
    "evenly over them; the started ones share one audit database",
    "server_cpu_ms_per_request": "CPU time (user + system, every thread, every replica) of a server this benchmark "
    "started, from the window's opening to after the last request, per request sent in the window; null for a "
    "server given by URL or where /proc cannot be read",
    "server_cores": "that CPU time over the same wall-clock span: how many cores the server kept busy",
    "server_cpu_ratio": "server CPU per request of unbatched / plain over batched; when both services keep the CPU "
    "busy, the most batching can multiply throughput by on this machine; null when either was not measured",
    "machine_busy_pct": "share of this machine's CPU time (all CPUs, all processes, load clients included) that was "
    "not idle or waiting for I/O over the same span as server_cpu_ms_per_request (from /proc/stat; time stolen by a "
    "hypervisor counts as busy); well below 100 means the configuration was not CPU-bound; null where /proc/stat "
    "cannot be read",
    "not_measured": "each configuration left out (null above) and why",
}


def plan_targets(urls: dict[str, Sequence[str]], plan: ServerPlan | None) -> list[Target]:
    """The configurations to measure: each one's URLs (its replicas) when given, else a server started from ``plan``.

    Example: plan_targets({"batched": ["http://h:1"]}, None) -> [Target("batched", ("http://h:1",))]
    """
    unknown = set(urls) - set(CONFIGURATIONS)
    if unknown:
        raise ConfigError(f"unknown configurations {sorted(unknown)}; known: {', '.join(CONFIGURATIONS)}")
    targets = []
    for name in CONFIGURATIONS:
        given = tuple(check_url(url) for url in urls.get(name, ()) if url)
        if len(set(given)) < len(given):
            raise ConfigError(f"{name}: a URL is given twice ({', '.join(given)}); give each replica once")
        if given:
            targets.append(Target(name, given))
        elif plan is not None:
            targets.append(Target(name))
    if not targets:
        raise ConfigError("nothing to load: give --url of a running edge service, or --run RUN to start the servers")
    return targets


def check_replica_counts(targets: Sequence[Target], plan: ServerPlan | None, concurrency: int) -> None:
    """Refuse a configuration with more replicas (given URLs, or servers ``plan`` starts) than clients.

    Client i talks to replica i mod N, so a replica beyond the client count would get no load at all.
    Configurations given by URL count their URLs; ``plan`` counts only for the ones it starts.

    Example: check_replica_counts([Target("batched", ("http://h:1", "http://h:2"))], None, 1) -> ConfigError
    """
    for target in targets:
        replicas = len(target.urls) if target.urls else plan.replicas if plan is not None else 1
        if replicas > concurrency:
            raise ConfigError(
                f"{target.name}: replicas ({replicas}) must be <= concurrency ({concurrency}): each replica needs a "
                "client"
            )


# ---------------------------------------------------------------- results


@dataclass
class Tally:
    """What some clients saw: latencies of measured successes, measured errors by kind, requests sent.

    Attributes:
        latencies_ms: latency of each 200 response to a request sent in the measured window.
        errors: failures of requests sent in the measured window, by kind (``http_503``, ``TimeoutError``, ...).
        warmup_errors: failures of requests sent during the warm-up, by kind (not measured, but not hidden).
        sent: requests sent, warm-up included.
        unsent: open loop: requests due in the measured window that were never sent (the client fell behind).
        warmup_unsent: open loop: requests due during the warm-up that were never sent.
        ran_to_end: clients that were still sending when the measured window closed.
        last_stop: wall time the last client that hit its request cap stopped (0 when none did).
        failure: why the client process itself failed (None when it did not).
    """

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    ran_to_end: int = 0
    last_stop: float = 0.0
    failure: str | None = None
    unsent: int = 0
    warmup_unsent: int = 0

    def add(self, other: Tally) -> None:
        """Fold another tally into this one."""
        self.latencies_ms.extend(other.latencies_ms)
        self.errors.update(other.errors)
        self.warmup_errors.update(other.warmup_errors)
        self.sent += other.sent
        self.unsent += other.unsent
        self.warmup_unsent += other.warmup_unsent
        self.ran_to_end += other.ran_to_end
        self.last_stop = max(self.last_stop, other.last_stop)
        self.failure = self.failure or other.failure

    def record(self, measured: bool, error: str | None, elapsed_ms: float) -> None:
        """Count one sent request: a measured latency or error, or a warm-up error (warm-up successes are not kept)."""
        self.sent += 1
        if not measured:
            if error is not None:
                self.warmup_errors[error] += 1
        elif error is None:
            self.latencies_ms.append(elapsed_ms)
        else:
            self.errors[error] += 1


def merge(tallies: Sequence[Tally]) -> Tally:
    """One tally for many.

    Example: merge([Tally([1.0], sent=1), Tally([2.0], sent=2)]) -> Tally([1.0, 2.0], sent=3)
    """
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


@dataclass(frozen=True)
class PhaseResult:
    """One configuration's measurement."""

    name: str
    url: str
    throughput_rps: float
    latency_ms: dict[str, float | None]
    ok: int
    errors: int
    error_kinds: dict[str, int]
    window_s: float
    sent: int
    mean_batch_size: float | None = None
    warmup_errors: int = 0
    unsent: int = 0
    warmup_unsent: int = 0
    server_cpu_ms_per_request: float | None = None
    server_cores: float | None = None
    machine_busy_pct: float | None = None
    replicas: int = 1  # server processes behind ``url`` (comma-separated when more than one)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self) | {"description": DESCRIPTIONS.get(self.name, self.name)}

    def line(self) -> str:
        """One status line."""
        lat = {k: ("-" if v is None else f"{v:.1f}") for k, v in self.latency_ms.items()}
        batch = "" if self.mean_batch_size is None else f", mean batch {self.mean_batch_size:.1f}"
        warmup = f" (+{self.warmup_errors} in the warm-up)" if self.warmup_errors else ""
        unsent = f", {self.unsent} due but never sent" if self.unsent else ""
        cpu = ""
        if self.server_cpu_ms_per_request is not None and self.server_cores is not None:
            cpu = f", server CPU {self.server_cpu_ms_per_request:.2f} ms/request on {self.server_cores:.2f} cores"
        if self.machine_busy_pct is not None:
            cpu += f", machine {self.machine_busy_pct:.0f}% busy"
        return (
            f"{configuration_label(self.name, self.replicas)}: {self.throughput_rps:.1f} req/s, p50 {lat['p50']} ms, "
            f"p95 {lat['p95']} ms, p99 {lat['p99']} ms, {self.ok} ok, {self.errors} errors{warmup}{unsent}{batch}{cpu}"
        )


def configuration_label(name: str, replicas: int) -> str:
    """A configuration's name, with its number of server processes when there is more than one.

    Example: configuration_label("batched", 2) -> "batched (2 processes)"
    """
    return name if replicas == 1 else f"{name} ({replicas} processes)"


def measured_window(tally: Tally, measure_at: float, duration_s: float) -> float:
    """Seconds the load was measured: the whole duration, or less when every client stopped at its request cap.

    Example: duration 10 s, every client capped 4 s into it -> 4.0
    """
    if tally.ran_to_end or not tally.last_stop:
        return duration_s
    return min(duration_s, max(tally.last_stop - measure_at, 0.0))


def summarize(name: str, url: str, tally: Tally, measure_at: float, duration_s: float) -> PhaseResult:
    """A phase's result from its merged tally.

    Example: 1000 successes in a 10 s window -> throughput_rps 100.0
    """
    ok, errors = len(tally.latencies_ms), sum(tally.errors.values())
    window = measured_window(tally, measure_at, duration_s)
    return PhaseResult(
        name=name,
        url=url,
        throughput_rps=ok / window if window > 0 else 0.0,
        latency_ms=latency_summary(tally.latencies_ms),
        ok=ok,
        errors=errors,
        error_kinds=dict(tally.errors.most_common()),
        window_s=window,
        sent=tally.sent,
        warmup_errors=sum(tally.warmup_errors.values()),
        unsent=tally.unsent,
        warmup_unsent=tally.warmup_unsent,
    )


def kept_up(offered_rps: float, served_rps: float, tolerance: float = 0.02) -> bool:
    """Whether an open-loop run served what it offered (within ``tolerance``); if not, the service saturated.

    Example: kept_up(400, 399.9) -> True; kept_up(400, 389.6) -> False
    """
    return served_rps >= (1.0 - tolerance) * offered_rps


def phase_ratio(top: PhaseResult | None, bottom: PhaseResult | None, field: str) -> float | None:
    """``top``'s ``field`` over ``bottom``'s; None when either phase or figure is missing or the divisor is not > 0.

    Example: throughput 400 over 100 -> 4.0; over a phase that served nothing -> None
    """
    if top is None or bottom is None:
        return None
    numerator, divisor = getattr(top, field), getattr(bottom, field)
    if numerator is None or divisor is None or divisor <= 0:
        return None
    return float(numerator / divisor)


def speedups(phases: dict[str, PhaseResult | None]) -> dict[str, float | None]:
    """Throughput of the batched service over the other two.

    Example: batched 400, unbatched 150, plain 100 -> {"batched_vs_unbatched": 2.67, "batched_vs_plain": 4.0}
    """
    batched = phases.get("batched")
    return {
        f"batched_vs_{other}": phase_ratio(batched, phases.get(other), "throughput_rps")
        for other in ("unbatched", "plain")
    }


def cpu_ratios(phases: dict[str, PhaseResult | None]) -> dict[str, float | None]:
    """Server CPU per request of the other two configurations over the batched service's.

    When both services keep the CPU busy, throughput is cores over CPU per request, so
    ``unbatched_vs_batched`` is the most batching can multiply throughput by on this machine.

    Example: batched 2.0 ms/request, unbatched 3.0, plain not measured
        -> {"unbatched_vs_batched": 1.5, "plain_vs_batched": None}
    """
    batched = phases.get("batched")
    return {
        f"{other}_vs_batched": phase_ratio(phases.get(other), batched, "server_cpu_ms_per_request")
        for other in ("unbatched", "plain")
    }


# ---------------------------------------------------------------- clients (in the client processes)


@dataclass(frozen=True)
class ClientPlan:
    """What one client process does (picklable: it crosses into a spawned process).

    ``urls``: the server's replicas; client ``index`` talks to ``urls[index % len(urls)]``, so the
    clients of all processes together are spread evenly over them.
    """

    urls: tuple[str, ...]
    bodies: tuple[bytes, ...]
    clients: int
    first_client: int
    cap_per_client: int
    timeout_s: float
    warmup_s: float
    duration_s: float
    interval_s: float | None = None  # open loop: each client sends one request every interval_s
    concurrency: int = 1


def due_times(start: float, index: int, concurrency: int, interval_s: float) -> Iterator[float]:
    """When an open-loop client's requests are due: every ``interval_s``, clients spread evenly over one interval.

    Example: start 0, client 1 of 4, interval 1.0 -> 0.25, 1.25, 2.25, ...
    """
    due = start + interval_s * (index % concurrency) / concurrency
    while True:
        yield due
        due += interval_s


def overdue(dues: Iterable[float], measure_at: float, end_at: float, limit: int) -> tuple[int, int]:
    """Open loop: how many of a client's unsent due times fell before ``end_at``, as (in the warm-up, measured).

    ``dues`` ascend; at most ``limit`` count (the requests the client's cap still allowed).

    Example: dues 0.5, 1.5, 2.5, 3.5, ...; measure_at 1.0, end_at 3.0, limit 10 -> (1, 2)
    """
    warmup = measured = 0
    for due in itertools.islice(dues, max(limit, 0)):
        if due >= end_at:
            break
        if due < measure_at:
            warmup += 1
        else:
            measured += 1
    return warmup, measured


def open_connection(host: str, port: int, timeout_s: float) -> http.client.HTTPConnection:
    """A connected keep-alive connection with Nagle off (small requests must not wait for a delayed ACK)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def post(connection: http.client.HTTPConnection, body: bytes) -> int:
    """Send one classify request and read the whole response; return its status."""
    connection.request("POST", CLASSIFY_PATH, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def wait_until(due: float) -> float:
    """Sleep until wall time ``due`` (at once when it has passed); return the perf_counter time it was due."""
    delay = due - time.time()
    if delay > 0:
        time.sleep(delay)
    return time.perf_counter() - max(0.0, time.time() - due)


def run_client(
    plan: ClientPlan, index: int, measure_at: float, end_at: float, stop: threading.Event | None = None
) -> Tally:
    """One client: send requests until ``end_at`` (wall time), its cap or ``stop``; tally the measured ones.

    A request is measured when it is sent in ``[measure_at, end_at)``; the client waits for it (up to the
    timeout) even past ``end_at``. Closed loop: the next request goes as soon as the last one is answered.
    Open loop (``plan.interval_s``): each request goes when it is due (or at once when late) and its latency
    counts from when it was due; the requests still due before ``end_at`` when the client stops are counted
    as ``unsent`` / ``warmup_unsent``.
    """
    host, port = address_of(plan.urls[index % len(plan.urls)])
    tally, connection = Tally(), None
    schedule = None
    if plan.interval_s is not None:
        schedule = due_times(measure_at - plan.warmup_s, index, plan.concurrency, plan.interval_s)
    pending: list[float] = []  # open loop: the due time drawn but not sent yet
    while tally.sent < plan.cap_per_client and time.time() < end_at and not (stop and stop.is_set()):
        body = plan.bodies[(index + tally.sent) % len(plan.bodies)]
        pending = [] if schedule is None else [next(schedule)]
        started = time.perf_counter() if schedule is None else wait_until(pending[0])
        sent_at = time.time() - (time.perf_counter() - started)  # when it was due, in the open loop
        if sent_at >= end_at:  # due in the window but woken just after it closed: still the window's request
            break
        pending = []
        try:
            connection = connection or open_connection(host, port, plan.timeout_s)
            status = post(connection, body)
            error = None if status == 200 else f"http_{status}"
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            if connection is not None:
                connection.close()
            connection = None
            time.sleep(0.01)  # a refused connection fails at once: do not spin
        tally.record(sent_at >= measure_at, error, 1000.0 * (time.perf_counter() - started))
    if connection is not None:
        connection.close()
    if schedule is not None and not (stop and stop.is_set()):
        left = plan.cap_per_client - tally.sent
        tally.warmup_unsent, tally.unsent = overdue(itertools.chain(pending, schedule), measure_at, end_at, left)
    if tally.sent >= plan.cap_per_client and time.time() < end_at:
        tally.last_stop = time.time()
    else:
        tally.ran_to_end = 1
    return tally


def client_process(number: int, plan: ClientPlan, reports: Any, go: Any, start: Any) -> None:
    """Client process ``number``: report ready, wait for the common start, run the clients, report one tally.

    Each report is ``(number, None)`` for ready or ``(number, tally)``; a failure is a tally with ``failure``
    set, sent at once (before ready when it happens at start-up). Ctrl-C reaches every process of the
    terminal's group: a client then stops sending and exits quietly (the parent reports the interruption and
    stops the servers).
    """
    stop = threading.Event()
    try:
        for url in plan.urls:  # a bad URL fails here, at start-up, not once the load has begun
            address_of(url)
        reports.put((number, None))
        go.wait()
        wait_until(start.value)  # the common start: a request sent before it would belong to no phase
        measure_at = start.value + plan.warmup_s
        end_at = measure_at + plan.duration_s
        with ThreadPoolExecutor(plan.clients, thread_name_prefix="client") as pool:
            indices = range(plan.first_client, plan.first_client + plan.clients)
            try:
                tallies = list(pool.map(lambda i: run_client(plan, i, measure_at, end_at, stop), indices))
            except KeyboardInterrupt:
                stop.set()  # the pool waits for its threads: let them end after their request in flight
                raise
        reports.put((number, merge(tallies)))
    except KeyboardInterrupt:
        return
    except Exception as exc:  # the parent must hear about it rather than wait for a tally that never comes
        reports.put((number, Tally(failure=f"{type(exc).__name__}: {exc}")))


def client_plans(urls: Sequence[str], bodies: Sequence[bytes], config: LoadConfig) -> list[ClientPlan]:
    """One plan per client process, with its share of the clients and of the request cap."""
    cap = max(1, config.max_requests // config.concurrency)
    interval = None if config.rate_rps is None else config.concurrency / config.rate_rps
    plans, first = [], 0
    for clients in split_clients(config.concurrency, config.processes):
        plans.append(
            ClientPlan(
                tuple(urls),
                tuple(bodies),
                clients,
                first,
                cap,
                config.timeout_s,
                config.warmup_s,
                config.duration_s,
                interval,
                config.concurrency,
            )
        )
        first += clients
    return plans


def exit_description(code: int) -> str:
    """An exit status in words.

    Example: exit_description(3) -> "code 3"; exit_description(-9) -> "code -9 (killed by SIGKILL)"
    """
    if code >= 0:
        return f"code {code}"
    try:
        return f"code {code} (killed by {signal.Signals(-code).name})"
    except ValueError:
        return f"code {code} (killed by signal {-code})"


def dead_client(processes: Sequence[Any], reported: Iterable[int]) -> int | None:
    """The index of the first process that has exited without reporting, or None."""
    done = set(reported)
    return next((i for i, p in enumerate(processes) if i not in done and p.exitcode is not None), None)


def collect_reports(reports: Any, processes: Sequence[Any], timeout_s: float, stage: str) -> list[Tally | None]:
    """One report from each client process, in process order; fail as soon as one fails or dies first.

    ``stage`` ends the error messages' "before it ..." ("was ready", "reported its results").

    A process that has exited flushed its report before it did, so when one is found dead and the queue then
    stays empty for :data:`POLL_S`, it never reported.

    Raises:
        HybridError: a client reported a failure, exited without reporting, or ``timeout_s`` passed.
    """
    got: dict[int, Tally | None] = {}
    deadline, count = time.monotonic() + timeout_s, len(processes)
    while len(got) < count:
        dead = dead_client(processes, got)
        try:
            number, report = reports.get(timeout=POLL_S)
        except queue.Empty:
            if dead is not None:
                code = exit_description(processes[dead].exitcode)
                raise HybridError(
                    f"load client process {dead + 1} of {count} (pid {processes[dead].pid}) exited with {code} "
                    f"before it {stage}; its error, if any, is printed above"
                ) from None
            if time.monotonic() > deadline:
                late = ", ".join(str(i + 1) for i in range(count) if i not in got)
                raise HybridError(
                    f"load client processes {late} of {count} are running but did not report within {timeout_s:.0f} s"
                ) from None
            continue
        if report is not None and report.failure:
            raise HybridError(f"load client process {number + 1} of {count} failed before it {stage}: {report.failure}")
        got[number] = report
    return [got[i] for i in range(count)]


def drive_load(
    urls: Sequence[str], bodies: Sequence[bytes], config: LoadConfig, at_window: Callable[[], None] | None = None
) -> tuple[Tally, float]:
    """Load ``urls`` from client processes started together; return the merged tally and the measurement start.

    Args:
        urls: the server's replicas (one URL for one server process), the clients spread evenly over them.
        bodies: request bodies, sent in turn.
        config: the load.
        at_window: called (on a thread of this process) when the measured window opens.

    Raises:
        HybridError: a client process failed, died or did not report in time.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    reports, go, start = context.Queue(), context.Event(), context.Value("d", 0.0)
    plans = client_plans(urls, bodies, config)
    processes = [
        context.Process(target=client_process, args=(n, p, reports, go, start), name=f"load-client-{n + 1}")
        for n, p in enumerate(plans)
    ]
    for process in processes:
        process.start()
    timer = None
    try:
        collect_reports(reports, processes, READY_TIMEOUT_S, "was ready")
        start.value = time.time() + 0.05
        go.set()
        measure_at = start.value + config.warmup_s
        if at_window is not None:
            timer = threading.Timer(max(0.0, measure_at - time.time()), at_window)
            timer.start()
        wait_s = config.warmup_s + config.duration_s + config.timeout_s + 60.0
        tallies = collect_reports(reports, processes, wait_s, "reported its results")
    except BaseException:  # a failure, Ctrl-C or SIGTERM: stop the clients now rather than wait out their window
        for process in processes:
            process.terminate()
        raise
    finally:
        if timer is not None:
            timer.cancel()  # when it has not fired; else wait for it to finish
            timer.join()
        for process in processes:
            process.join(timeout=10.0)
            if process.is_alive():
                process.kill()
    return merge([t for t in tallies if t is not None]), measure_at


# ---------------------------------------------------------------- servers


def free_port(host: str = HOST) -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_command(name: str, plan: ServerPlan, port: int, workdir: Path) -> list[str]:
    """The command line that serves configuration ``name`` on ``port``.

    Example: "unbatched" -> [python, -m, hybridroute, serve, edge, --run, RUN, ..., --max-batch, 1, ...]
    """
    common = ["--run", str(plan.run), "--host", HOST, "--port", str(port), "--threads", str(plan.threads)]
    if name == "plain":
        return [sys.executable, "-m", "hybridroute", "bench", "plain-server", *common]
    batch, wait = (plan.max_batch, plan.max_wait_ms) if name == "batched" else (1, 0.0)
    command = [sys.executable, "-m", "hybridroute", "serve", "edge", *common, "--max-batch", str(batch)]
    command += ["--workers", str(plan.workers)]
    command += ["--max-wait-ms", str(wait), "--audit-db", str(workdir / f"audit-{name}.sqlite"), "--no-access-log"]
    return command + (["--policy", plan.policy] if plan.policy else [])


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file ('' when unreadable)."""
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def is_ready(url: str) -> bool:
    """Whether ``GET URL/readyz`` answers 200."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Block until the server answers ``/readyz`` with 200; raise with its log if it exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while not is_ready(url):
        if process.poll() is not None:
            raise HybridError(f"the server exited with status {process.returncode} during startup:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise HybridError(f"the server was not ready within {timeout_s:.0f} s:\n{log_tail(log)}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    """SIGTERM (the service drains and commits its audit log), then SIGKILL after ``grace_s``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def started_server(command: Sequence[str], url: str, log: Path, timeout_s: float) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (a server listening at ``url``) until the block ends; yield once it is ready."""
    with Path(log).open("wb") as handle:
        process = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, process, timeout_s, Path(log))
            yield process
        finally:
            stop_process(process)


def process_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds process ``pid`` (all its threads) has used; None where ``/proc`` cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        # Fields after the parenthesised command name (which may hold spaces) start at field 3, the state;
        # utime and stime are fields 14 and 15, in clock ticks.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class CpuMark:
    """The CPU seconds a server's processes (all its replicas) used so far, and when they were read."""

    cpu_s: float
    at: float  # time.monotonic()

    @classmethod
    def read(cls, pids: Sequence[int]) -> CpuMark | None:
        """The mark now; None without processes, or when one of them cannot be read."""
        used = [process_cpu_seconds(pid) for pid in pids]
        if not used or None in used:
            return None
        return cls(sum(cpu for cpu in used if cpu is not None), time.monotonic())


def server_cpu(before: CpuMark | None, after: CpuMark | None, requests: int) -> tuple[float | None, float | None]:
    """(CPU milliseconds per request, cores kept busy) between two marks; (None, None) without both or requests.

    Example: 3 CPU seconds over 2 s for 1,000 requests -> (3.0, 1.5)
    """
    if before is None or after is None or requests <= 0 or after.at <= before.at:
        return None, None
    used = after.cpu_s - before.cpu_s
    return 1000.0 * used / requests, used / (after.at - before.at)


def machine_cpu_ticks(stat: str) -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs so far, from the text of ``/proc/stat``; None when it has no such line.

    Busy is everything but idle and I/O wait (user, nice, system, irq, softirq and steal: time a hypervisor gave
    to others was not ours either). Guest time is already inside user and nice, so it is not added again.

    Example: "cpu  10 0 5 80 5 0 0 0 0 0" -> (15, 100)
    """
    first = stat.split("\n", 1)[0].split()
    if len(first) < 5 or first[0] != "cpu":
        return None
    try:
        ticks = [int(value) for value in first[1:9]]
    except ValueError:
        return None
    total = sum(ticks)
    return total - ticks[3] - ticks[4], total


def read_machine_ticks(stat_file: Path = PROC_STAT) -> tuple[int, int] | None:
    """:func:`machine_cpu_ticks` now; None where ``/proc/stat`` cannot be read."""
    try:
        return machine_cpu_ticks(stat_file.read_text(encoding="ascii"))
    except OSError:
        return None


def busy_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Percent of the CPU ticks between two readings that were busy; None without both or without ticks between.

    Example: (15, 100) then (105, 200) -> 90.0
    """
    if before is None or after is None or after[1] <= before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def fetch_text(url: str) -> str | None:
    """The body of ``GET url``, or None when it cannot be had."""
    try:
        with urllib.request.urlopen(url, timeout=5.0) as response:
            return str(response.read().decode("utf-8", errors="replace"))
    except (urllib.error.URLError, OSError):
        return None


@dataclass(frozen=True)
class WindowMark:
    """What is read at one end of the measured window: the server's CPU, the machine's CPU ticks, its /metrics.

    Each is None where it could not be read (no process of ours, no ``/proc``, no edge service or a failed scrape).
    """

    cpu: CpuMark | None
    machine: tuple[int, int] | None
    metrics: str | None

    @classmethod
    def read(cls, pids: Sequence[int], metrics_urls: Sequence[str]) -> WindowMark:
        """The mark now; the replicas' scrapes joined (None if one failed); no ``metrics_urls``: nothing scraped."""
        scrapes = [fetch_text(url) for url in metrics_urls]
        metrics = None if not scrapes or None in scrapes else "\n".join(text for text in scrapes if text is not None)
        return cls(CpuMark.read(pids), read_machine_ticks(), metrics)


# ---------------------------------------------------------------- orchestration


Progress = Callable[[str], None]


def measure(
    target: Target, urls: Sequence[str], bodies: Sequence[bytes], config: LoadConfig, pids: Sequence[int] = ()
) -> PhaseResult:
    """Load one running server (one URL per replica) and summarize.

    The edge service's mean batch size comes from its /metrics (every replica's), scraped when the measured
    window opens and after the last request: the window's batches, not the warm-up's nor traffic the server saw
    earlier (a ``--url`` server's other runs). None when a scrape failed rather than a figure over the wrong span.
    With the server's ``pids`` (servers this module started), their CPU time over the same span is read too,
    per request sent in the window (failed ones included: they cost CPU as well); and, for every server, how busy
    this machine's CPUs were over that span.
    """
    metrics_urls = [f"{url}/metrics" for url in urls] if target.name != "plain" else []
    opened: list[WindowMark] = []  # drive_load marks the window's opening once
    tally, measure_at = drive_load(urls, bodies, config, lambda: opened.append(WindowMark.read(pids, metrics_urls)))
    closed = WindowMark.read(pids, metrics_urls)
    start = opened[0] if opened else WindowMark(None, None, None)
    result = summarize(target.name, ", ".join(urls), tally, measure_at, config.duration_s)
    cpu_ms, cores = server_cpu(start.cpu, closed.cpu, result.ok + result.errors)
    return replace(
        result,
        mean_batch_size=mean_batch_size(closed.metrics, start.metrics) if closed.metrics and start.metrics else None,
        server_cpu_ms_per_request=cpu_ms,
        server_cores=cores,
        machine_busy_pct=busy_pct(start.machine, closed.machine),
        replicas=len(urls),
    )


def run_phase(
    target: Target,
    plan: ServerPlan | None,
    bodies: Sequence[bytes],
    config: LoadConfig,
    workdir: Path,
    progress: Progress,
) -> PhaseResult:
    """Measure one configuration, starting (and afterwards stopping) its server when no URL was given."""
    load = f"{config.warmup_s:g} s warm-up + {config.duration_s:g} s from {config.concurrency} clients"
    if config.rate_rps is not None:
        load += f" offering {config.rate_rps:g} req/s"
    if target.urls:
        for url in target.urls:
            if not is_ready(url):
                raise ConfigError(f"{target.name}: GET {url}/readyz does not answer 200; is the server running?")
        progress(f"{target.name} ({target.description}) at {', '.join(target.urls)}: {load} ...")
        return measure(target, target.urls, bodies, config)
    if plan is None:
        raise ConfigError(f"{target.name}: no URL and no run folder to start a server from")
    started = time.monotonic()
    with contextlib.ExitStack() as servers:
        urls, pids = [], []
        for replica in range(1, plan.replicas + 1):
            port = free_port()
            urls.append(f"http://{HOST}:{port}")
            of = f" (replica {replica}/{plan.replicas})" if plan.replicas > 1 else ""
            progress(f"{target.name} ({target.description}){of}: starting on {urls[-1]} ...")
            log = workdir / f"{target.name}-{replica}.log"
            command = server_command(target.name, plan, port, workdir)
            pids.append(servers.enter_context(started_server(command, urls[-1], log, plan.startup_timeout_s)).pid)
        progress(f"{target.name}: ready in {time.monotonic() - started:.1f} s; {load} ...")
        return measure(target, urls, bodies, config, pids)


def run_load_bench(
    config: LoadConfig,
    targets: Sequence[Target],
    texts: Sequence[str],
    plan: ServerPlan | None = None,
    progress: Progress = lambda _line: None,
    text_source: str = "",
) -> dict[str, Any]:
    """Measure every target in turn; return the JSON-ready result (machine, settings, one entry per configuration).

    Args:
        config: the load.
        targets: configurations to measure (see :func:`plan_targets`).
        texts: request texts, sent in turn (each client starts at another offset).
        plan: how to start servers for targets without a URL.
        progress: called with one status line per step.
        text_source: where the texts came from, for the record.
    """
    from hybridroute.bench.machine import machine_info, package_versions

    check_replica_counts(targets, plan, config.concurrency)
    bodies = request_bodies(texts)
    phases: dict[str, PhaseResult | None] = dict.fromkeys(CONFIGURATIONS)
    with sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="hybridroute-load-") as workdir:
        for step, target in enumerate(targets, start=1):
            progress(f"[{step}/{len(targets)}] {target.name}")
            phase = run_phase(target, plan, bodies, config, Path(workdir), progress)
            phases[target.name] = phase
            progress(f"[{step}/{len(targets)}] {phase.line()}")
    settings = asdict(config) | {
        "texts": {"count": len(bodies), "source": text_source},
        "server": None if plan is None else asdict(plan) | {"run": str(plan.run)},
        "serving_versions": package_versions(SERVING_PACKAGES),
    }
    result = {
        "benchmark": "load",
        "machine": machine_info(),
        "settings": settings,
        **{name: None if phase is None else phase.to_dict() for name, phase in phases.items()},
        "speedup": speedups(phases),
        "server_cpu_ratio": cpu_ratios(phases),
        "not_measured": {name: NOT_MEASURED[name] for name, phase in phases.items() if phase is None},
        "definitions": DEFINITIONS,
    }
    if config.rate_rps is not None:  # open loop: latency means something only where the rate was kept up
        measured = {name: phase for name, phase in phases.items() if phase is not None}
        result["kept_up"] = {name: kept_up(config.rate_rps, phase.throughput_rps) for name, phase in measured.items()}
    return result


def markdown_table(result: dict[str, Any]) -> str:
    """The result as a small Markdown table."""
    rows = [
        "| configuration | req/s | p50 ms | p95 ms | p99 ms | errors | mean batch | server CPU ms/req | server cores "
        "| machine busy % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for name in CONFIGURATIONS:
        phase = result.get(name)
        if phase is None:
            rows.append(f"| {name} | not measured | | | | | | | | |")
            continue
        lat = phase["latency_ms"]
        label = configuration_label(name, phase.get("replicas") or 1)  # no replicas in results saved before them
        warmup = phase.get("warmup_errors") or 0  # results saved before it was counted have none
        unsent = phase.get("unsent") or 0  # nor this
        errors = f"{phase['errors']}" + (f" (+{warmup} in warm-up)" if warmup else "")
        errors += f" (+{unsent} never sent)" if unsent else ""
        rows.append(
            f"| {label} | {phase['throughput_rps']:.1f} | {cell(lat['p50'])} | {cell(lat['p95'])} | "
            f"{cell(lat['p99'])} | {errors} | {cell(phase['mean_batch_size'])} | "
            f"{cell(phase.get('server_cpu_ms_per_request'), 2)} | {cell(phase.get('server_cores'), 2)} | "
            f"{cell(phase.get('machine_busy_pct'), 0)} |"
        )
    offered, verdicts = result.get("settings", {}).get("rate_rps"), result.get("kept_up", {})
    for name in CONFIGURATIONS:
        phase = result.get(name) or {}
        lines = [unsent_note(name, phase)]
        if name in verdicts:
            verdict = "kept up" if verdicts[name] else "SATURATED: the latencies above include the queue that built up"
            lines.insert(0, f"{name}: offered {offered:.1f} req/s, served {phase['throughput_rps']:.1f} ({verdict})")
        if any(lines):
            rows.append("\n" + "\n".join(line for line in lines if line))
    speed = result.get("speedup", {})
    if speed.get("batched_vs_unbatched") is not None:
        rows.append(f"\nbatched / unbatched throughput: {speed['batched_vs_unbatched']:.2f}x")
    if speed.get("batched_vs_plain") is not None:
        rows.append(f"batched / plain throughput: {speed['batched_vs_plain']:.2f}x")
    cpu = (result.get("server_cpu_ratio") or {}).get("unbatched_vs_batched")  # results saved before have none
    if cpu is not None:
        rows.append(
            f"server CPU per request, unbatched / batched: {cpu:.2f}x "
            "(with both services CPU-bound, the most batching can multiply throughput by here)"
        )
    if busy := machine_busy_note(result):
        rows.append(busy)
    return "\n".join(rows)


def machine_busy_note(result: dict[str, Any]) -> str:
    """A line with how busy the machine was in each configuration, and whether that says CPU-bound ('' if unknown).

    Example: batched 78%, unbatched 96% ->
        "machine busy: batched 78%, unbatched 96% (below 90%, not CPU-bound: batched)"
    """
    found = {
        name: phase["machine_busy_pct"]
        for name in CONFIGURATIONS
        if (phase := result.get(name)) and phase.get("machine_busy_pct") is not None  # none in older results
    }
    if not found:
        return ""
    line = "machine busy: " + ", ".join(f"{name} {pct:.0f}%" for name, pct in found.items())
    if idle := [name for name, pct in found.items() if pct < CPU_BOUND_PCT]:
        line += f" (below {CPU_BOUND_PCT:.0f}%, not CPU-bound: {', '.join(idle)})"
    return line


def unsent_note(name: str, phase: dict[str, Any]) -> str:
    """A line saying how many requests a configuration's open-loop clients left unsent ('' when none).

    Example: ("batched", {"unsent": 12}) -> "batched: 12 requests were due but never sent: their clients ..."
    """
    unsent, warmup = phase.get("unsent") or 0, phase.get("warmup_unsent") or 0  # none in results saved before
    if not (unsent or warmup):
        return ""
    more = f" (+{warmup} due in the warm-up)" if warmup else ""
    return (
        f"{name}: {unsent} requests were due but never sent{more}: their clients fell behind the schedule; "
        "they are in neither ok, errors nor the latencies"
    )


def request_texts(texts_file: Path | None, run: Path | None) -> tuple[list[str], str]:
    """The request texts and where they came from: a file, the run's validation split, or the built-in messages."""
    if texts_file is not None:
        return read_texts(texts_file), str(texts_file)
    if run is not None:
        texts = run_texts(run)
        return texts, (f"{run} validation split" if texts != list(DEFAULT_TEXTS) else "built-in messages")
    return list(DEFAULT_TEXTS), "built-in messages"
