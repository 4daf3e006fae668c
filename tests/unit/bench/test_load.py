"""The load benchmark's pure parts: splitting, percentiles, aggregation, settings, commands and CLI arguments."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import resource_tracker
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hybridroute.bench import load as load_module
from hybridroute.bench.load import (
    DEFAULT_TEXTS,
    ClientPlan,
    CpuMark,
    LoadConfig,
    PhaseResult,
    ServerPlan,
    Tally,
    Target,
    address_of,
    busy_pct,
    check_replica_counts,
    check_url,
    client_plans,
    cpu_ratios,
    drive_load,
    due_times,
    free_port,
    kept_up,
    latency_summary,
    machine_busy_note,
    machine_cpu_ticks,
    markdown_table,
    mean_batch_size,
    measure,
    measured_window,
    merge,
    overdue,
    percentile,
    plan_targets,
    process_cpu_seconds,
    read_machine_ticks,
    read_texts,
    request_bodies,
    request_texts,
    run_client,
    server_command,
    server_cpu,
    speedups,
    split_clients,
    summarize,
)
from hybridroute.cli import main
from hybridroute.errors import ConfigError, HybridError


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "run" / "edge").mkdir(parents=True)
    return tmp_path / "run"


# ---------------------------------------------------------------- pure helpers


def test_clients_are_split_as_evenly_as_possible() -> None:
    assert split_clients(32, 2) == [16, 16]
    assert split_clients(32, 3) == [11, 11, 10]
    assert split_clients(1, 1) == [1]


@pytest.mark.parametrize("q", [0, 1, 50, 95, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = sorted(np.random.default_rng(0).exponential(5.0, 101).tolist())
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_latency_summary_and_its_empty_case() -> None:
    assert latency_summary([3.0, 1.0]) == pytest.approx({"p50": 2.0, "p95": 2.9, "p99": 2.98, "mean": 2.0, "max": 3.0})
    assert latency_summary([]) == dict.fromkeys(("p50", "p95", "p99", "mean", "max"))


def test_mean_batch_size_reads_the_prometheus_histogram() -> None:
    text = (
        "# TYPE hybridroute_batch_size histogram\n"
        'hybridroute_batch_size_bucket{le="1.0"} 1.0\n'
        "hybridroute_batch_size_count 4.0\n"
        "hybridroute_batch_size_sum 64.0\n"
    )
    assert mean_batch_size(text) == 16.0
    assert mean_batch_size("hybridroute_batch_size_count 0.0\n") is None
    assert mean_batch_size("") is None


def test_mean_batch_size_counts_only_the_batches_since_the_earlier_scrape() -> None:
    before = "hybridroute_batch_size_count 100.0\nhybridroute_batch_size_sum 100.0\n"  # an earlier run, alone
    after = "hybridroute_batch_size_count 104.0\nhybridroute_batch_size_sum 164.0\n"  # then 4 batches of 16
    assert mean_batch_size(after, before) == 16.0
    assert mean_batch_size(after) == 164.0 / 104.0
    assert mean_batch_size(before, before) is None  # no batches in between


def test_urls_must_be_plain_http_with_a_host() -> None:
    assert check_url("http://127.0.0.1:8000/") == "http://127.0.0.1:8000"
    assert address_of("http://127.0.0.1:8123") == ("127.0.0.1", 8123)
    assert address_of("http://localhost") == ("localhost", 80)
    for bad in ("https://h:1", "127.0.0.1:8000", "http://:80", "http://h:99999"):
        with pytest.raises(ConfigError, match="URL"):
            check_url(bad)


def test_tallies_merge_and_summarize_into_throughput_and_percentiles() -> None:
    a = Tally([10.0, 20.0], Counter({"http_503": 1}), sent=5, ran_to_end=1)
    b = Tally([30.0], Counter({"http_503": 1, "TimeoutError": 1}), sent=4, ran_to_end=1)
    total = merge([a, b])
    assert total.latencies_ms == [10.0, 20.0, 30.0] and total.sent == 9 and total.ran_to_end == 2
    result = summarize("batched", "http://h:1", total, measure_at=100.0, duration_s=2.0)
    assert result.throughput_rps == 1.5 and result.ok == 3 and result.errors == 3 and result.window_s == 2.0
    assert result.error_kinds == {"http_503": 2, "TimeoutError": 1}
    assert result.latency_ms["p50"] == 20.0 and result.latency_ms["max"] == 30.0
    assert "1.5 req/s" in result.line() and result.to_dict()["description"].startswith("edge service")


def test_the_window_shrinks_only_when_every_client_hit_its_cap() -> None:
    capped = Tally([1.0] * 40, sent=40, last_stop=104.0)
    assert measured_window(capped, measure_at=100.0, duration_s=10.0) == 4.0
    assert measured_window(merge([capped, Tally(ran_to_end=1)]), 100.0, 10.0) == 10.0
    assert summarize("plain", "u", capped, 100.0, 10.0).throughput_rps == 10.0


def test_speedups_compare_the_batched_service_with_the_others() -> None:
    def phase(rps: float) -> PhaseResult:
        return PhaseResult("x", "u", rps, latency_summary([1.0]), 1, 0, {}, 1.0, 1)

    assert speedups({"batched": phase(400.0), "unbatched": phase(100.0), "plain": phase(0.0)}) == {
        "batched_vs_unbatched": 4.0,
        "batched_vs_plain": None,
    }
    assert speedups({"batched": None, "unbatched": phase(1.0)})["batched_vs_unbatched"] is None


def test_server_cpu_is_per_request_and_in_cores_between_two_marks() -> None:
    assert server_cpu(CpuMark(10.0, 100.0), CpuMark(13.0, 102.0), 1000) == (3.0, 1.5)
    assert server_cpu(None, CpuMark(13.0, 102.0), 1000) == (None, None)
    assert server_cpu(CpuMark(10.0, 100.0), CpuMark(13.0, 102.0), 0) == (None, None)  # nothing was served


def test_process_cpu_seconds_grows_with_work_and_is_none_for_no_process() -> None:
    before = process_cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # burn 0.2 s of CPU in this process
        pass
    after = process_cpu_seconds(os.getpid())
    assert before is not None and after is not None and after - before >= 0.15
    assert process_cpu_seconds(-1) is None and CpuMark.read([]) is None


def test_cpu_ratios_compare_the_others_cpu_per_request_with_the_batched_services() -> None:
    def phase(cpu_ms: float | None) -> PhaseResult:
        return PhaseResult("x", "u", 1.0, latency_summary([1.0]), 1, 0, {}, 1.0, 1, server_cpu_ms_per_request=cpu_ms)

    ratios = cpu_ratios({"batched": phase(2.0), "unbatched": phase(3.0), "plain": phase(None)})
    assert ratios == {"unbatched_vs_batched": 1.5, "plain_vs_batched": None}
    assert cpu_ratios({"batched": phase(None), "unbatched": phase(3.0)})["unbatched_vs_batched"] is None


def test_markdown_table_shows_server_cpu_and_its_ratio() -> None:
    def phase(name: str, cpu_ms: float) -> dict[str, object]:
        found = PhaseResult(name, "u", 400.0, latency_summary([1.0]), 1, 0, {}, 1.0, 1, None, 0, 0, 0, cpu_ms, 1.5)
        return found.to_dict()

    result = {"batched": phase("batched", 2.0), "unbatched": phase("unbatched", 3.0), "plain": None, "speedup": {}}
    table = markdown_table(result | {"server_cpu_ratio": {"unbatched_vs_batched": 1.5}})
    assert "| - | 2.00 | 1.50 |" in table and "| - | 3.00 | 1.50 |" in table
    assert "server CPU per request, unbatched / batched: 1.50x" in table
    assert "server CPU per request" not in markdown_table(result)  # results saved before it was measured


def test_machine_cpu_ticks_count_everything_but_idle_and_io_wait_as_busy() -> None:
    stat = "cpu  100 5 30 800 20 1 4 40 7 0\ncpu0 50 2 15 400 10 0 2 20 3 0\nintr 1 2 3\n"
    assert machine_cpu_ticks(stat) == (180, 1000)  # guest (7) is inside user already: not added again
    assert machine_cpu_ticks("cpu  10 0 5 80 5\n") == (15, 100)  # an older kernel's shorter line
    assert machine_cpu_ticks("intr 1 2 3\n") is None and machine_cpu_ticks("") is None
    assert machine_cpu_ticks("cpu  10 x 5 80 5\n") is None


def test_busy_pct_is_the_busy_share_of_the_ticks_between_two_readings() -> None:
    assert busy_pct((15, 100), (105, 200)) == 90.0
    assert busy_pct(None, (105, 200)) is None and busy_pct((15, 100), None) is None
    assert busy_pct((15, 100), (15, 100)) is None  # no tick passed


def test_read_machine_ticks_reads_this_machine_and_is_none_without_proc_stat(tmp_path: Path) -> None:
    found = read_machine_ticks()
    assert found is not None and 0 <= found[0] <= found[1]
    assert read_machine_ticks(tmp_path / "missing") is None


def test_markdown_table_shows_how_busy_the_machine_was_and_flags_what_was_not_cpu_bound() -> None:
    def phase(name: str, busy: float | None) -> dict[str, object]:
        found = PhaseResult(name, "u", 400.0, latency_summary([1.0]), 1, 0, {}, 1.0, 1, machine_busy_pct=busy)
        return found.to_dict()

    result = {"batched": phase("batched", 78.4), "unbatched": phase("unbatched", 96.0), "plain": None, "speedup": {}}
    table = markdown_table(result)
    assert "| - | - | 78 |" in table and "| - | - | 96 |" in table
    assert "machine busy: batched 78%, unbatched 96% (below 90%, not CPU-bound: batched)" in table
    assert machine_busy_note(result | {"batched": phase("batched", 95.0)}) == (
        "machine busy: batched 95%, unbatched 96%"
    )
    older = {"batched": phase("batched", None), "unbatched": None, "plain": None, "speedup": {}}
    assert machine_busy_note(older) == "" and "machine busy:" not in markdown_table(older)


def test_markdown_table_marks_what_was_not_measured() -> None:
    phase = PhaseResult("batched", "u", 400.0, latency_summary([1.0, 2.0]), 2, 0, {}, 1.0, 2, 8.0).to_dict()
    table = markdown_table({"batched": phase, "unbatched": None, "plain": None, "speedup": {}})
    assert "| batched | 400.0 |" in table and "| unbatched | not measured |" in table


def test_an_open_loop_run_says_whether_it_kept_up_with_the_offered_rate() -> None:
    assert kept_up(400.0, 399.9) and kept_up(400.0, 392.0)
    assert not kept_up(400.0, 389.6)
    phase = PhaseResult("batched", "u", 389.6, latency_summary([1.0, 2.0]), 2, 0, {}, 1.0, 2, 8.0).to_dict()
    result = {"settings": {"rate_rps": 400.0}, "batched": phase, "kept_up": {"batched": False}, "speedup": {}}
    assert "batched: offered 400.0 req/s, served 389.6 (SATURATED" in markdown_table(result)


# ---------------------------------------------------------------- settings and plans


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"processes": 5, "concurrency": 4}, "processes"),
        ({"max_requests": 3, "concurrency": 4}, "max_requests"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"rate_rps": 0.0}, "rate_rps"),
    ],
)
def test_load_config_rejects_bad_values(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LoadConfig(**changes)  # type: ignore[arg-type]


def test_server_plan_needs_an_edge_bundle_and_a_real_batch(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no edge bundle"):
        ServerPlan(tmp_path)
    with pytest.raises(ConfigError, match="max_batch"):
        ServerPlan(run_dir, max_batch=1)


def test_targets_use_given_urls_and_start_the_rest_from_the_run(run_dir: Path) -> None:
    assert plan_targets({"batched": ["http://h:1/"]}, None) == [Target("batched", ("http://h:1",))]
    started = plan_targets({"plain": ["http://h:2"]}, ServerPlan(run_dir))
    assert started == [Target("batched"), Target("unbatched"), Target("plain", ("http://h:2",))]
    replicas = plan_targets({"batched": ["http://h:1", "http://h:2"]}, None)
    assert replicas == [Target("batched", ("http://h:1", "http://h:2"))]
    with pytest.raises(ConfigError, match="nothing to load"):
        plan_targets({"batched": ()}, None)
    with pytest.raises(ConfigError, match="unknown configurations"):
        plan_targets({"turbo": ["http://h:1"]}, None)
    with pytest.raises(ConfigError, match=r"batched: a URL is given twice \(http://h:1, http://h:1\)"):
        plan_targets({"batched": ["http://h:1", "http://h:1/"]}, None)


def test_server_commands_differ_only_in_batching_or_handler(run_dir: Path, tmp_path: Path) -> None:
    plan = ServerPlan(run_dir, max_batch=16, max_wait_ms=3.0, threads=2)
    batched = server_command("batched", plan, 8001, tmp_path)
    unbatched = server_command("unbatched", plan, 8002, tmp_path)
    plain = server_command("plain", plan, 8003, tmp_path)
    assert batched[2:5] == ["hybridroute", "serve", "edge"] and plain[2:5] == ["hybridroute", "bench", "plain-server"]
    assert batched[batched.index("--max-batch") + 1] == "16" and unbatched[unbatched.index("--max-batch") + 1] == "1"
    assert unbatched[unbatched.index("--max-wait-ms") + 1] == "0.0"
    assert batched[batched.index("--policy") + 1] == "always-edge" and "--no-access-log" in batched
    assert all(c[c.index("--threads") + 1] == "2" for c in (batched, unbatched, plain))
    assert str(tmp_path / "audit-batched.sqlite") in batched  # never the run's own audit log


def test_client_plans_share_clients_and_the_request_cap() -> None:
    plans = client_plans(["http://h:1"], [b"{}"], LoadConfig(concurrency=5, processes=2, max_requests=100))
    assert [(p.clients, p.first_client, p.cap_per_client) for p in plans] == [(3, 0, 20), (2, 3, 20)]


def test_texts_come_from_a_file_the_run_or_the_built_in_set(tmp_path: Path, run_dir: Path) -> None:
    (tmp_path / "texts.txt").write_text("hello\n\n  where is my card  \n", encoding="utf-8")
    assert request_texts(tmp_path / "texts.txt", None) == (["hello", "where is my card"], str(tmp_path / "texts.txt"))
    assert request_texts(None, run_dir) == (list(DEFAULT_TEXTS), "built-in messages")  # no stored split
    (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no non-blank lines"):
        read_texts(tmp_path / "empty.txt")
    assert request_bodies(["hi", " "]) == [b'{"text": "hi"}']


def test_a_client_counts_refused_connections_as_errors() -> None:
    plan = ClientPlan((f"http://127.0.0.1:{free_port()}",), (b"{}",), 1, 0, 1000, 1.0, 0.0, 0.2)
    now = time.time()
    tally = run_client(plan, 0, now, now + 0.2)
    assert tally.latencies_ms == [] and set(tally.errors) == {"ConnectionRefusedError"} and tally.ran_to_end == 1


def test_open_loop_clients_are_due_on_a_fixed_schedule_spread_over_one_interval() -> None:
    first = [next(due_times(100.0, i, 4, 1.0)) for i in range(4)]
    assert first == [100.0, 100.25, 100.5, 100.75]
    schedule = due_times(0.0, 5, 4, 2.0)  # client 5 of 4 wraps to the slot of client 1
    assert [next(schedule) for _ in range(3)] == [0.5, 2.5, 4.5]


def test_overdue_requests_are_split_by_phase_and_stop_at_the_window_and_the_cap() -> None:
    assert overdue(itertools.count(0.5), measure_at=1.0, end_at=3.0, limit=10) == (1, 2)  # 0.5 | 1.5, 2.5
    assert overdue(itertools.count(0.5), measure_at=1.0, end_at=3.0, limit=2) == (1, 1)  # the cap allowed 2 more
    assert overdue(itertools.count(3.0), measure_at=1.0, end_at=3.0, limit=10) == (0, 0)  # none due in time


class _SlowHandler(BaseHTTPRequestHandler):
    delay_s = 0.0

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay_s)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a loopback port by threads of this process, until the block ends; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _http_server(delay_s: float) -> contextlib.AbstractContextManager[str]:
    return _serving(type("Handler", (_SlowHandler,), {"delay_s": delay_s, "protocol_version": "HTTP/1.1"}))


def test_an_open_loop_client_sends_at_its_rate_not_as_fast_as_it_can() -> None:
    with _http_server(delay_s=0.0) as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 10_000, 1.0, 0.0, 1.0, interval_s=0.1, concurrency=1)
        now = time.time()
        tally = run_client(plan, 0, now, now + 1.0)
    assert 9 <= tally.sent <= 11 and not tally.errors  # a closed loop would send hundreds in a second


def test_an_open_loop_client_that_falls_behind_counts_every_request_it_never_sent() -> None:
    # Due every 50 ms, answered in 150 ms: the client sends a third of its schedule. Every request due before the
    # window closed is either sent (ok, errors or warm-up) or unsent: none is dropped from the books.
    with _http_server(delay_s=0.15) as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 10_000, 5.0, 0.3, 0.9, interval_s=0.05, concurrency=1)
        now = time.time()
        measure_at, end_at = now + 0.3, now + 1.2
        tally = run_client(plan, 0, measure_at, end_at)
    dues = list(itertools.takewhile(lambda due: due < end_at, due_times(measure_at - plan.warmup_s, 0, 1, 0.05)))
    due_in_window = sum(due >= measure_at for due in dues)
    measured_sent = len(tally.latencies_ms) + sum(tally.errors.values())
    assert measured_sent + tally.unsent == due_in_window and tally.unsent >= 10
    assert (tally.sent - measured_sent) + tally.warmup_unsent == len(dues) - due_in_window
    result = summarize("batched", url, tally, measure_at, 0.9)
    assert result.unsent == tally.unsent and f"{tally.unsent} due but never sent" in result.line()


def test_a_request_due_in_the_window_is_sent_even_when_its_client_wakes_just_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def late(due: float) -> float:  # the scheduler wakes the client 5 ms after each due time
        time.sleep(max(0.0, due - time.time()) + 0.005)
        return time.perf_counter() - (time.time() - due)

    monkeypatch.setattr(load_module, "wait_until", late)
    with _http_server(delay_s=0.0) as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 10_000, 5.0, 0.05, 0.25, interval_s=0.1, concurrency=1)
        now = time.time()
        # due at now, +0.1, +0.2 and +0.3: the last 1 ms before the window closes, woken 4 ms after it
        tally = run_client(plan, 0, now + 0.05, now + 0.301)
    assert (len(tally.latencies_ms), tally.sent, tally.unsent, tally.warmup_unsent) == (3, 4, 0, 0), tally


def test_unsent_requests_are_summed_across_client_processes_and_shown_in_the_table() -> None:
    # Two clients (one per process), 10 req/s each against a server that never answers: each sends its first request
    # (warm-up, times out after the window) and nothing else. Client 0 is due at 0, .1, ..., client 1 at .05, .15, ...
    config = LoadConfig(concurrency=2, processes=2, warmup_s=0.42, duration_s=0.3, timeout_s=1.0, rate_rps=20.0)
    with _hung_server() as url:
        tally, measure_at = drive_load([url], request_bodies(["hello"]), config)
    result = summarize("batched", url, tally, measure_at, config.duration_s)
    assert (result.ok, result.errors, result.warmup_errors, result.sent) == (0, 0, 2, 2)
    assert result.unsent == 6 and result.warmup_unsent == 7  # .5 .6 .7 / .45 .55 .65; 4 + 3 more in the warm-up
    assert result.to_dict()["unsent"] == 6 and result.throughput_rps == 0.0
    table = markdown_table({"batched": result.to_dict(), "unbatched": None, "plain": None, "speedup": {}})
    assert "| 0 (+2 in warm-up) (+6 never sent) |" in table
    assert "batched: 6 requests were due but never sent (+7 due in the warm-up)" in table


def test_open_loop_latency_counts_the_queue_a_slow_server_causes() -> None:
    # Requests are due every 50 ms but take 150 ms: each waits longer than the last (no coordinated omission).
    with _http_server(delay_s=0.15) as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 10_000, 5.0, 0.0, 1.2, interval_s=0.05, concurrency=1)
        now = time.time()
        tally = run_client(plan, 0, now, now + 1.2)
    latencies = tally.latencies_ms
    assert len(latencies) >= 5
    assert latencies[0] >= 150 and latencies[-1] > latencies[0] + 300


@contextmanager
def _hung_server() -> Iterator[str]:
    """A server that accepts connections and never reads or answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at the end
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_a_hung_server_is_all_timeouts_even_when_they_come_after_the_window() -> None:
    # The window (0.5 s) is shorter than the timeout (1 s): every request times out after it has closed.
    config = LoadConfig(concurrency=3, duration_s=0.5, warmup_s=0.0, processes=1, timeout_s=1.0)
    with _hung_server() as url:
        tally, measure_at = drive_load([url], request_bodies(["hello"]), config)
    result = summarize("batched", url, tally, measure_at, config.duration_s)
    assert result.sent == 3 and result.errors == 3 and result.error_kinds == {"TimeoutError": 3}
    assert result.ok == 0 and result.throughput_rps == 0.0 and result.latency_ms["p99"] is None


