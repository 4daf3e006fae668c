"""Routing policies: given what the edge knows about a query, answer here or escalate.

Score convention: a policy that ranks queries exposes ``escalation_score(signal)``,
where higher means "more likely to escalate", and puts it in ``Decision.score``.
:class:`ConfidencePolicy` scores ``1 - confidence``; :class:`LearnedPolicy` scores
the predicted probability that the edge answer is wrong. Policies without a
ranking (always-edge, always-cloud, random, tutorial) give ``score=None``.

Cloud-first baselines: a policy with ``needs_cloud_first = True`` (only the
tutorial rule) must be given a signal whose ``cloud_confidence`` is set, which
means the caller has already run the cloud model on the query. Its cost is then
edge + cloud for every query, whatever tier it finally picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from hybridroute.config import check_probability
from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing.features import EdgeSignal, feature_vector
from hybridroute.routing.learned import LogisticModel
from hybridroute.types import Tier


@dataclass(frozen=True)
class Decision:
    """Where one query goes, and why.

    Attributes:
        tier: ``Tier.EDGE`` to answer with the edge model, ``Tier.CLOUD`` to escalate.
        reason: Short machine-friendly code, e.g. ``"low_confidence"``.
        score: The policy's escalation score (higher = more likely to escalate), if it has one.
    """

    tier: Tier
    reason: str
    score: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tier, Tier):
            raise ConfigError(f"tier must be a Tier, got {self.tier!r}")
        if not self.reason or not self.reason.strip():
            raise ConfigError(f"reason must be a non-empty code, got {self.reason!r}")

    @property
    def escalated(self) -> bool:
        """True when the query goes to the cloud."""
        return self.tier is Tier.CLOUD


class RoutingPolicy(Protocol):
    """What every policy provides: a name, whether it needs the cloud first, and one decision method."""

    @property
    def name(self) -> str:
        """Registry name of the policy, e.g. ``"confidence"``."""
        ...

    @property
    def needs_cloud_first(self) -> bool:
        """True when the caller must run the cloud and set ``signal.cloud_confidence`` before asking."""
        ...

    def choose_tier(self, signal: EdgeSignal) -> Decision:
        """Decide where the query described by ``signal`` is answered."""
        ...


def threshold_decision(score: float, escalate: bool, reasons: tuple[str, str]) -> Decision:
    """A decision from a score and a comparison already made; ``reasons`` is (edge, cloud).

    Example: threshold_decision(0.7, True, ("confident", "low_confidence"))
    -> Decision(Tier.CLOUD, "low_confidence", 0.7)
    """
    return Decision(Tier.CLOUD if escalate else Tier.EDGE, reasons[escalate], score)


@dataclass(frozen=True)
class AlwaysEdge:
    """Never escalate: the cheapest baseline (edge accuracy, edge cost)."""

    name: ClassVar[str] = "always-edge"
    needs_cloud_first: ClassVar[bool] = False

    def choose_tier(self, signal: EdgeSignal) -> Decision:  # noqa: ARG002 (the Policy interface; the signal is unused)
        """Always ``Tier.EDGE`` with reason ``"always_edge"``."""
        return Decision(Tier.EDGE, "always_edge")


@dataclass(frozen=True)
class AlwaysCloud:
    """Always escalate: the accuracy ceiling at the highest cost (edge + cloud per query)."""

    name: ClassVar[str] = "always-cloud"
    needs_cloud_first: ClassVar[bool] = False

    def choose_tier(self, signal: EdgeSignal) -> Decision:  # noqa: ARG002 (the Policy interface; the signal is unused)
        """Always ``Tier.CLOUD`` with reason ``"always_cloud"``."""
        return Decision(Tier.CLOUD, "always_cloud")


@dataclass(frozen=True)
class RandomPolicy:
    """Escalate a random ``cloud_share`` of queries: the no-information baseline (APGR ≈ 0.5).

    Attributes:
        cloud_share: Probability of escalating each query, in [0, 1].
        rng: Source of randomness (inject a seeded generator for reproducible runs).
    """

    cloud_share: float
    rng: np.random.Generator
    name: ClassVar[str] = "random"
    needs_cloud_first: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_probability("cloud_share", self.cloud_share)

    def choose_tier(self, signal: EdgeSignal) -> Decision:  # noqa: ARG002 (the Policy interface; the signal is unused)
        """``Tier.CLOUD`` with probability ``cloud_share``; reason ``"random"`` either way."""
        escalate = self.rng.random() < self.cloud_share
        return Decision(Tier.CLOUD if escalate else Tier.EDGE, "random")


@dataclass(frozen=True)
class ConfidencePolicy:
    """Escalate when the edge model's calibrated confidence is below ``threshold``.

    The escalation score is ``1 - confidence``; the comparison itself is made on
    the confidence (``confidence < threshold``), so a confidence equal to the
    threshold stays on the edge.

    Attributes:
        threshold: Minimum calibrated confidence for answering on the edge, in [0, 1].
    """

    threshold: float
    name: ClassVar[str] = "confidence"
    needs_cloud_first: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_probability("threshold", self.threshold)

    def escalation_score(self, signal: EdgeSignal) -> float:
        """``1 - confidence``: higher means less sure, more likely to escalate."""
        return 1.0 - signal.confidence

    def choose_tier(self, signal: EdgeSignal) -> Decision:
        """``"low_confidence"`` → cloud when confidence < threshold, else ``"confident"`` → edge."""
        escalate = signal.confidence < self.threshold
        return threshold_decision(self.escalation_score(signal), escalate, ("confident", "low_confidence"))


@dataclass(frozen=True)
class LearnedPolicy:
    """Escalate when a fitted model predicts the edge answer is wrong with probability ≥ ``threshold``.

    Attributes:
        model: Logistic model over :func:`feature_vector` of the signal.
        threshold: Predicted-error probability at which to escalate, in [0, 1].
    """

    model: LogisticModel
    threshold: float
    name: ClassVar[str] = "learned"
    needs_cloud_first: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_probability("threshold", self.threshold)
        if not isinstance(self.model, LogisticModel):
            raise ConfigError(f"model must be a LogisticModel, got {type(self.model).__name__}")

    def escalation_score(self, signal: EdgeSignal) -> float:
        """Predicted probability that the edge answer is wrong."""
        return float(self.model.predict_proba(feature_vector(signal))[0])

    def choose_tier(self, signal: EdgeSignal) -> Decision:
        """``"predicted_error"`` → cloud when score ≥ threshold, else ``"predicted_correct"`` → edge."""
        score = self.escalation_score(signal)
        return threshold_decision(score, score >= self.threshold, ("predicted_correct", "predicted_error"))


@dataclass(frozen=True)
class TutorialPolicy:
    """The published tutorial rule, reproduced as a baseline. It is cloud-first.

    The tutorial ran the cloud model on every query to read its confidence, then:

    1. complexity > ``max_complexity`` → cloud (``"tutorial_complex"``);
    2. else, cloud confidence ≥ ``min_confidence`` and ``rng.random() < edge_preference``
       → edge (``"tutorial_edge_preference"``);
    3. else cloud: ``"tutorial_cloud_low_confidence"`` when the cloud was unsure,
       ``"tutorial_cloud_draw"`` when the random draw sent a confident query to the cloud.

    The random draw happens only when the cloud was confident (the rule's
    short-circuit), so a seeded ``rng`` reproduces the rule's sequence. Because
    the cloud already ran on every query, the honest cost is edge + cloud for
    every query, even those "answered on the edge": record them in the ledger
    with ``cloud_called=True``.

    Attributes:
        rng: Source of randomness for the edge-preference draw.
        max_complexity: Complexity above which a query always goes to the cloud.
        min_confidence: Cloud confidence at or above which the edge may answer.
        edge_preference: Probability of answering a confident query on the edge.
    """

    rng: np.random.Generator
    max_complexity: float = 0.75  # the tutorial's values
    min_confidence: float = 0.90
    edge_preference: float = 0.95
    name: ClassVar[str] = "tutorial"
    needs_cloud_first: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_probability("max_complexity", self.max_complexity)
        check_probability("min_confidence", self.min_confidence)
        check_probability("edge_preference", self.edge_preference)

    def choose_tier(self, signal: EdgeSignal) -> Decision:
        """Apply the tutorial rule; ``signal.cloud_confidence`` must be set.

        Raises:
            RoutingError: If the signal carries no cloud confidence.
        """
        if signal.cloud_confidence is None:
            raise RoutingError(
                "the tutorial policy is cloud-first: run the cloud model, then pass "
                "signal.with_cloud_confidence(cloud_top_probability)"
            )
        if signal.complexity > self.max_complexity:
            return Decision(Tier.CLOUD, "tutorial_complex")
        if signal.cloud_confidence < self.min_confidence:
            return Decision(Tier.CLOUD, "tutorial_cloud_low_confidence")
        if self.rng.random() < self.edge_preference:
            return Decision(Tier.EDGE, "tutorial_edge_preference")
        return Decision(Tier.CLOUD, "tutorial_cloud_draw")


POLICIES: dict[str, type] = {
    cls.name: cls for cls in (AlwaysEdge, AlwaysCloud, RandomPolicy, ConfidencePolicy, LearnedPolicy, TutorialPolicy)
}


def make_policy(name: str, **params: Any) -> RoutingPolicy:
    """Build a policy from its registry name and constructor parameters.

    Raises:
        RoutingError: For an unknown name (the message lists the available ones) or bad parameters.

    Example: make_policy("confidence", threshold=0.8) -> ConfidencePolicy(threshold=0.8)
    """
    if name not in POLICIES:
        raise RoutingError(f"unknown routing policy {name!r}; available: {', '.join(sorted(POLICIES))}")
    try:
        policy: RoutingPolicy = POLICIES[name](**params)
    except TypeError as exc:
        raise RoutingError(f"bad parameters {sorted(params)} for policy {name!r}: {exc}") from exc
    return policy
