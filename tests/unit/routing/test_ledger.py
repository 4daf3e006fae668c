from __future__ import annotations

import threading

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


def test_record_is_thread_safe() -> None:
    ledger = CostLedger()

    def work() -> None:
        for _ in range(500):
            ledger.record(Tier.CLOUD, "low_confidence")
            ledger.record(Tier.EDGE, "confident")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = ledger.summary()
    assert (summary.queries, summary.cloud_calls, summary.edge_queries) == (4000, 2000, 2000)
    assert summary.reasons == {"low_confidence": 2000, "confident": 2000}
    assert summary.total_cost == pytest.approx(4000 * 0.001 + 2000 * 0.0136)
