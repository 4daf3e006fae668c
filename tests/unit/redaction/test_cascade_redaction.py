"""The cascade redacts what it escalates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hybridroute.redaction import RedactionConfig, Redactor
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import AlwaysCloud, AlwaysEdge, TutorialPolicy
from hybridroute.serving.cloud_client import CloudResult
from hybridroute.types import Prediction

LABELS = ("negative", "neutral", "positive")
TEXTS = ["mail jane@example.com or call 415-555-0132", "card 4111 1111 1111 1111 declined", "where is my refund?"]


@dataclass
class FakeEdge:
    labels: tuple[str, ...] = LABELS
    model_version: str = "edge-v1"

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([[0.5, 0.3, 0.2]] * len(texts))


@dataclass
class RecordingCloud:
    calls: list[list[str]] = field(default_factory=list)

    def classify(self, texts: Sequence[str]) -> CloudResult:
        self.calls.append(list(texts))
        prediction = Prediction("positive", 0.99, {"negative": 0.0, "neutral": 0.01, "positive": 0.99})
        return CloudResult(True, [prediction] * len(texts), "cloud-v1", None, 1, 40.0)


def sent(cloud: RecordingCloud) -> str:
    return "\n".join(t for call in cloud.calls for t in call)


def test_escalated_texts_are_redacted_by_default() -> None:
    cloud = RecordingCloud()
    answers = HybridClassifier(FakeEdge(), AlwaysCloud(), cloud).classify(TEXTS)  # type: ignore[arg-type]
    assert cloud.calls == [["mail <EMAIL> or call <PHONE>", "card <CARD> declined", "where is my refund?"]]
    assert [a.redactions for a in answers] == [{"EMAIL": 1, "PHONE": 1}, {"CARD": 1}, {}]
    assert answers[0].to_dict()["redactions"] == {"EMAIL": 1, "PHONE": 1}


def test_cloud_first_baseline_is_redacted_too() -> None:
    cloud = RecordingCloud()
    HybridClassifier(FakeEdge(), TutorialPolicy(np.random.default_rng(0)), cloud).classify(TEXTS)  # type: ignore[arg-type]
    assert "jane@example.com" not in sent(cloud) and "<EMAIL>" in sent(cloud)


def test_edge_answers_carry_no_redactions_and_reach_no_cloud() -> None:
    cloud = RecordingCloud()
    answers = HybridClassifier(FakeEdge(), AlwaysEdge(), cloud).classify(TEXTS)  # type: ignore[arg-type]
    assert cloud.calls == [] and all(a.redactions == {} for a in answers)


def test_redactor_none_is_the_explicit_opt_out() -> None:
    cloud = RecordingCloud()
    HybridClassifier(FakeEdge(), AlwaysCloud(), cloud, redactor=None).classify(TEXTS)  # type: ignore[arg-type]
    assert cloud.calls == [TEXTS]


def test_configured_redactor_is_used() -> None:
    cloud = RecordingCloud()
    redactor = Redactor(RedactionConfig(entities=("CARD",)))
    HybridClassifier(FakeEdge(), AlwaysCloud(), cloud, redactor=redactor).classify(TEXTS)  # type: ignore[arg-type]
    assert "jane@example.com" in sent(cloud) and "<CARD>" in sent(cloud)
