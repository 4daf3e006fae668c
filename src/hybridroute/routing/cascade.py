"""The edge-first cascade: the edge answers every query, the policy escalates the hard ones.

The cloud runs only for escalated queries (and, for the cloud-first tutorial
baseline, for every query, which the ledger charges). When the cloud cannot
answer (down, slow, garbage, circuit open), the caller gets the edge answer
marked as a fallback with the reason: never an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hybridroute.redaction import Redactor
from hybridroute.routing.features import EdgeSignal, FeatureConfig, make_signal
from hybridroute.routing.ledger import CostLedger
from hybridroute.routing.policies import Decision, RoutingPolicy
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.types import Prediction, Tier

logger = logging.getLogger(__name__)

NO_CLOUD = "no_cloud"


class CloudAnswer(Protocol):
    """What a cloud backend returns (``hybridroute.serving.cloud_client.CloudResult``)."""

    ok: bool
    predictions: list[Prediction] | None
    model_version: str | None
    error: str | None
    attempts: int
    latency_ms: float

    def version_of(self, k: int) -> str | None:
        """The version of the model that made prediction ``k``."""
        ...

    def prediction_of(self, k: int) -> Prediction | None:
        """The cloud's prediction for text ``k``, or None when it has none (some calls succeed in part)."""
        ...

    def model_ran(self, k: int) -> bool:
        """Whether the cloud model may have run for text ``k``, so that it is charged."""
        ...


class CloudBackend(Protocol):
    """The cloud tier, over HTTP or in process; reports failures instead of raising."""

    def classify(self, texts: Sequence[str]) -> Any:
        """Classify texts; returns a :class:`CloudAnswer`."""
        ...


