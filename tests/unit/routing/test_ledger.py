from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing.ledger import CostLedger, PriceConfig, cloud_ran, savings_pct
from hybridroute.types import Tier


def fill(ledger: CostLedger, escalated: int = 5, total: int = 100, **kwargs: object) -> None:
    for i in range(total):
        tier, reason = (Tier.CLOUD, "low_confidence") if i < escalated else (Tier.EDGE, "confident")
        ledger.record(tier, reason, **kwargs)  # type: ignore[arg-type]


def test_fixed_prices_hand_worked() -> None:
    ledger = CostLedger()
    fill(ledger)
    summary = ledger.summary()
    assert (summary.queries, summary.edge_queries, summary.cloud_calls) == (100, 95, 5)
    assert summary.edge_share == pytest.approx(0.95)
    assert summary.edge_cost == pytest.approx(100 * 0.001)
    assert summary.cloud_cost == pytest.approx(5 * 0.0136)
    assert summary.total_cost == pytest.approx(0.168)
    assert summary.cost_per_query == pytest.approx(0.00168)
    assert summary.cloud_only_cost == pytest.approx(1.36)
    assert summary.savings_pct == pytest.approx(87.647, abs=1e-3)
    assert summary.reasons == {"low_confidence": 5, "confident": 95}


def test_record_returns_the_cost_of_the_query() -> None:
    ledger = CostLedger()
    assert ledger.record(Tier.EDGE, "confident") == pytest.approx(0.001)
    assert ledger.record(Tier.CLOUD, "low_confidence") == pytest.approx(0.0146)
    assert ledger.record(Tier.EDGE, "cloud_failed", cloud_called=True) == pytest.approx(0.0146)


def test_measured_mode_charges_cpu_time() -> None:
    prices = PriceConfig(mode="measured", cpu_hour_price=0.05)
    ledger = CostLedger(prices)
    per_edge = 0.02 * 0.05 / 3600  # 20 ms of CPU at 0.05 USD per CPU-hour
    assert ledger.record(Tier.EDGE, "confident", edge_cpu_seconds=0.02) == pytest.approx(per_edge)
    fill(ledger, total=99, escalated=5, edge_cpu_seconds=0.02)
    summary = ledger.summary()
    assert summary.total_cost == pytest.approx(100 * per_edge + 5 * 0.0136)
    assert summary.savings_pct == pytest.approx(100 * (1.36 - summary.total_cost) / 1.36)
    assert prices.edge_cost(36.0) == pytest.approx(0.0005)


def test_cores_convert_wall_time_to_cpu_time() -> None:
    assert PriceConfig(cores=4).cpu_seconds(0.01) == pytest.approx(0.04)


def test_tutorial_accounting_pays_the_cloud_on_every_query() -> None:
    ledger = CostLedger()
    for i in range(100):
        tier = Tier.CLOUD if i < 5 else Tier.EDGE
        ledger.record(tier, "tutorial_edge_preference" if tier is Tier.EDGE else "tutorial_complex", cloud_called=True)
    summary = ledger.summary()
    assert summary.cloud_calls == 100
    assert summary.edge_queries == 95
    assert summary.total_cost == pytest.approx(100 * (0.001 + 0.0136))
    assert summary.total_cost > summary.cloud_only_cost
    assert summary.savings_pct == pytest.approx(100 * (1.36 - 1.46) / 1.36)
    assert summary.savings_pct < 0


def test_monthly_projection() -> None:
    ledger = CostLedger()
    fill(ledger)
    projection = ledger.summary().monthly_projection(10_000)
    assert projection["daily_cost"] == pytest.approx(16.8)
    assert projection["monthly_cost"] == pytest.approx(504.0)
    assert projection["daily_cloud_only_cost"] == pytest.approx(136.0)
    assert projection["monthly_cloud_only_cost"] == pytest.approx(4080.0)
    assert projection["monthly_savings"] == pytest.approx(3576.0)
    with pytest.raises(ConfigError, match="queries_per_day"):
        ledger.summary().monthly_projection(-1)


def test_empty_ledger() -> None:
    summary = CostLedger().summary()
    assert (summary.queries, summary.total_cost, summary.cost_per_query) == (0, 0.0, 0.0)
    assert (summary.edge_share, summary.savings_pct, summary.reasons) == (0.0, 0.0, {})
    assert summary.monthly_projection(1000)["monthly_cost"] == 0.0


