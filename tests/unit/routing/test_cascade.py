"""The edge-first cascade with fakes: who answers, why, what it costs, and fallbacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.ledger import CostLedger, PriceConfig
from hybridroute.routing.policies import AlwaysCloud, AlwaysEdge, ConfidencePolicy, TutorialPolicy
from hybridroute.serving.cloud_client import CloudResult
from hybridroute.types import Prediction, Tier

LABELS = ("negative", "neutral", "positive")


@dataclass
class FakeEdge:
    """Confidence per text is looked up from a table; label is always index 0 ('negative')."""

    confidence: dict[str, float]
    labels: tuple[str, ...] = LABELS
    model_version: str = "edge-v1"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            top = self.confidence[text]
            rest = (1 - top) / 2
            rows.append([top, rest, rest])
        return np.array(rows)


@dataclass
class FakeCloud:
    ok: bool = True
    error: str | None = None
    attempts: int = 1
    calls: list[list[str]] = field(default_factory=list)
    versions: tuple[str, ...] = ()  # per prediction, as a split call across a reload reports them

    def classify(self, texts: Sequence[str]) -> CloudResult:
        self.calls.append(list(texts))
        if not self.ok:
            return CloudResult(False, None, None, self.error, self.attempts, 250.0)
        predictions = [Prediction("positive", 0.99, {"negative": 0.0, "neutral": 0.01, "positive": 0.99})] * len(texts)
        return CloudResult(True, predictions, "cloud-v1", None, 1, 40.0, versions=self.versions)


def hybrid(policy: object, cloud: FakeCloud | None, **confidences: float) -> HybridClassifier:
    ticks = iter(np.arange(0, 1000, 0.001))
    return HybridClassifier(
        FakeEdge(confidences),
        policy,
        cloud,
        CostLedger(PriceConfig()),  # type: ignore[arg-type]
        clock=lambda: float(next(ticks)),
        cpu_clock=lambda: 0.0,
    )


def test_edge_answers_confident_queries_and_cloud_only_sees_escalations() -> None:
    cloud = FakeCloud()
    answers = hybrid(ConfidencePolicy(0.8), cloud, sure=0.95, unsure=0.5).classify(["sure", "unsure"])
    assert [a.tier for a in answers] == [Tier.EDGE, Tier.CLOUD]
    assert [a.reason for a in answers] == ["confident", "low_confidence"]
    assert cloud.calls == [["unsure"]]
    assert answers[0].label == "negative" and answers[1].label == "positive"
    assert answers[0].model_version == "edge-v1" and answers[1].model_version == "cloud-v1"
    assert answers[0].cost == pytest.approx(0.001) and answers[1].cost == pytest.approx(0.001 + 0.0136)
    assert answers[1].latency_ms > answers[0].latency_ms
    assert answers[1].edge_label == "negative" and not answers[1].fallback


def test_each_cloud_answer_names_the_model_version_that_made_it() -> None:
    cloud = FakeCloud(versions=("cloud-v0", "cloud-v1"))  # the cloud was reloaded between the call's two requests
    answers = hybrid(AlwaysCloud(), cloud, a=0.6, b=0.6).classify(["a", "b"])
    assert [a.model_version for a in answers] == ["cloud-v0", "cloud-v1"]


def test_cloud_failure_falls_back_to_the_edge_answer_with_the_reason() -> None:
    cloud = FakeCloud(ok=False, error="timeout", attempts=2)
    (answer,) = hybrid(AlwaysCloud(), cloud, q=0.6).classify(["q"])
    assert answer.tier is Tier.EDGE and answer.fallback
    assert answer.reason == "fallback:timeout"
    assert answer.label == "negative" and answer.confidence == pytest.approx(0.6)
    assert answer.cloud_called  # a timed-out request may have run: it is charged
    assert answer.latency_ms >= 250.0


@pytest.mark.parametrize("error", ["connect_error", "circuit_open", "http_404", "http_413", "http_307"])
def test_calls_that_never_reached_the_cloud_are_not_charged(error: str) -> None:
    (answer,) = hybrid(AlwaysCloud(), FakeCloud(ok=False, error=error), q=0.6).classify(["q"])
    assert answer.reason == f"fallback:{error}"
    assert not answer.cloud_called and answer.cost == pytest.approx(0.001)


def test_no_cloud_configured_is_a_marked_fallback() -> None:
    (answer,) = hybrid(AlwaysCloud(), None, q=0.6).classify(["q"])
    assert answer.reason == "fallback:no_cloud" and answer.tier is Tier.EDGE


def test_tutorial_policy_pays_for_the_cloud_on_every_query() -> None:
    cloud = FakeCloud()
    h = hybrid(TutorialPolicy(np.random.default_rng(0)), cloud, a=0.99, b=0.99, c=0.99)
    answers = h.classify(["a", "b", "c"])
    assert cloud.calls == [["a", "b", "c"]]
    assert all(a.cloud_called for a in answers)
    summary = h.ledger.summary()
    assert summary.cloud_calls == 3 and summary.savings_pct < 0


def test_always_edge_never_calls_the_cloud_and_ledger_counts_reasons() -> None:
    cloud = FakeCloud()
    h = hybrid(AlwaysEdge(), cloud, a=0.3, b=0.9)
    h.classify(["a", "b"])
    assert cloud.calls == []
    summary = h.ledger.summary()
    assert summary.edge_share == 1.0 and summary.reasons == {"always_edge": 2}


def test_empty_input_gives_empty_output() -> None:
    assert hybrid(AlwaysEdge(), None).classify([]) == []


def test_http_5xx_may_have_run_the_model_and_is_charged() -> None:
    (answer,) = hybrid(AlwaysCloud(), FakeCloud(ok=False, error="http_503"), q=0.6).classify(["q"])
    assert answer.reason == "fallback:http_503" and answer.cloud_called


@dataclass
class PartCloud:
    """Answers the first text only, then fails the rest as the last request did; ``ran`` says what reached it."""

    error: str
    ran: tuple[bool, ...]

    def classify(self, texts: Sequence[str]) -> CloudResult:
        first = Prediction("positive", 0.99, {"negative": 0.0, "neutral": 0.01, "positive": 0.99})
        partial = (first,) + (None,) * (len(texts) - 1)
        return CloudResult(False, None, None, self.error, 2, 60.0, ran=self.ran, partial=partial)


def test_a_call_answered_in_part_keeps_its_answers_and_charges_what_reached_the_cloud() -> None:
    cloud = PartCloud("connect_error", ran=(True, True, False))  # the cloud died after the first request
    h = hybrid(AlwaysCloud(), cloud, a=0.6, b=0.6, c=0.6)
    answers = h.classify(["a", "b", "c"])
    assert [a.tier for a in answers] == [Tier.CLOUD, Tier.EDGE, Tier.EDGE]
    assert [a.reason for a in answers] == ["always_cloud", "fallback:connect_error", "fallback:connect_error"]
    assert [a.cloud_called for a in answers] == [True, True, False]  # b's request reached it before it died
    assert h.ledger.summary().cloud_calls == 2


def test_a_batch_splits_its_wall_and_cpu_time_over_its_queries() -> None:
    wall, cpu = iter([10.0, 10.4]), iter([5.0, 5.8])  # a batch of 4: 0.4 s of wall time, 0.8 s of CPU
    classifier = HybridClassifier(
        FakeEdge(dict.fromkeys("abcd", 0.9)),
        AlwaysEdge(),
        None,
        CostLedger(PriceConfig(mode="measured", cpu_hour_price=1000.0)),
        clock=lambda: next(wall),
        cpu_clock=lambda: next(cpu),
    )
    answers = classifier.classify(list("abcd"))
    assert [a.latency_ms for a in answers] == pytest.approx([100.0] * 4)
    assert [a.edge_cpu_seconds for a in answers] == pytest.approx([0.2] * 4)
    assert [a.cost for a in answers] == pytest.approx([0.2 * 1000.0 / 3600.0] * 4)  # 0.2 CPU s at 1000 USD/h


@pytest.mark.parametrize("error", ["connect_error", "timeout"])
def test_the_tutorial_policy_with_a_failed_cloud_answers_at_the_edge_marked_fallback(error: str) -> None:
    answers = hybrid(
        TutorialPolicy(np.random.default_rng(0)), FakeCloud(ok=False, error=error), a=0.99, b=0.5
    ).classify(["a", "b"])
    assert [a.reason for a in answers] == [f"fallback:{error}"] * 2
    assert all(a.fallback and a.tier is Tier.EDGE for a in answers)