@dataclass(frozen=True)
class RoutedAnswer:
    """One answered query: what was answered, where, why, how fast and at what cost."""

    label: str
    confidence: float
    tier: Tier
    reason: str
    latency_ms: float
    cost: float
    model_version: str
    edge_label: str
    edge_confidence: float
    cloud_called: bool = False
    fallback: bool = False
    edge_cpu_seconds: float = 0.0
    probabilities: dict[str, float] = field(default_factory=dict, repr=False)
    edge_latency_ms: float | None = None  # the edge model's share of its batch
    cloud_latency_ms: float | None = None  # the cloud call's time; None when the cloud was not asked
    redactions: dict[str, int] = field(default_factory=dict)  # entities replaced before this text went to the cloud

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the full distribution)."""
        return {
            "label": self.label,
            "confidence": self.confidence,
            "tier": self.tier.value,
            "reason": self.reason,
            "latency_ms": self.latency_ms,
            "cost": self.cost,
            "model_version": self.model_version,
            "edge_label": self.edge_label,
            "edge_confidence": self.edge_confidence,
            "cloud_called": self.cloud_called,
            "fallback": self.fallback,
            "edge_cpu_seconds": self.edge_cpu_seconds,
            "redactions": dict(self.redactions),
        }


@dataclass(frozen=True)
class _EdgePass:
    probabilities: np.ndarray
    signals: list[EdgeSignal]
    latency_ms: float  # per query
    cpu_seconds: float  # per query


@dataclass
class HybridClassifier:
    """Edge model + routing policy + optional cloud backend + cost ledger.

    Build from parts (tests pass fakes) or from a run folder with
    ``hybridroute.routing.loading.hybrid_from_run``.
    """

    edge: EdgeClassifier
    policy: RoutingPolicy
    cloud: CloudBackend | None = None
    ledger: CostLedger = field(default_factory=CostLedger)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    clock: Callable[[], float] = time.perf_counter
    cpu_clock: Callable[[], float] = time.process_time  # includes ONNX Runtime's worker threads
    # Personal data is replaced before any text leaves the edge; None sends texts as typed (an explicit opt-out).
    redactor: Redactor | None = field(default_factory=Redactor)

    def classify(self, texts: Sequence[str]) -> list[RoutedAnswer]:
        """Answer every text: edge first, escalations to the cloud, fallbacks marked."""
        if not texts:
            return []
        edge = self._run_edge(texts)
        decisions, cloud_first = self._decide(texts, edge.signals)
        escalated = [i for i, d in enumerate(decisions) if d.tier is Tier.CLOUD]
        cloud = cloud_first if cloud_first is not None else self._ask_cloud(texts, escalated)
        return [self._answer(i, edge, decisions[i], cloud) for i in range(len(texts))]

    # ------------------------------------------------------------ steps

    def _run_edge(self, texts: Sequence[str]) -> _EdgePass:
        started, cpu_started = self.clock(), self.cpu_clock()
        probabilities = self.edge.predict_proba(texts)
        wall, cpu = self.clock() - started, self.cpu_clock() - cpu_started
        signals = [
            make_signal(t, p, self.edge.labels, self.features) for t, p in zip(texts, probabilities, strict=True)
        ]
        return _EdgePass(probabilities, signals, 1000.0 * wall / len(texts), cpu / len(texts))

    def _decide(self, texts: Sequence[str], signals: list[EdgeSignal]) -> tuple[list[Decision], Any]:
        if not self.policy.needs_cloud_first:
            return [self.policy.choose_tier(s) for s in signals], None
        # The tutorial baseline asks the cloud about every query before deciding.
        cloud = self._ask_cloud(texts, list(range(len(texts))))
        if cloud is None or not cloud.result.ok:
            reason = NO_CLOUD if cloud is None else str(cloud.result.error)
            return [Decision(Tier.EDGE, f"fallback:{reason}") for _ in signals], cloud
        with_cloud = [
            s.with_cloud_confidence(p.confidence) for s, p in zip(signals, cloud.result.predictions, strict=True)
        ]
        return [self.policy.choose_tier(s) for s in with_cloud], cloud

    def _ask_cloud(self, texts: Sequence[str], indices: list[int]) -> Any:
        if not indices or self.cloud is None:
            return None
        outgoing, redactions = self._redact([texts[i] for i in indices])
        result = self.cloud.classify(outgoing)
        if not result.ok:  # the cloud client has logged the failure itself (open circuits only when they open)
            logger.debug("cloud tier failed (%s); answering %d queries at the edge", result.error, len(indices))
        return _Indexed(result, indices, redactions)

    def _redact(self, texts: list[str]) -> tuple[list[str], list[dict[str, int]]]:
        """The texts as they may leave the edge, and the entities replaced in each."""
        if self.redactor is None:
            return texts, [{} for _ in texts]
        redactions = self.redactor.redact_many(texts)
        return [r.text for r in redactions], [r.counts for r in redactions]

    def _answer(self, i: int, edge: _EdgePass, decision: Decision, cloud: Any) -> RoutedAnswer:
        edge_prediction = self._edge_prediction(edge.probabilities[i])
        consulted = cloud is not None and i in cloud.position
        called = consulted and cloud.model_ran(i)
        latency = edge.latency_ms + (cloud.result.latency_ms if consulted else 0.0)
        from_cloud = cloud.prediction(i) if consulted and decision.tier is Tier.CLOUD else None
        if from_cloud is not None:
            answer, tier, reason, version = from_cloud, Tier.CLOUD, decision.reason, cloud.version(i)
        else:
            answer, tier, version = edge_prediction, Tier.EDGE, self.edge.model_version
            reason = self._edge_reason(decision, cloud)
        cost = self.ledger.record(tier, reason, edge.cpu_seconds, cloud_called=called or None)
        return RoutedAnswer(
            answer.label,
            answer.confidence,
            tier,
            reason,
            latency,
            cost,
            str(version),
            edge_prediction.label,
            edge_prediction.confidence,
            called,
            reason.startswith("fallback:"),
            edge.cpu_seconds,
            answer.probabilities,
            edge_latency_ms=edge.latency_ms,
            cloud_latency_ms=cloud.result.latency_ms if consulted else None,
            redactions=cloud.redactions_for(i) if consulted else {},
        )

    def _edge_reason(self, decision: Decision, cloud: Any) -> str:
        if decision.tier is Tier.EDGE:
            return decision.reason
        return f"fallback:{NO_CLOUD if cloud is None else cloud.result.error}"

    def _edge_prediction(self, probabilities: np.ndarray) -> Prediction:
        best = int(probabilities.argmax())
        return Prediction(
            self.edge.labels[best],
            float(probabilities[best]),
            {label: float(p) for label, p in zip(self.edge.labels, probabilities, strict=True)},
        )


@dataclass(frozen=True)
class _Indexed:
    """A cloud result for a subset of the batch, addressable by the original index."""

    result: Any
    indices: list[int]
    redactions: list[dict[str, int]] = field(default_factory=list)  # per escalated text, in ``indices`` order
    position: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", {original: k for k, original in enumerate(self.indices)})

    def prediction(self, original_index: int) -> Prediction | None:
        return self.result.prediction_of(self.position[original_index])

    def model_ran(self, original_index: int) -> bool:
        return bool(self.result.model_ran(self.position[original_index]))

    def version(self, original_index: int) -> str | None:
        return self.result.version_of(self.position[original_index])

    def redactions_for(self, original_index: int) -> dict[str, int]:
        return self.redactions[self.position[original_index]] if self.redactions else {}
