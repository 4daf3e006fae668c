"""The routing benchmark: every policy on one test set, its cascade curve, its cost, and the cloud over HTTP.

Steps, each reported through ``progress``:

1. the edge's calibrated probabilities for the whole test set, once (batches of 64);
2. the edge's cost per query, measured: one text at a time, ``time.process_time``
   around ``predict_proba([text])`` (all of ONNX Runtime's threads included), the
   median over a sample; this is the edge price of the *measured* mode;
3. the cloud bundle's predictions for the whole test set, once, in process;
4. every policy, the real policy objects, applied to signals built from those
   arrays: always-edge, always-cloud, random (seeded, at the operating point's
   cloud share), confidence, learned (calibrated in memory on the stored
   validation split when ``router.json`` holds another policy; the file is never
   rewritten) and the tutorial rule (cloud-first: the cloud ran on every query and
   is charged for every query); costs through :class:`CostLedger` at fixed prices
   and at measured edge CPU time;
5. the cascade curves of the confidence and learned scores (and the random
   straight line) with RouteLLM's APGR, CPT(50%) and CPT(80%), and a PNG plot;
6. the operating point: the calibrated router of ``RUN/router.json`` on the test set;
7. an HTTP check: a sample through the real cloud service on loopback must
   agree with the in-process path;
8. outages: the cloud not listening, hanging, and stopped in the middle of a run;
   every query must still be answered within the cloud budget plus the edge latency.
   The sample spreads queries the calibrated router escalates evenly among those it keeps,
   decided with each text routed alone, as the scenarios route them.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.bench.compression import cycled, print_status
from hybridroute.bench.machine import machine_info, machine_summary
from hybridroute.config import DataConfig, check_range, to_jsonable
from hybridroute.data import LabelledTexts, check_known_labels, load_labelled
from hybridroute.errors import ArtifactError, ConfigError, RoutingError
from hybridroute.files import write_bytes_atomic
from hybridroute.metrics import percentiles
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.curve import apgr, cascade_curve, cpt
from hybridroute.routing.features import EdgeSignal, FeatureConfig, make_signal
from hybridroute.routing.ledger import CostLedger, LedgerSummary, PriceConfig
from hybridroute.routing.policies import AlwaysCloud, AlwaysEdge, RandomPolicy, RoutingPolicy, TutorialPolicy
from hybridroute.routing.router_config import (
    THRESHOLD_MEANING,
    RouterConfig,
    RouterTarget,
    build_policy,
    load_router,
)
from hybridroute.runs import RunLayout
from hybridroute.runtime.bundle import read_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.types import Tier

logger = logging.getLogger(__name__)

POLICY_ORDER = ("always-edge", "always-cloud", "random", "confidence", "learned", "tutorial")
SCORED_POLICIES = ("confidence", "learned")  # policies with an escalation score, hence a cascade curve
CPT_LEVELS = (50, 80)
DEFAULT_CLOUD_SHARE = 0.05  # the CLI's calibration default, for comparisons when the router has no share
HUNG_DELAY_FACTOR = 3  # the hung service answers after 3 cloud timeouts: past the 2-timeout budget, always late
# Thread hand-offs around each cloud attempt; the test services also share this process's GIL. Reported beside
# the budget (see outage.max_over_budget_ms), so the strict figure stays visible.
OUTAGE_P99_MARGIN_MS = 10.0  # issue target: outage p99 <= the configured cloud timeout + 10 ms
SCHEDULING_ALLOWANCE_MS = 20.0
DEFINITIONS = {
    "accuracy": "share of test queries whose served answer (edge, or cloud when escalated) is right",
    "edge_share": "share of queries answered with the edge's answer",
    "cloud_call_share": "share of queries on which the cloud ran (the tutorial rule: every query)",
    "cost_per_query": "CostLedger, fixed prices: edge price per query + cloud price whenever the cloud ran",
    "cost_per_query_measured": "as cost_per_query, but the edge priced at its measured CPU seconds x cpu_hour_price",
    "savings_pct": "100 x (cloud-only cost - cost) / cloud-only cost, cloud-only = cloud price x queries",
    "apgr": "RouteLLM: area under PGR(cloud share), PGR = (acc - edge_only) / (cloud_only - edge_only)",
    "cptXX": "RouteLLM: the smallest cloud share whose PGR reaches XX%",
    "edge_cpu_seconds_per_query": "median process_time of predict_proba([text]), one text at a time",
    "outage.n": "queries over the 3 scenarios (outage_sample each): those the calibrated router escalates, "
    "with each text routed alone, spread evenly among those it keeps",
    "outage.budget_ms": "cloud call budget (2 x cloud timeout, retries included) + the edge's p99 latency",
    "outage.within_budget": "max_ms <= budget_ms + allowance_ms (thread scheduling; max_over_budget_ms is strict)",
}


# ---------------------------------------------------------------- config


@dataclass(frozen=True)
class RoutingBenchConfig:
    """What to benchmark and how hard."""

    run: Path
    test: Path
    text_col: str = "text"
    label_col: str = "label"
    limit: int = 0  # evaluate on the first N test rows only (0 = full test set); for smoke tests
    http_sample: int = 200  # texts sent through the real cloud service; 0 skips the check
    seed: int = 0  # the random baseline, the tutorial's draws and the learned policy's split
    prices: PriceConfig = field(default_factory=PriceConfig)
    queries_per_day: int = 10_000  # the monthly projection's traffic
    plot: Path | None = None  # where the PNG goes; None: beside the JSON (or the run folder)
    outage_sample: int = 200  # texts routed per outage scenario; 0 skips the outage checks
    cloud_timeout_s: float = 0.25  # per attempt; the call budget is twice this (one retry)
    timing_queries: int = 200  # single-query CPU timing sample (after warm-up)
    warmup: int = 10  # first calls allocate arenas and fill caches: not timed
    batch_size: int = 64  # the probability passes over the test set
    # texts per edge call in its pass: 1 answers each alone, as a single query at the edge is;
    # dynamic INT8 scales activations per batch, so a text's answer can change with its neighbours
    edge_batch_size: int = 64
    threads: int = 0  # ONNX Runtime intra-op threads for the edge (0 = its default, as `route` uses)

    def __post_init__(self) -> None:
        for name in ("run", "test"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.plot is not None:
            object.__setattr__(self, "plot", Path(self.plot))
            check_plot_suffix(self.plot)
        if not isinstance(self.prices, PriceConfig):
            raise ConfigError(f"prices must be a PriceConfig, got {type(self.prices).__name__}")
        if not self.text_col or not self.label_col or self.text_col == self.label_col:
            raise ConfigError(
                f"text_col and label_col must be two different non-empty names, "
                f"got {self.text_col!r} and {self.label_col!r}"
            )
        for name, low, high in (
            ("limit", 0, 10**9),
            ("http_sample", 0, 10**6),
            ("seed", 0, 2**32 - 1),
            ("queries_per_day", 0, 10**12),
            ("outage_sample", 0, 10**6),
            ("cloud_timeout_s", 0.01, 60.0),
            ("timing_queries", 1, 10**6),
            ("warmup", 0, 10**5),
            ("batch_size", 1, 4096),
            ("edge_batch_size", 1, 4096),
            ("threads", 0, 1024),
        ):
            check_range(name, getattr(self, name), low, high)

    @property
    def cloud_budget_s(self) -> float:
        """The most one cloud call may take: two attempts' worth (the client retries once)."""
        return 2.0 * self.cloud_timeout_s

    def price_modes(self) -> dict[str, PriceConfig]:
        """The prices of both modes: ``fixed`` and ``measured`` (edge at ``prices.cpu_hour_price``)."""
        return {"fixed": replace(self.prices, mode="fixed"), "measured": replace(self.prices, mode="measured")}