def test_a_client_process_that_dies_at_start_up_fails_the_run_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every spawned interpreter imports sitecustomize first: this one exits as a broken install or import would.
    (tmp_path / "sitecustomize.py").write_text("import os\nos._exit(3)\n", encoding="utf-8")
    resource_tracker.ensure_running()  # a helper process too: started with the sitecustomize, it would die as well
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    config = LoadConfig(concurrency=2, processes=2, warmup_s=0.0, duration_s=30.0)
    started = time.monotonic()
    with pytest.raises(
        HybridError, match=r"^load client process [12] of 2 \(pid \d+\) exited with code 3 before it was"
    ):
        drive_load([f"http://127.0.0.1:{free_port()}"], request_bodies(["hello"]), config)
    assert time.monotonic() - started < 5.0  # not the 60 s start-up limit, nor the 30 s window


def test_a_client_process_killed_during_the_load_fails_the_run_at_once() -> None:
    config = LoadConfig(concurrency=2, processes=2, warmup_s=0.0, duration_s=30.0, timeout_s=30.0)

    def kill_a_client() -> None:
        time.sleep(1.0)  # spawned, ready and blocked on the hung server by now, on most machines
        victims = multiprocessing.active_children()
        if victims:
            os.kill(victims[0].pid or 0, signal.SIGKILL)

    killer = threading.Thread(target=kill_a_client)
    started = time.monotonic()
    with (
        _hung_server() as url,
        pytest.raises(HybridError, match=r"exited with code -9 \(killed by SIGKILL\) before it"),
    ):
        killer.start()
        drive_load([url], request_bodies(["hello"]), config)
    killer.join()
    assert time.monotonic() - started < 6.0  # not the 30 s window plus the 30 s timeout