def test_inconsistent_records_are_rejected() -> None:
    ledger = CostLedger()
    with pytest.raises(RoutingError, match="cloud_called=False"):
        ledger.record(Tier.CLOUD, "x", cloud_called=False)
    with pytest.raises(RoutingError, match="edge_cpu_seconds"):
        ledger.record(Tier.EDGE, "x", edge_cpu_seconds=-1.0)
    with pytest.raises(RoutingError, match="Tier"):
        ledger.record("edge", "x")  # type: ignore[arg-type]
    assert ledger.summary().queries == 0


def test_helpers() -> None:
    assert savings_pct(0.168, 1.36) == pytest.approx(87.647, abs=1e-3)
    assert savings_pct(1.0, 0.0) == 0.0
    assert cloud_ran(Tier.EDGE, None) is False
    assert cloud_ran(Tier.EDGE, True) is True
    assert cloud_ran(Tier.CLOUD, None) is True


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "metered"}, "mode"),
        ({"edge_per_query": -0.001}, "edge_per_query"),
        ({"cloud_per_query": -1}, "cloud_per_query"),
        ({"cpu_hour_price": -0.05}, "cpu_hour_price"),
        ({"cores": 0}, "cores"),
    ],
)
def test_price_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        PriceConfig(**kwargs)


class YieldingCounter(Counter):
    """A Counter that hands the GIL to other threads between reading a count and writing it back.

    ``counter[key] += 1`` reads, yields, then writes, so two threads updating it without a lock
    overwrite each other's counts (lost updates) in practically every run, not once in a while.
    """

    def __getitem__(self, key: str) -> int:
        value = super().__getitem__(key)
        time.sleep(0)  # releases the GIL: another thread runs between the read and the write
        return value


def run_together(workers: int, work: Callable[[], None]) -> None:
    barrier = threading.Barrier(workers)

    def start_together() -> None:
        barrier.wait()
        work()

    threads = [threading.Thread(target=start_together) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_yielding_counter_loses_updates_without_a_lock() -> None:
    # The control for the tests below: the race they guard against really happens here.
    counter = YieldingCounter()

    def work() -> None:
        for _ in range(500):
            counter["x"] += 1

    run_together(4, work)
    assert counter["x"] < 0.9 * 2000


def test_concurrent_records_lose_no_updates() -> None:
    ledger = CostLedger()
    ledger._reasons = YieldingCounter()

    def work() -> None:
        for _ in range(250):
            ledger.record(Tier.CLOUD, "low_confidence")
            ledger.record(Tier.EDGE, "confident")

    run_together(4, work)
    summary = ledger.summary()
    assert (summary.queries, summary.cloud_calls, summary.edge_queries) == (2000, 1000, 1000)
    assert summary.reasons == {"low_confidence": 1000, "confident": 1000}
    assert summary.total_cost == pytest.approx(2000 * 0.001 + 1000 * 0.0136)


class PausingCounter(Counter):
    """A Counter whose first read pauses the reading thread until ``resume`` is set (or a second passes)."""

    def __init__(self) -> None:
        super().__init__()
        self.halfway, self.resume = threading.Event(), threading.Event()

    def __getitem__(self, key: str) -> int:
        value = super().__getitem__(key)
        if not self.halfway.is_set():
            self.halfway.set()
            self.resume.wait(timeout=1.0)
        return value


def summary_counts(ledger: CostLedger) -> tuple[int, int]:
    """(queries, reasons counted) of a summary: equal in every consistent snapshot."""
    summary = ledger.summary()
    return summary.queries, sum(summary.reasons.values())


def test_a_summary_waits_for_the_record_in_progress() -> None:
    # The record pauses halfway (its query is counted, its reason not yet). A summary taken then must wait
    # for it to finish: without the lock it would return at once, counting a query without its reason.
    ledger = CostLedger()
    ledger._reasons = reasons = PausingCounter()
    snapshots: list[tuple[int, int]] = []
    writer = threading.Thread(target=ledger.record, args=(Tier.EDGE, "confident"))
    reader = threading.Thread(target=lambda: snapshots.append(summary_counts(ledger)))
    writer.start()
    assert reasons.halfway.wait(timeout=5.0)
    reader.start()
    reader.join(timeout=0.2)
    waited = reader.is_alive()
    reasons.resume.set()
    writer.join()
    reader.join()
    assert snapshots == [(1, 1)]
    assert waited