# ---------------------------------------------------------------- pure helpers


PLOT_FORMATS = ("png", "svg", "pdf")  # what the plot is written as, by suffix (none: PNG); each renders without LaTeX


def check_plot_suffix(path: Path) -> None:
    """Refuse a plot path whose suffix names no image format the plot is written in, before any work.

    Example: check_plot_suffix(Path("plot.csv")) -> ConfigError; check_plot_suffix(Path("plot.SVG")) -> None
    """
    suffix = path.suffix[1:].lower()
    if suffix and suffix not in PLOT_FORMATS:
        raise ConfigError(
            f"plot {path}: {path.suffix!r} is not an image format the plot can be written in; "
            f"accepted suffixes: {', '.join('.' + f for f in PLOT_FORMATS)} (none: PNG)"
        )


def gap_summary(shares: np.ndarray, accuracies: np.ndarray, edge_acc: float, cloud_acc: float) -> dict[str, Any]:
    """APGR, CPT(50%) and CPT(80%) of a curve; None for each, with a ``gap_note``, when there is no gap.

    Example: a straight line from 0.8 to 1.0 over 101 points -> {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8,
    "gap_note": None}; edge 0.9, cloud 0.8 -> all None and "cloud accuracy 0.8 is not above ..."
    """
    try:
        figures: dict[str, Any] = {"apgr": apgr(shares, accuracies, edge_acc, cloud_acc)}
        figures |= {f"cpt{p}": cpt(shares, accuracies, edge_acc, cloud_acc, p) for p in CPT_LEVELS}
    except RoutingError as exc:  # no gap to recover: publishing a number would be meaningless
        return {"apgr": None} | {f"cpt{p}": None for p in CPT_LEVELS} | {"gap_note": str(exc)}
    return figures | {"gap_note": None}


def curve_summary(shares: np.ndarray, accuracies: np.ndarray, edge_acc: float, cloud_acc: float) -> dict[str, Any]:
    """The whole curve (JSON lists) with its gap summary."""
    return {"cloud_share": [float(x) for x in shares], "accuracy": [float(y) for y in accuracies]} | gap_summary(
        shares, accuracies, edge_acc, cloud_acc
    )


def random_line(n: int, edge_acc: float, cloud_acc: float) -> tuple[np.ndarray, np.ndarray]:
    """The random router's expected curve: a straight line from edge-only to cloud-only over n + 1 points.

    Example: random_line(2, 0.8, 1.0) -> ([0, .5, 1], [.8, .9, 1.])
    """
    shares = np.arange(n + 1) / n
    return shares, edge_acc + shares * (cloud_acc - edge_acc)