def test_a_client_process_that_fails_at_start_up_names_itself_and_the_cause() -> None:
    config = LoadConfig(concurrency=1, processes=1, warmup_s=0.0, duration_s=30.0)
    started = time.monotonic()
    with pytest.raises(
        HybridError, match=r"load client process 1 of 1 failed before it was ready: ConfigError: .*port"
    ):
        drive_load(["http://127.0.0.1:99999"], request_bodies(["hello"]), config)
    assert time.monotonic() - started < 5.0


class _MetricsHandler(BaseHTTPRequestHandler):
    """An edge service's batch-size histogram: the first request is a warm-up batch of 100 texts, later ones 1."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    texts = batches = 0

    def do_POST(self) -> None:  # noqa: N802 (the http.server API)
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.005)
        with self.lock:
            handler = type(self)
            handler.texts += 1 if handler.batches else 100
            handler.batches += 1
        self._answer(b"{}")

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        with self.lock:
            text = f"hybridroute_batch_size_sum {self.texts}.0\nhybridroute_batch_size_count {self.batches}.0\n"
        self._answer(text.encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _metrics_handler() -> type[_MetricsHandler]:
    """A fresh :class:`_MetricsHandler` subclass: its own lock and counts."""
    return type("Handler", (_MetricsHandler,), {"lock": threading.Lock(), "texts": 0, "batches": 0})


def test_the_mean_batch_size_covers_the_measured_window_not_the_warm_up() -> None:
    handler = _metrics_handler()
    config = LoadConfig(concurrency=1, processes=1, warmup_s=0.4, duration_s=0.4)
    with _serving(handler) as url:
        result = measure(Target("batched"), [url], request_bodies(["hello"]), config)
    assert result.ok > 0 and handler.batches > result.ok  # the warm-up's batches happened, the 100-text one first
    assert result.mean_batch_size == 1.0  # scraped before the warm-up, it would be (100 + n - 1) / n
    assert result.server_cpu_ms_per_request is None and result.server_cores is None  # no pid: a server given by URL


def test_replicas_share_the_clients_evenly_and_their_batches_are_summed() -> None:
    first, second = _metrics_handler(), _metrics_handler()
    config = LoadConfig(concurrency=4, processes=2, warmup_s=0.3, duration_s=0.5)
    with _serving(first) as one, _serving(second) as two:
        result = measure(Target("batched"), [one, two], request_bodies(["hello"]), config)
    assert result.errors == 0 and result.ok > 0 and first.batches > 10 and second.batches > 10
    # two clients each (clients 0 and 2 on the first, 1 and 3 on the second: one of each process), equally slow
    assert 0.6 < first.batches / second.batches < 1.6, (first.batches, second.batches)
    assert result.mean_batch_size == 1.0  # both scrapes, window only: each replica's 100-text warm-up batch left out
    assert result.replicas == 2 and result.url == f"{one}, {two}" and "batched (2 processes):" in result.line()
    table = markdown_table({"batched": result.to_dict(), "unbatched": None, "plain": None, "speedup": {}})
    assert "| batched (2 processes) |" in table


def test_client_plans_carry_every_replica_and_clients_alternate_between_them() -> None:
    plans = client_plans(["http://h:1", "http://h:2"], [b"{}"], LoadConfig(concurrency=4, processes=2))
    assert [p.urls for p in plans] == [("http://h:1", "http://h:2")] * 2
    assert [(p.first_client, p.clients) for p in plans] == [(0, 2), (2, 2)]  # run_client(i) uses urls[i % 2]


def test_the_cpu_mark_of_replicas_is_their_sum_and_none_if_one_is_unreadable() -> None:
    one = CpuMark.read([os.getpid()])
    both = CpuMark.read([os.getpid(), os.getpid()])
    assert one is not None and both is not None and both.cpu_s >= 2 * one.cpu_s
    assert CpuMark.read([os.getpid(), -1]) is None


def test_batch_totals_of_joined_scrapes_are_summed() -> None:
    scrape = "hybridroute_batch_size_sum {}.0\nhybridroute_batch_size_count {}.0"
    assert mean_batch_size(scrape.format(40, 4) + "\n" + scrape.format(24, 4)) == 8.0


def test_measure_reads_the_cpu_a_server_process_used_over_the_window() -> None:
    config = LoadConfig(concurrency=2, processes=1, warmup_s=0.2, duration_s=0.6)
    with _serving(_metrics_handler()) as url:  # served by this process: its pid is the server's
        result = measure(Target("batched"), [url], request_bodies(["hello"]), config, [os.getpid()])
    assert result.ok > 0 and result.server_cpu_ms_per_request is not None and result.server_cores is not None
    cores = (os.cpu_count() or 1) + 0.1  # + clock-tick rounding
    assert result.server_cpu_ms_per_request > 0 and 0 < result.server_cores <= cores
    assert result.machine_busy_pct is not None and 0 < result.machine_busy_pct <= 100  # this process served it
    assert "server CPU" in result.line() and "% busy" in result.line()


def test_requests_that_failed_in_the_warm_up_are_reported_apart() -> None:
    with _hung_server() as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 1000, 0.6, 0.3, 0.2)
        now = time.time()
        tally = run_client(plan, 0, now + 0.3, now + 0.5)  # sent in the warm-up, timed out after the window
    result = summarize("batched", url, tally, now + 0.3, 0.2)
    assert result.errors == 0 and result.warmup_errors == 1 and result.sent == 1
    assert "(+1 in the warm-up)" in result.line()
    table = markdown_table({"batched": result.to_dict(), "unbatched": None, "plain": None, "speedup": {}})
    assert "| 0 (+1 in warm-up) |" in table


def test_a_slow_request_sent_in_the_window_counts_with_its_whole_latency() -> None:
    # Each answer takes 0.4 s, the window 0.3 s: the one request sent in it completes after it, and counts.
    with _http_server(delay_s=0.4) as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 10_000, 5.0, 0.0, 0.3)
        now = time.time()
        tally = run_client(plan, 0, now, now + 0.3)
    assert tally.sent == 1 and not tally.errors and len(tally.latencies_ms) == 1
    assert tally.latencies_ms[0] >= 400


def test_a_request_in_flight_when_the_window_opens_is_not_measured() -> None:
    # Sent 0.2 s before the window, answered inside it: it belongs to the warm-up, so throughput is not inflated.
    with _http_server(delay_s=0.3) as url:
        plan = ClientPlan((url,), (b"{}",), 1, 0, 1, 5.0, 0.2, 1.0)
        now = time.time()
        tally = run_client(plan, 0, now + 0.2, now + 1.2)
    assert tally.sent == 1 and tally.latencies_ms == [] and not tally.errors


# ---------------------------------------------------------------- CLI arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to load"),
        (["--url", "ftp://127.0.0.1:1"], "must look like http://HOST:PORT"),
        (["--url", "http://127.0.0.1:1", "--concurrency", "4", "--processes", "8"], "must be <= concurrency"),
        (["--url", "http://127.0.0.1:1", "--concurrency", "0"], "--concurrency"),
        (["--url", "http://127.0.0.1:1", "--duration", "0"], "--duration"),
        (["--run", "/no/such/run"], "--run"),
        (["--url", "http://127.0.0.1:1", "--max-batch", "1"], "--max-batch"),
        (["--url", "http://127.0.0.1:1", "--replicas", "0"], "--replicas"),
        (["--url", "http://127.0.0.1:1", "--replicas", "2"], "--replicas applies to the servers --run starts"),
    ],
)
def test_bad_arguments_are_clear_errors_without_tracebacks(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["bench", "load", *args])
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit)
    assert message in result.output and "Traceback" not in result.output


def test_more_replicas_than_clients_are_refused_before_any_server_starts(run_dir: Path) -> None:
    args = ["bench", "load", "--run", str(run_dir), "--concurrency", "2", "--processes", "1", "--replicas", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "replicas (3) must be <= concurrency (2): each replica needs a client" in result.output
    assert "starting" not in result.output


def test_more_given_urls_than_clients_are_refused_before_any_request() -> None:
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    args = ["bench", "load", *(a for u in urls for a in ("--url", u)), "--concurrency", "2", "--processes", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "batched: replicas (3) must be <= concurrency (2): each replica needs a client" in result.output
    assert "does not answer" not in result.output  # refused before any URL was tried


def test_replica_counts_are_checked_per_configuration(run_dir: Path) -> None:
    two = Target("batched", ("http://127.0.0.1:1", "http://127.0.0.1:2"))
    started = Target("unbatched")
    check_replica_counts([two, started], ServerPlan(run_dir, replicas=1), concurrency=2)
    # the plan's replica count only applies to the configurations it starts
    check_replica_counts([two], ServerPlan(run_dir, replicas=5), concurrency=2)
    with pytest.raises(ConfigError, match=r"unbatched: replicas \(3\) must be <= concurrency \(2\)"):
        check_replica_counts([two, started], ServerPlan(run_dir, replicas=3), concurrency=2)


def test_a_run_without_an_edge_bundle_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "load", "--run", str(tmp_path)])
    assert result.exit_code == 1 and "no edge bundle" in result.output


def test_a_url_where_nothing_answers_is_refused_before_any_load() -> None:
    result = CliRunner().invoke(main, ["bench", "load", "--url", f"http://127.0.0.1:{free_port()}", "--duration", "1"])
    assert result.exit_code == 1 and "does not answer 200; is the server running?" in result.output
