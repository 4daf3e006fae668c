from __future__ import annotations

import numpy as np
import pytest

from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing.features import FEATURE_NAMES, EdgeSignal, make_signal
from hybridroute.routing.learned import LogisticModel
from hybridroute.routing.policies import (
    POLICIES,
    AlwaysCloud,
    AlwaysEdge,
    ConfidencePolicy,
    Decision,
    LearnedPolicy,
    RandomPolicy,
    TutorialPolicy,
    make_policy,
)
from hybridroute.types import Tier

LONG_ANGRY = "I want a refund and I am calling my lawyer about this fraud, maybe the manager can explain? " * 4


def signal(confidence: float = 0.9, text: str = "where is my card", cloud: float | None = None) -> EdgeSignal:
    made = make_signal(text, [confidence, 1.0 - confidence], ["a", "b"])
    return made if cloud is None else made.with_cloud_confidence(cloud)


def confidence_model() -> LogisticModel:
    """P(error) = sigmoid(7 - 10 * confidence): 0.12 at confidence 0.9, 0.88 at 0.5."""
    weights = np.zeros(len(FEATURE_NAMES))
    weights[0] = -10.0
    return LogisticModel(weights, 7.0, np.zeros(len(FEATURE_NAMES)), np.ones(len(FEATURE_NAMES)))


def test_always_edge_and_always_cloud() -> None:
    assert AlwaysEdge().choose_tier(signal(0.1)) == Decision(Tier.EDGE, "always_edge", None)
    assert AlwaysCloud().choose_tier(signal(0.99)) == Decision(Tier.CLOUD, "always_cloud", None)


def test_confidence_policy_escalates_below_threshold_only() -> None:
    policy = ConfidencePolicy(threshold=0.8)
    low = policy.choose_tier(signal(0.6))
    assert (low.tier, low.reason, low.escalated) == (Tier.CLOUD, "low_confidence", True)
    assert low.score == pytest.approx(0.4)
    high = policy.choose_tier(signal(0.95))
    assert (high.tier, high.reason) == (Tier.EDGE, "confident")
    assert high.score == pytest.approx(0.05)
    equal = policy.choose_tier(signal(0.8))
    assert (equal.tier, equal.reason) == (Tier.EDGE, "confident")  # a tie stays on the edge


def test_learned_policy_uses_predicted_error_probability() -> None:
    policy = LearnedPolicy(confidence_model(), threshold=0.5)
    sure = policy.choose_tier(signal(0.9))
    assert (sure.tier, sure.reason) == (Tier.EDGE, "predicted_correct")
    assert sure.score == pytest.approx(1 / (1 + np.exp(2.0)))
    unsure = policy.choose_tier(signal(0.5))
    assert (unsure.tier, unsure.reason) == (Tier.CLOUD, "predicted_error")
    assert unsure.score == pytest.approx(1 / (1 + np.exp(-2.0)))
    at_threshold = LearnedPolicy(confidence_model(), threshold=float(unsure.score))
    assert at_threshold.choose_tier(signal(0.5)).tier is Tier.CLOUD  # score >= threshold escalates


def test_learned_policy_rejects_a_non_model() -> None:
    with pytest.raises(ConfigError, match="LogisticModel"):
        LearnedPolicy(model={"weights": []}, threshold=0.5)  # type: ignore[arg-type]


def test_random_policy_share_over_10k_draws() -> None:
    policy = RandomPolicy(cloud_share=0.2, rng=np.random.default_rng(7))
    query = signal()
    decisions = [policy.choose_tier(query) for _ in range(10_000)]
    share = np.mean([d.tier is Tier.CLOUD for d in decisions])
    assert abs(share - 0.2) < 0.015  # 3.75 standard deviations
    assert {d.reason for d in decisions} == {"random"}


def test_random_policy_is_reproducible_and_respects_extremes() -> None:
    def tiers(seed: int) -> list[Tier]:
        policy = RandomPolicy(0.5, np.random.default_rng(seed))
        return [policy.choose_tier(signal()).tier for _ in range(50)]

    assert tiers(3) == tiers(3)
    rng = np.random.default_rng(0)
    assert all(RandomPolicy(0.0, rng).choose_tier(signal()).tier is Tier.EDGE for _ in range(100))
    assert all(RandomPolicy(1.0, rng).choose_tier(signal()).tier is Tier.CLOUD for _ in range(100))