def outage_indices(escalated: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` query indices, half escalated where there are enough, spread evenly among the kept ones.

    Only escalated queries meet the cloud, so a sample of mostly confident queries would barely test an outage.
    Spreading puts escalations in every stretch of the sample, in particular in both halves of the
    stopped-in-the-middle scenario, even when there are few of them. Each group keeps test order.

    Example: outage_indices(np.array([0, 1, 0, 1, 0, 0], bool), 4) -> [1, 0, 3, 2]
    """
    hard, easy = np.flatnonzero(escalated), np.flatnonzero(~escalated)
    take_hard = min(hard.size, n // 2)
    take_easy = min(easy.size, n - take_hard)
    take_hard = min(hard.size, n - take_easy)  # too few kept queries: fill up with escalated ones
    # each query's place in its own group, as a fraction; merging on it interleaves the groups evenly
    placed = [((i + 0.5) / take_hard, 0, int(hard[i])) for i in range(take_hard)]
    placed += [((i + 0.5) / take_easy, 1, int(easy[i])) for i in range(take_easy)]
    return [index for _, _, index in sorted(placed)]


def max_probability_diff(first: Mapping[str, float], second: Mapping[str, float]) -> float:
    """Largest absolute difference between two label distributions (a label missing from one counts as 0).

    Example: max_probability_diff({"a": 0.6, "b": 0.4}, {"a": 0.5, "b": 0.5}) -> 0.1 (about)
    """
    labels = set(first) | set(second)
    return max((abs(first.get(k, 0.0) - second.get(k, 0.0)) for k in labels), default=0.0)


def target_check(value: float | None, goal: str, met: bool | None) -> dict[str, Any]:
    """One published target: the measured value, the goal in words, and whether it was met (None: unknown)."""
    return {"value": value, "goal": goal, "met": met}


# ---------------------------------------------------------------- test-set outcomes


@dataclass(frozen=True, eq=False)
class TestOutcomes:
    """Everything the policies need about the test set, computed once.

    Attributes:
        signals: The edge's signal per query (calibrated probabilities + text features).
        edge_correct: Whether the edge's top label was right.
        cloud_correct: Whether the cloud's top label was right.
        cloud_confidence: The cloud's top probability (the tutorial rule reads it).
        edge_cpu_seconds: Measured CPU seconds of one edge query (median).
        edge_latency_ms: Single-query edge latency statistics (mean, p50, p95, p99).
    """

    __test__ = False  # a data class, not a pytest test class

    signals: tuple[EdgeSignal, ...]
    edge_correct: np.ndarray
    cloud_correct: np.ndarray
    cloud_confidence: np.ndarray
    edge_cpu_seconds: float
    edge_latency_ms: dict[str, float]

    @property
    def edge_accuracy(self) -> float:
        """Accuracy of always answering at the edge."""
        return float(self.edge_correct.mean())

    @property
    def cloud_accuracy(self) -> float:
        """Accuracy of always answering in the cloud."""
        return float(self.cloud_correct.mean())


@dataclass(frozen=True)
class PolicyRun:
    """What one policy did on the test set: where each query went, and the bill in both price modes."""

    escalated: np.ndarray
    cloud_ran: np.ndarray
    accuracy: float
    bills: dict[str, LedgerSummary]

    def figures(self) -> dict[str, Any]:
        """The JSON-ready figures of this policy."""
        fixed, measured = self.bills["fixed"], self.bills["measured"]
        return {
            "accuracy": self.accuracy,
            "edge_share": fixed.edge_share,
            "cloud_share": float(self.escalated.mean()),
            "cloud_call_share": float(self.cloud_ran.mean()),
            "cost_per_query": fixed.cost_per_query,
            "savings_pct": fixed.savings_pct,
            "cost_per_query_measured": measured.cost_per_query,
            "savings_pct_measured": measured.savings_pct,
            "reasons": fixed.reasons,
        }


def route_all(policy: RoutingPolicy, outcomes: TestOutcomes, prices: Mapping[str, PriceConfig]) -> PolicyRun:
    """Apply ``policy`` to every test query and bill it in each price mode.

    A cloud-first policy (the tutorial rule) sees the cloud's confidence and is
    charged for a cloud call on every query, whichever answer it keeps.
    """
    cloud_first = policy.needs_cloud_first
    signals = outcomes.signals
    if cloud_first:
        pairs = zip(signals, outcomes.cloud_confidence, strict=True)
        signals = tuple(s.with_cloud_confidence(float(c)) for s, c in pairs)
    decisions = [policy.choose_tier(s) for s in signals]
    escalated = np.array([d.escalated for d in decisions], dtype=bool)
    bills = {}
    for mode, price in prices.items():
        ledger = CostLedger(price)
        for decision in decisions:
            ledger.record(decision.tier, decision.reason, outcomes.edge_cpu_seconds, cloud_called=cloud_first or None)
        bills[mode] = ledger.summary()
    accuracy = float(np.where(escalated, outcomes.cloud_correct, outcomes.edge_correct).mean())
    cloud_ran = np.ones_like(escalated) if cloud_first else escalated
    return PolicyRun(escalated, cloud_ran, accuracy, bills)


def escalation_scores(policy: RoutingPolicy, outcomes: TestOutcomes) -> np.ndarray | None:
    """The policy's escalation score per query, or None for a policy that does not rank queries."""
    score = getattr(policy, "escalation_score", None)
    if score is None:
        return None
    return np.array([score(s) for s in outcomes.signals], dtype=np.float64)


def time_single_queries(
    predict: Callable[[list[str]], Any],
    texts: Sequence[str],
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
) -> tuple[list[float], list[float]]:
    """Wall milliseconds and CPU seconds of ``predict([text])`` for each text."""
    wall_ms, cpu_s = [], []
    for text in texts:
        started, cpu_started = clock(), cpu_clock()
        predict([text])
        wall_ms.append((clock() - started) * 1000.0)
        cpu_s.append(cpu_clock() - cpu_started)
    return wall_ms, cpu_s


def measure_edge_cost(edge: EdgeClassifier, texts: Sequence[str], config: RoutingBenchConfig) -> dict[str, Any]:
    """The edge's per-query CPU seconds (median) and latency, one text at a time, after a warm-up."""
    time_single_queries(edge.predict_proba, cycled(texts, config.warmup))
    wall_ms, cpu_s = time_single_queries(edge.predict_proba, cycled(texts, config.timing_queries, config.warmup))
    return {
        "cpu_seconds_per_query": float(np.median(cpu_s)),
        "latency_ms": percentiles(wall_ms),
        "queries_timed": len(wall_ms),
        "threads": config.threads,
    }


def measure_outcomes(
    layout: RunLayout,
    test: LabelledTexts,
    features: FeatureConfig,
    config: RoutingBenchConfig,
    progress: Callable[[str], None],
) -> tuple[TestOutcomes, dict[str, Any], dict[str, str]]:
    """Edge and cloud answers for the whole test set, the edge's measured cost, and both model versions."""
    edge = EdgeClassifier.from_dir(layout.edge, threads=config.threads)
    progress(f"[1/8] edge: calibrated probabilities for {len(test)} texts, {config.edge_batch_size} per call")
    probabilities = edge.predict_proba(test.texts, batch_size=config.edge_batch_size)
    progress(f"[2/8] edge: CPU time of {config.timing_queries} single queries")
    edge_cost = measure_edge_cost(edge, test.texts, config)
    progress(f"[3/8] cloud: in-process predictions for {len(test)} texts")
    cloud = EdgeClassifier.from_dir(layout.cloud, threads=config.threads)
    cloud_probabilities = cloud.predict_proba(test.texts, batch_size=config.batch_size)
    truth = np.array(test.labels)
    outcomes = TestOutcomes(
        signals=tuple(make_signal(t, p, edge.labels, features) for t, p in zip(test.texts, probabilities, strict=True)),
        edge_correct=np.array(edge.labels)[probabilities.argmax(axis=1)] == truth,
        cloud_correct=np.array(cloud.labels)[cloud_probabilities.argmax(axis=1)] == truth,
        cloud_confidence=cloud_probabilities.max(axis=1),
        edge_cpu_seconds=edge_cost["cpu_seconds_per_query"],
        edge_latency_ms=edge_cost["latency_ms"],
    )
    versions = {"edge_model_version": edge.model_version, "cloud_model_version": cloud.model_version}
    return outcomes, edge_cost, versions


# ---------------------------------------------------------------- policies


def comparison_share(router: RouterConfig) -> float:
    """Validation cloud share the comparison policies are calibrated to: the calibrated router's own.

    Example: a confidence router that escalated 5% of validation -> 0.05; a tutorial router -> 0.05 (default)
    """
    if router.policy in THRESHOLD_MEANING and router.metrics is not None:
        return router.metrics.expected_cloud_share
    return DEFAULT_CLOUD_SHARE


def calibrate_in_memory(layout: RunLayout, router: RouterConfig, names: Sequence[str], seed: int) -> dict[str, Any]:
    """Routers for ``names`` fitted on the stored validation split at the router's cloud share; nothing is saved."""
    from hybridroute.routing.calibrate import calibrate_router
    from hybridroute.workflow import validation_outcomes

    if not names:
        return {}
    validation, probabilities, cloud_correct = validation_outcomes(layout)
    manifest = read_manifest(layout.edge)
    labels_idx = [manifest.labels.index(y) for y in validation.labels]
    target = RouterTarget.cloud_share(comparison_share(router))
    return {
        name: calibrate_router(
            probabilities,
            labels_idx,
            manifest.labels,
            validation.texts,
            cloud_correct,
            name,
            target,
            np.random.default_rng(seed),
            temperature=manifest.temperature,
            features=router.features,
        )
        for name in names
    }


def comparison_routers(layout: RunLayout, router: RouterConfig, seed: int) -> dict[str, RouterConfig]:
    """The confidence and learned routers: the calibrated one from router.json, the other fitted in memory."""
    fitted = calibrate_in_memory(layout, router, [n for n in SCORED_POLICIES if n != router.policy], seed)
    return fitted | ({router.policy: router} if router.policy in SCORED_POLICIES else {})


def all_policies(routers: Mapping[str, RouterConfig], share: float, seed: int) -> dict[str, RoutingPolicy]:
    """Every compared policy, in :data:`POLICY_ORDER`; random at ``share``, all randomness seeded."""
    policies: dict[str, RoutingPolicy] = {
        "always-edge": AlwaysEdge(),
        "always-cloud": AlwaysCloud(),
        "random": RandomPolicy(share, np.random.default_rng(seed)),
    }
    policies |= {name: build_policy(routers[name], np.random.default_rng(seed)) for name in SCORED_POLICIES}
    policies["tutorial"] = TutorialPolicy(np.random.default_rng(seed))
    return policies


def policy_section(
    runs: Mapping[str, PolicyRun], routers: Mapping[str, RouterConfig], calibrated: str, random_share: float
) -> dict[str, dict[str, Any]]:
    """``policies.<name>``: figures plus the threshold and where it came from."""
    section = {}
    for name, run in runs.items():
        figures = run.figures()
        if name in routers:
            source = "router.json" if name == calibrated else "calibrated in memory on the validation split"
            figures |= {"threshold": routers[name].threshold, "threshold_source": source}
        elif name == "random":
            figures |= {"threshold": random_share, "threshold_source": "the operating point's test cloud share"}
        section[name] = figures
    return section


def curves_section(policies: Mapping[str, RoutingPolicy], outcomes: TestOutcomes) -> dict[str, dict[str, Any]]:
    """``curves.<policy>``: the cascade curves of the scored policies and the random straight line."""
    edge_acc, cloud_acc = outcomes.edge_accuracy, outcomes.cloud_accuracy
    curves = {}
    for name in SCORED_POLICIES:
        scores = escalation_scores(policies[name], outcomes)
        if scores is not None:
            shares, accuracies = cascade_curve(scores, outcomes.edge_correct, outcomes.cloud_correct)
            curves[name] = curve_summary(shares, accuracies, edge_acc, cloud_acc)
    shares, accuracies = random_line(len(outcomes.signals), edge_acc, cloud_acc)
    curves["random"] = curve_summary(shares, accuracies, edge_acc, cloud_acc) | {"expected": True}
    return curves


def operating_point(
    router: RouterConfig, run: PolicyRun, outcomes: TestOutcomes, queries_per_day: int
) -> dict[str, Any]:
    """The calibrated router on the test set, with the monthly projection in both price modes."""
    figures = run.figures()
    return {
        "policy": router.policy,
        "threshold": router.threshold,
        "target": router.target.to_dict() if router.target else None,
        "validation": router.metrics.to_dict() if router.metrics else None,
        "accuracy_gap_vs_cloud_points": 100.0 * (outcomes.cloud_accuracy - run.accuracy),
        "monthly": {mode: bill.monthly_projection(queries_per_day) for mode, bill in run.bills.items()},
    } | {
        k: figures[k]
        for k in (
            "accuracy",
            "edge_share",
            "cloud_share",
            "cloud_call_share",
            "cost_per_query",
            "savings_pct",
            "cost_per_query_measured",
            "savings_pct_measured",
        )
    }


# ---------------------------------------------------------------- the cloud over HTTP


def close_cloud(hybrid: Any) -> None:
    """Close the hybrid's cloud client (its connection pool), if it has one."""
    close = getattr(hybrid.cloud, "close", None)
    if close is not None:
        close()


def timed_answers(
    hybrid: Any, texts: Sequence[str], clock: Callable[[], float] = time.perf_counter
) -> tuple[list[Any], list[float]]:
    """Route each text on its own; the answers (None where routing raised) and wall milliseconds each."""
    answers, wall_ms = [], []
    for text in texts:
        started = clock()
        try:
            answer = hybrid.classify([text])[0]
        except Exception:  # the measured claim is "every query answered": a crash must be counted, not fatal
            logger.exception("routing raised instead of answering")
            answer = None
        wall_ms.append((clock() - started) * 1000.0)
        answers.append(answer)
    return answers, wall_ms


@contextmanager
def opened(settings: Any) -> Iterator[Any]:
    """``open_hybrid(settings)``, its cloud client closed at the end."""
    from hybridroute.hybrid import open_hybrid

    hybrid = open_hybrid(settings)
    try:
        yield hybrid
    finally:
        close_cloud(hybrid)


def cloud_service(layout: RunLayout, config: RoutingBenchConfig) -> Any:
    """The real cloud app, loading the run's cloud bundle in its lifespan."""
    from hybridroute.serving.cloud_app import CloudSettings, create_app

    return create_app(CloudSettings(bundle=layout.cloud, threads=config.threads))


def http_check(layout: RunLayout, texts: Sequence[str], config: RoutingBenchConfig) -> dict[str, Any]:
    """Always-cloud through the real service on loopback vs the in-process cloud: same labels, same probabilities."""
    from hybridroute.hybrid import HybridSettings
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    common: dict[str, Any] = {
        "run": layout.root,
        "policy": "always-cloud",
        "threads": config.threads,
        "seed": config.seed,
    }
    with (
        serve_in_thread(cloud_service(layout, config)) as url,
        opened(HybridSettings(cloud_url=url, **common)) as remote,
    ):
        remote_answers, remote_ms = timed_answers(remote, texts)
    with opened(HybridSettings(**common)) as local:
        local_answers, _ = timed_answers(local, texts)
    both = zip(remote_answers, local_answers, strict=True)
    pairs = [(r, loc) for r, loc in both if r is not None and loc is not None]
    same = sum(r.label == loc.label for r, loc in pairs)
    diffs = [max_probability_diff(r.probabilities, loc.probabilities) for r, loc in pairs]
    return {
        "n": len(texts),
        "agreement": same / len(texts) if texts else None,
        "max_prob_diff": max(diffs, default=None),
        "cloud_answered": sum(r is not None and r.tier is Tier.CLOUD for r in remote_answers),
        "fallbacks": sum(r is None or r.fallback for r in remote_answers),
    } | {f"{k}_ms": v for k, v in percentiles(remote_ms).items() if k in ("p50", "p95")}


# ---------------------------------------------------------------- outages


def hung_service(delay_s: float) -> Any:
    """A cloud look-alike that accepts requests and answers nothing for ``delay_s`` seconds."""
    from fastapi import FastAPI

    async def never_in_time() -> dict[str, str]:
        await asyncio.sleep(delay_s)
        return {"status": "too late"}

    app = FastAPI()
    app.add_api_route("/v1/classify", never_in_time, methods=["POST"])
    return app


@contextmanager
def unreachable_url() -> Iterator[str]:
    """A loopback URL whose port is held (so nobody else takes it) but does not listen: connections are refused."""
    from hybridroute.serving.uvicorn_runner import bind_socket, url_of

    sock = bind_socket("127.0.0.1", 0)
    try:
        yield url_of(sock)
    finally:
        sock.close()


def scenario_figures(answers: Sequence[Any], wall_ms: Sequence[float], labels: Sequence[str]) -> dict[str, Any]:
    """Answered share, fallbacks and latency of one outage scenario."""
    answered = [a for a in answers if a is not None and a.label in labels]
    return {
        "n": len(answers),
        "answered": len(answered),
        "answered_pct": 100.0 * len(answered) / len(answers) if answers else None,
        "escalated": sum(a.cloud_called or a.fallback or a.tier is Tier.CLOUD for a in answered),
        "fallbacks": sum(a.fallback for a in answered),
        "fallback_reasons": dict(Counter(a.reason for a in answered if a.fallback)),
        "p50_ms": float(np.percentile(wall_ms, 50)),
        "p99_ms": float(np.percentile(wall_ms, 99)),
        "max_ms": float(max(wall_ms)),
    }


def stopped_mid_run(
    layout: RunLayout, texts: Sequence[str], config: RoutingBenchConfig, settings: Callable[[str], Any]
) -> tuple[tuple[list[Any], list[float]], ...]:
    """Route the first half with the real service up, stop it, route the rest with the same hybrid."""
    from hybridroute.hybrid import open_hybrid
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    half = len(texts) // 2
    with ExitStack() as service:
        url = service.enter_context(serve_in_thread(cloud_service(layout, config)))
        hybrid = open_hybrid(settings(url))
        try:
            before = timed_answers(hybrid, texts[:half])
            service.close()  # the service stops here; the same client, pool and breaker carry on
            after = timed_answers(hybrid, texts[half:])
        finally:
            close_cloud(hybrid)
    return before, after


def escalated_alone(
    layout: RunLayout, router: RouterConfig, texts: Sequence[str], config: RoutingBenchConfig
) -> np.ndarray:
    """Whether the calibrated router escalates each text routed on its own, as the outage scenarios route it.

    The test pass scores ``edge_batch_size`` texts per call, and dynamic INT8 can score a text
    beside batch-mates differently from alone: picked from those decisions, an "escalated"
    query could stay at the edge in the outage and never meet the failing cloud. The edge-only
    hybrid (no cloud) marks each escalation as a fallback.
    """
    edge = EdgeClassifier.from_dir(layout.edge, threads=config.threads)
    policy = build_policy(router, np.random.default_rng(config.seed))
    hybrid = HybridClassifier(edge, policy, cloud=None, features=router.features)
    return np.array([hybrid.classify([text])[0].fallback for text in texts], dtype=bool)


def outage_check(
    layout: RunLayout,
    texts: Sequence[str],
    labels: Sequence[str],
    edge_p99_ms: float,
    config: RoutingBenchConfig,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The calibrated router with the cloud refusing, hung, and stopped half-way: every query answered in time?"""
    from hybridroute.hybrid import HybridSettings
    from hybridroute.serving.uvicorn_runner import serve_in_thread

    def settings(url: str) -> HybridSettings:
        return HybridSettings(
            layout.root,
            cloud_url=url,
            prices=config.prices,
            cloud_timeout_s=config.cloud_timeout_s,
            cloud_budget_s=config.cloud_budget_s,
            threads=config.threads,
            seed=config.seed,
        )

    runs: dict[str, tuple[list[Any], list[float]]] = {}
    progress(f"      cloud not listening ({len(texts)} queries)")
    with unreachable_url() as url, opened(settings(url)) as hybrid:
        runs["not_listening"] = timed_answers(hybrid, texts)
    progress(f"      cloud hung: accepts, never answers in time ({len(texts)} queries)")
    with (
        serve_in_thread(hung_service(HUNG_DELAY_FACTOR * config.cloud_timeout_s)) as url,
        opened(settings(url)) as hybrid,
    ):
        runs["hung"] = timed_answers(hybrid, texts)
    progress(f"      cloud stopped in the middle of the run ({len(texts)} queries)")
    before, after = stopped_mid_run(layout, texts, config, settings)
    runs["stopped_mid_run"] = (before[0] + after[0], before[1] + after[1])
    scenarios = {name: scenario_figures(*run, labels) for name, run in runs.items()}
    scenarios["stopped_mid_run"]["after_stop"] = scenario_figures(*after, labels) if after[0] else None
    every_answer = [a for answers, _ in runs.values() for a in answers]
    every_ms = [ms for _, timings in runs.values() for ms in timings]
    budget_ms = 1000.0 * config.cloud_budget_s + edge_p99_ms
    overall = scenario_figures(every_answer, every_ms, labels)
    return {k: overall[k] for k in ("n", "answered_pct", "fallbacks", "p99_ms", "max_ms")} | {
        "budget_ms": budget_ms,
        "cloud_budget_ms": 1000.0 * config.cloud_budget_s,
        "edge_p99_ms": edge_p99_ms,
        "allowance_ms": SCHEDULING_ALLOWANCE_MS,
        "max_over_budget_ms": max(0.0, overall["max_ms"] - budget_ms),
        "within_budget": overall["max_ms"] <= budget_ms + SCHEDULING_ALLOWANCE_MS,
        "cloud_timeout_s": config.cloud_timeout_s,
        "scenarios": scenarios,
    }


# ---------------------------------------------------------------- plot


def plot_path(config: RoutingBenchConfig, json_path: Path | None) -> Path:
    """Where the PNG goes: ``config.plot``, else ``<json stem>.png`` beside the JSON, else in the run folder."""
    if config.plot is not None:
        return config.plot
    if json_path is not None:
        return Path(json_path).with_suffix(".png")
    return config.run / "routing_bench.png"


def save_plot(result: Mapping[str, Any], path: Path) -> Path:
    """Accuracy against cloud share: the curves, edge-only and cloud-only lines, the operating and tutorial points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    FigureCanvasAgg(figure)  # a private Agg canvas: no pyplot, no global backend switch
    axes = figure.add_subplot()
    styles = {"confidence": "-", "learned": "-", "random": ":"}
    for name, curve in result["curves"].items():
        label = f"{name} (APGR {_cell(curve['apgr'], 3)})"
        axes.plot(curve["cloud_share"], curve["accuracy"], styles.get(name, "-"), label=label, linewidth=1.4)
    axes.axhline(result["edge_only_accuracy"], color="grey", linestyle="--", linewidth=0.8, label="edge only")
    axes.axhline(result["cloud_only_accuracy"], color="black", linestyle="--", linewidth=0.8, label="cloud only")
    point = result["operating_point"]
    axes.plot(
        [point["cloud_share"]],
        [point["accuracy"]],
        "o",
        color="tab:red",
        markersize=8,
        label=f"operating point ({point['policy']})",
    )
    tutorial = result["policies"]["tutorial"]
    axes.plot(
        [tutorial["cloud_call_share"]],
        [tutorial["accuracy"]],
        "s",
        color="tab:purple",
        markersize=7,
        label="tutorial rule (cloud ran on every query)",
    )
    axes.set_xlabel("share of queries sent to the cloud")
    axes.set_ylabel("accuracy")
    axes.set_xlim(-0.02, 1.02)
    axes.set_title(f"Routing on {result['test_rows']} test queries")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    figure.savefig(image, format=path.suffix[1:].lower() or "png", dpi=120)  # the format savefig(path) would infer
    return write_bytes_atomic(path, image.getvalue())  # an interrupted run leaves the earlier plot whole


# ---------------------------------------------------------------- orchestration


def require_routing_run(layout: RunLayout) -> RouterConfig:
    """The run's calibrated router, after checking the edge and cloud bundles exist; ArtifactError names the fix."""
    layout.require(layout.edge, "train")
    if not layout.cloud.is_dir():
        raise ArtifactError(
            f"{layout.cloud} is missing: the routing benchmark compares against the cloud tier; run "
            f"`hybridroute train --tier cloud --out {layout.root} --data TRAIN_FILE` first"
        )
    if not layout.router.is_file():
        raise ArtifactError(
            f"{layout.router} is missing: run `hybridroute calibrate --run {layout.root}` first "
            "(it fits the router on the stored validation split)"
        )
    return load_router(layout.router)


def load_test(config: RoutingBenchConfig, known_labels: Sequence[str]) -> LabelledTexts:
    """The test file (its first ``limit`` rows when set), refusing labels the model never saw."""
    test = load_labelled(DataConfig(config.test, text_col=config.text_col, label_col=config.label_col))
    if config.limit:
        test = test.subset(range(min(config.limit, len(test))))
    check_known_labels(test, known_labels)
    return test


def headline(curves: Mapping[str, Mapping[str, Any]], calibrated: str) -> dict[str, Any]:
    """Top-level APGR and CPTs: the calibrated policy's curve, or the confidence curve for unscored policies."""
    name = calibrated if calibrated in curves else "confidence"
    curve = curves[name]
    return {"curve_policy": name, "apgr": curve["apgr"], "gap_note": curve["gap_note"]} | {
        f"cpt{p}": curve[f"cpt{p}"] for p in CPT_LEVELS
    }


def targets_section(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The published targets, each with its measured value and whether it was met."""
    point, cpt80, outage = result["operating_point"], result["cpt80"], result.get("outage")
    http = result.get("http_check")
    checks = {
        "edge_share": target_check(point["edge_share"], ">= 0.95 at the operating point", point["edge_share"] >= 0.95),
        "accuracy_gap_points": target_check(
            point["accuracy_gap_vs_cloud_points"],
            "<= 0.3 points below cloud-only",
            point["accuracy_gap_vs_cloud_points"] <= 0.3,
        ),
        "savings_pct_measured": target_check(
            point["savings_pct_measured"], ">= 90 (measured mode)", point["savings_pct_measured"] >= 90.0
        ),
        "cpt80": target_check(cpt80, "<= 0.10 cloud share", None if cpt80 is None else cpt80 <= 0.10),
    }
    if http:
        checks["http_agreement"] = target_check(http["agreement"], "== 1.0", http["agreement"] == 1.0)
    if outage:
        met = outage["answered_pct"] == 100.0 and outage["within_budget"]
        limit = outage["budget_ms"] + outage["allowance_ms"]
        checks["outage"] = target_check(outage["max_ms"], f"100% answered, each <= {limit:.0f} ms", met)
        p99_limit = outage["cloud_budget_ms"] + OUTAGE_P99_MARGIN_MS
        checks["outage_p99"] = target_check(
            outage["p99_ms"], f"<= cloud timeout budget + {OUTAGE_P99_MARGIN_MS:.0f} ms", outage["p99_ms"] <= p99_limit
        )
    return checks


def evaluate_policies(
    layout: RunLayout, router: RouterConfig, outcomes: TestOutcomes, config: RoutingBenchConfig
) -> tuple[dict[str, RoutingPolicy], dict[str, PolicyRun], dict[str, RouterConfig], PolicyRun]:
    """The operating point's run, then every compared policy's (random at the operating point's cloud share)."""
    prices = config.price_modes()
    calibrated = route_all(build_policy(router, np.random.default_rng(config.seed)), outcomes, prices)
    routers = comparison_routers(layout, router, config.seed)
    policies = all_policies(routers, float(calibrated.escalated.mean()), config.seed)
    runs = {name: route_all(policy, outcomes, prices) for name, policy in policies.items()}
    return policies, runs, routers, calibrated


def run_routing_bench(
    config: RoutingBenchConfig, progress: Callable[[str], None] = print_status, json_out: Path | None = None
) -> dict[str, Any]:
    """Benchmark every routing policy of a run on a test set, plus the cloud over HTTP and under outages.

    Args:
        config: the run folder, test file, prices and sample sizes.
        progress: receives one status line per stage.
        json_out: where the caller will write the JSON; the plot goes beside it (unless ``config.plot``).

    Returns:
        The JSON-ready result (see :data:`DEFINITIONS` and the module docstring).

    Raises:
        ArtifactError: the edge bundle, cloud bundle or router.json is missing (the message names the command).
        DataError: the test file is unusable or has labels the model never saw.
    """
    layout = RunLayout.open(config.run)
    router = require_routing_run(layout)
    labels = read_manifest(layout.edge).labels
    test = load_test(config, labels)
    outcomes, edge_cost, versions = measure_outcomes(layout, test, router.features, config, progress)
    progress(f"[4/8] policies: {', '.join(POLICY_ORDER)} (calibrated: {router.policy})")
    policies, runs, routers, calibrated = evaluate_policies(layout, router, outcomes, config)
    progress("[5/8] curves, APGR and CPT")
    curves = curves_section(policies, outcomes)
    result: dict[str, Any] = {
        "test_rows": len(test),
        "edge_only_accuracy": outcomes.edge_accuracy,
        "cloud_only_accuracy": outcomes.cloud_accuracy,
        **headline(curves, router.policy),
        "policies": policy_section(runs, routers, router.policy, float(calibrated.escalated.mean())),
        "curves": curves,
        "operating_point": operating_point(router, calibrated, outcomes, config.queries_per_day),
        "edge_cost": edge_cost,
    }
    progress("[6/8] plot")
    result["plot"] = str(save_plot(result, plot_path(config, json_out)))
    result |= service_checks(layout, test.texts, labels, router, outcomes, config, progress)
    result["targets"] = targets_section(result)
    return result | {
        "machine": machine_info(),
        "settings": to_jsonable(config),
        "definitions": DEFINITIONS,
        "run": {"path": str(layout.root), "router": router.policy, "test_labels": len(set(test.labels))} | versions,
    }


def service_checks(
    layout: RunLayout,
    texts: Sequence[str],
    labels: Sequence[str],
    router: RouterConfig,
    outcomes: TestOutcomes,
    config: RoutingBenchConfig,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """``http_check`` and ``outage`` (None where their sample size is 0)."""
    checks: dict[str, Any] = {"http_check": None, "outage": None}
    if config.http_sample:
        sample = texts[: config.http_sample]
        progress(f"[7/8] HTTP check: {len(sample)} texts through the cloud service on loopback vs in process")
        checks["http_check"] = http_check(layout, sample, config)
    if config.outage_sample:
        progress(f"[8/8] outages (cloud timeout {config.cloud_timeout_s} s, budget {config.cloud_budget_s} s)")
        progress(f"      outage sample: the calibrated router's decision for each of {len(texts)} texts alone")
        escalated = escalated_alone(layout, router, texts, config)
        sample = [texts[i] for i in outage_indices(escalated, config.outage_sample)]
        edge_p99_ms = outcomes.edge_latency_ms["p99"]
        checks["outage"] = outage_check(layout, sample, labels, edge_p99_ms, config, progress)
    return checks


# ---------------------------------------------------------------- reporting


def gap_in_words(points_below_cloud: float) -> str:
    """The operating point against cloud-only in words: a negative gap is a lead."""
    side = "below" if points_below_cloud >= 0 else "above"
    return f"{_cell(abs(points_below_cloud), 2)} points {side} cloud only"


def _cell(value: float | None, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _money(value: float) -> str:
    return f"{value:.3g}"  # measured edge costs are around 1e-7 USD: fixed decimals would print 0


def _policy_row(name: str, figures: Mapping[str, Any], calibrated: str) -> str:
    marker = " (calibrated)" if name == calibrated else ""
    cells = [
        name + marker,
        _cell(100 * figures["accuracy"], 2),
        _cell(100 * figures["edge_share"], 1),
        _cell(100 * figures["cloud_call_share"], 1),
        _money(figures["cost_per_query"]),
        _cell(figures["savings_pct"], 1),
        _money(figures["cost_per_query_measured"]),
        _cell(figures["savings_pct_measured"], 1),
    ]
    return "| " + " | ".join(cells) + " |"


def _footnotes(result: Mapping[str, Any]) -> list[str]:
    point, http, outage = result["operating_point"], result.get("http_check"), result.get("outage")
    gap = f" ({result['gap_note']})" if result.get("gap_note") else ""
    lines = [
        f"- Edge only {_cell(100 * result['edge_only_accuracy'], 2)}%, cloud only "
        f"{_cell(100 * result['cloud_only_accuracy'], 2)}% on {result['test_rows']} test rows",
        f"- {result['curve_policy']} curve: APGR {_cell(result['apgr'], 3)}, CPT(50%) {_cell(result['cpt50'], 3)}, "
        f"CPT(80%) {_cell(result['cpt80'], 3)}{gap}",
        f"- Operating point ({point['policy']}, threshold {_cell(point['threshold'], 4)}): accuracy "
        f"{_cell(100 * point['accuracy'], 2)}%, edge share {_cell(100 * point['edge_share'], 1)}%, "
        f"{gap_in_words(point['accuracy_gap_vs_cloud_points'])}, savings "
        f"{_cell(point['savings_pct'], 1)}% fixed / {_cell(point['savings_pct_measured'], 1)}% measured",
        f"- Edge cost measured: {result['edge_cost']['cpu_seconds_per_query'] * 1000:.2f} CPU ms per query",
    ]
    if http:
        lines.append(
            f"- HTTP check: {http['n']} texts, agreement {_cell(http['agreement'], 4)}, max prob diff "
            f"{_cell(http['max_prob_diff'], 6)}, p50 {_cell(http['p50_ms'], 1)} ms, "
            f"p95 {_cell(http['p95_ms'], 1)} ms"
        )
    if outage:
        lines.append(
            f"- Outages: {_cell(outage['answered_pct'], 1)}% answered, {outage['fallbacks']} fallbacks, "
            f"p99 {_cell(outage['p99_ms'], 1)} ms, max {_cell(outage['max_ms'], 1)} ms "
            f"(budget {_cell(outage['budget_ms'], 1)} ms + {_cell(outage['allowance_ms'], 0)} ms allowance)"
        )
    lines.append(f"- Machine: {machine_summary(result.get('machine', {}))}")
    return lines


def markdown_table(result: Mapping[str, Any]) -> str:
    """The benchmark as a Markdown table, one row per policy, then the headline figures."""
    header = (
        "| Policy | Accuracy % | Edge share % | Cloud calls % | $/query fixed | Savings % fixed "
        "| $/query measured | Savings % measured |"
    )
    calibrated = result["operating_point"]["policy"]
    rows = [_policy_row(name, figures, calibrated) for name, figures in result["policies"].items()]
    return "\n".join([header, "|" + "---|" * 8, *rows, "", *_footnotes(result)])
