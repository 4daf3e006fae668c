"""The honest cost of every answer: the edge always, the cloud whenever it ran.

Every query pays the edge (it answers first). A query also pays the cloud when
the cloud ran: it was escalated (``Tier.CLOUD``), or the cloud was called
anyway (``cloud_called=True``: the cloud-first tutorial baseline, or an
escalation whose cloud call failed and fell back to the edge answer).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from hybridroute.config import check_choice, check_positive, check_range
from hybridroute.errors import RoutingError
from hybridroute.types import Tier

PRICE_MODES = ("fixed", "measured")
DAYS_PER_MONTH = 30  # the projection's month, stated rather than calendar-exact


@dataclass(frozen=True)
class PriceConfig:
    """Prices of one query on each tier.

    ``fixed`` charges ``edge_per_query`` for every edge run; ``measured`` charges
    the edge's CPU seconds at ``cpu_hour_price``. The cloud is always a fixed
    price per call.

    Attributes:
        edge_per_query: USD per edge inference in fixed mode.
        cloud_per_query: USD per cloud call.
        mode: "fixed" or "measured".
        cpu_hour_price: USD per CPU-hour in measured mode.
        cores: Cores an edge query occupies; converts wall time to CPU time (:meth:`cpu_seconds`).
    """

    edge_per_query: float = 0.001  # the tutorial's defaults, kept for comparability
    cloud_per_query: float = 0.0136
    mode: str = "fixed"
    cpu_hour_price: float = 0.05  # a typical on-demand cloud vCPU-hour (about 0.04-0.05 USD)
    cores: int = 1  # the edge runtime runs one ONNX session per query on one core by default

    def __post_init__(self) -> None:
        check_range("edge_per_query", self.edge_per_query, 0.0, 1e3)
        check_range("cloud_per_query", self.cloud_per_query, 0.0, 1e3)
        check_choice("mode", self.mode, PRICE_MODES)
        check_range("cpu_hour_price", self.cpu_hour_price, 0.0, 1e3)
        check_positive("cores", self.cores)

    def cpu_seconds(self, wall_seconds: float) -> float:
        """CPU seconds of an edge run that held ``cores`` cores for ``wall_seconds``.

        Example: PriceConfig(cores=2).cpu_seconds(0.01) -> 0.02
        """
        return wall_seconds * self.cores

    def edge_cost(self, edge_cpu_seconds: float) -> float:
        """USD for one edge run: the fixed price, or CPU seconds × ``cpu_hour_price`` / 3600.

        Example: PriceConfig(mode="measured").edge_cost(36.0) -> 36 × 0.05 / 3600 = 0.0005
        """
        if edge_cpu_seconds < 0:
            raise RoutingError(f"edge_cpu_seconds must be >= 0, got {edge_cpu_seconds!r}")
        if self.mode == "fixed":
            return self.edge_per_query
        return edge_cpu_seconds * self.cpu_hour_price / 3600.0


@dataclass(frozen=True)
class LedgerSummary:
    """Totals of a ledger, and the same traffic priced as cloud-only.

    Attributes:
        queries: Queries recorded.
        edge_queries: Queries answered on the edge.
        cloud_calls: Queries on which the cloud ran (escalated or called anyway).
        edge_share: ``edge_queries / queries`` (0.0 when empty).
        edge_cost: USD spent on the edge.
        cloud_cost: USD spent on the cloud.
        total_cost: ``edge_cost + cloud_cost``.
        cost_per_query: ``total_cost / queries`` (0.0 when empty).
        reasons: Count of decisions per reason code.
        cloud_price: USD per cloud call, used for the cloud-only comparison.
        cloud_only_cost: ``queries × cloud_price``: the cloud alone answering everything.
        savings_pct: ``100 × (cloud_only_cost - total_cost) / cloud_only_cost``; negative
            when the hybrid costs more (0.0 when nothing was recorded).
    """

    queries: int
    edge_queries: int
    cloud_calls: int
    edge_share: float
    edge_cost: float
    cloud_cost: float
    total_cost: float
    cost_per_query: float
    reasons: dict[str, int]
    cloud_price: float
    cloud_only_cost: float
    savings_pct: float

    def monthly_projection(self, queries_per_day: float) -> dict[str, float]:
        """Daily and 30-day costs at ``queries_per_day``, hybrid vs cloud-only, at this ledger's rates.

        Example: cost_per_query 0.00168, cloud 0.0136, 10 000/day -> daily 16.8 vs 136, monthly 504 vs 4080
        """
        check_range("queries_per_day", queries_per_day, 0.0, 1e12)
        daily, daily_cloud = self.cost_per_query * queries_per_day, self.cloud_price * queries_per_day
        return {
            "queries_per_day": float(queries_per_day),
            "daily_cost": daily,
            "monthly_cost": daily * DAYS_PER_MONTH,
            "daily_cloud_only_cost": daily_cloud,
            "monthly_cloud_only_cost": daily_cloud * DAYS_PER_MONTH,
            "monthly_savings": (daily_cloud - daily) * DAYS_PER_MONTH,
        }


def savings_pct(total_cost: float, cloud_only_cost: float) -> float:
    """Percent saved against cloud-only; 0.0 when cloud-only costs nothing.

    Example: savings_pct(0.168, 1.36) -> 87.647...
    """
    return 100.0 * (cloud_only_cost - total_cost) / cloud_only_cost if cloud_only_cost > 0 else 0.0


def cloud_ran(tier: Tier, cloud_called: bool | None) -> bool:
    """Whether the cloud ran for a query: escalated, or called anyway.

    Example: cloud_ran(Tier.EDGE, True) -> True (tutorial baseline or failed escalation)
    """
    if not isinstance(tier, Tier):
        raise RoutingError(f"tier must be a Tier, got {tier!r}")
    if tier is Tier.CLOUD and cloud_called is False:
        raise RoutingError("a query answered by the cloud cannot have cloud_called=False")
    return tier is Tier.CLOUD or bool(cloud_called)


@dataclass
class CostLedger:
    """Running cost totals; thread-safe (``record`` may be called from many request threads).

    Keeps counters, not per-query rows, so memory stays constant however long it runs.
    """

    prices: PriceConfig = field(default_factory=PriceConfig)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _queries: int = field(default=0, init=False)
    _edge_queries: int = field(default=0, init=False)
    _cloud_calls: int = field(default=0, init=False)
    _edge_cost: float = field(default=0.0, init=False)
    _reasons: Counter[str] = field(default_factory=Counter, init=False)

    def record(self, tier: Tier, reason: str, edge_cpu_seconds: float = 0.0, cloud_called: bool | None = None) -> float:
        """Count one answered query and return its cost in USD.

        Args:
            tier: The tier whose answer was served.
            reason: The decision's reason code.
            edge_cpu_seconds: CPU seconds the edge spent (used in "measured" mode).
            cloud_called: ``True`` when the cloud ran although the edge answer was served;
                ``None`` means "only if escalated".

        Returns:
            Edge cost plus the cloud price when the cloud ran.

        Raises:
            RoutingError: For a negative CPU time, or ``Tier.CLOUD`` with ``cloud_called=False``.
        """
        edge_cost = self.prices.edge_cost(edge_cpu_seconds)
        called = cloud_ran(tier, cloud_called)
        with self._lock:
            self._queries += 1
            self._edge_queries += tier is Tier.EDGE
            self._cloud_calls += called
            self._edge_cost += edge_cost
            self._reasons[reason] += 1
        return edge_cost + (self.prices.cloud_per_query if called else 0.0)

    def summary(self) -> LedgerSummary:
        """A consistent snapshot of the totals so far."""
        with self._lock:
            queries, edge_queries, calls = self._queries, self._edge_queries, self._cloud_calls
            edge_cost, reasons = self._edge_cost, dict(self._reasons)
        cloud_cost = calls * self.prices.cloud_per_query
        total, cloud_only = edge_cost + cloud_cost, queries * self.prices.cloud_per_query
        return LedgerSummary(
            queries=queries,
            edge_queries=edge_queries,
            cloud_calls=calls,
            edge_share=edge_queries / queries if queries else 0.0,
            edge_cost=edge_cost,
            cloud_cost=cloud_cost,
            total_cost=total,
            cost_per_query=total / queries if queries else 0.0,
            reasons=reasons,
            cloud_price=self.prices.cloud_per_query,
            cloud_only_cost=cloud_only,
            savings_pct=savings_pct(total, cloud_only),
        )