def test_tutorial_policy_is_cloud_first() -> None:
    policy = TutorialPolicy(np.random.default_rng(0))
    assert policy.needs_cloud_first is True
    assert not any(cls.needs_cloud_first for name, cls in POLICIES.items() if name != "tutorial")
    with pytest.raises(RoutingError, match="cloud-first"):
        policy.choose_tier(signal())


def test_tutorial_policy_sends_complex_queries_to_the_cloud() -> None:
    complex_query = signal(0.99, LONG_ANGRY, cloud=0.99)
    assert complex_query.complexity > 0.75
    decision = TutorialPolicy(np.random.default_rng(0)).choose_tier(complex_query)
    assert (decision.tier, decision.reason) == (Tier.CLOUD, "tutorial_complex")


def test_tutorial_policy_sends_unsure_cloud_answers_to_the_cloud_without_a_draw() -> None:
    rng = np.random.default_rng(0)
    decision = TutorialPolicy(rng).choose_tier(signal(cloud=0.5))
    assert (decision.tier, decision.reason) == (Tier.CLOUD, "tutorial_cloud_low_confidence")
    assert rng.random() == np.random.default_rng(0).random()  # no random number was drawn


def test_tutorial_policy_prefers_the_edge_for_confident_cloud_answers() -> None:
    policy = TutorialPolicy(np.random.default_rng(11))
    query = signal(cloud=0.9)  # 0.9 >= min_confidence
    decisions = [policy.choose_tier(query) for _ in range(4000)]
    edge = [d for d in decisions if d.tier is Tier.EDGE]
    assert abs(len(edge) / len(decisions) - 0.95) < 0.015
    assert {d.reason for d in edge} == {"tutorial_edge_preference"}
    assert {d.reason for d in decisions if d.tier is Tier.CLOUD} == {"tutorial_cloud_draw"}


def test_tutorial_policy_thresholds_are_configurable() -> None:
    rng = np.random.default_rng(0)
    always = TutorialPolicy(rng, max_complexity=1.0, min_confidence=0.0, edge_preference=1.0)
    assert always.choose_tier(signal(text=LONG_ANGRY, cloud=0.0)).tier is Tier.EDGE
    never = TutorialPolicy(rng, edge_preference=0.0)
    assert never.choose_tier(signal(cloud=1.0)).reason == "tutorial_cloud_draw"


def test_registry_names_and_factory() -> None:
    assert set(POLICIES) == {"always-edge", "always-cloud", "random", "confidence", "learned", "tutorial"}
    assert all(cls.name == name for name, cls in POLICIES.items())
    policy = make_policy("confidence", threshold=0.7)
    assert isinstance(policy, ConfidencePolicy) and policy.threshold == 0.7
    assert isinstance(make_policy("always-edge"), AlwaysEdge)


def test_unknown_policy_lists_available_names() -> None:
    with pytest.raises(RoutingError) as info:
        make_policy("smart")
    message = str(info.value)
    assert "'smart'" in message
    for name in POLICIES:
        assert name in message


def test_make_policy_reports_bad_parameters() -> None:
    with pytest.raises(RoutingError, match="confidence"):
        make_policy("confidence", cutoff=0.5)
    with pytest.raises(ConfigError, match=r"threshold must be in \[0.0, 1.0\], got 80"):
        make_policy("confidence", threshold=80)
    with pytest.raises(ConfigError, match="cloud_share"):
        RandomPolicy(cloud_share=-0.1, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="edge_preference"):
        TutorialPolicy(np.random.default_rng(0), edge_preference=2.0)


def test_decision_needs_a_tier_and_a_reason() -> None:
    with pytest.raises(ConfigError, match="reason"):
        Decision(Tier.EDGE, " ")
    with pytest.raises(ConfigError, match="tier"):
        Decision("edge", "x")  # type: ignore[arg-type]


def test_every_policy_gives_a_reason() -> None:
    rng = np.random.default_rng(0)
    policies = [
        AlwaysEdge(),
        AlwaysCloud(),
        RandomPolicy(0.5, rng),
        ConfidencePolicy(0.8),
        LearnedPolicy(confidence_model(), 0.5),
        TutorialPolicy(rng),
    ]
    for policy in policies:
        for confidence in (0.5, 0.99):
            decision = policy.choose_tier(signal(confidence, cloud=confidence))
            assert decision.reason and isinstance(decision.tier, Tier)
