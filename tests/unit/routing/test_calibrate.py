from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing import calibrate
from hybridroute.routing.calibrate import (
    ValidationSet,
    budgeted_share,
    calibrate_router,
    confidence_threshold_for_cloud_share,
    cut_threshold,
    random_share_for_accuracy,
    threshold_for_accuracy,
    threshold_for_cloud_share,
)
from hybridroute.routing.features import make_signal
from hybridroute.routing.policies import ConfidencePolicy
from hybridroute.routing.router_config import RouterTarget, build_policy

LABELS = ["card", "refund", "other"]


def validation_data(n: int = 300, seed: int = 0) -> dict:
    """Edge answers whose confidence and wording track a hidden difficulty; the cloud is right 95% of time."""
    rng = np.random.default_rng(seed)
    difficulty = rng.random(n)
    labels = rng.integers(0, 3, size=n)
    correct = rng.random(n) > 0.6 * difficulty
    predicted = np.where(correct, labels, (labels + 1) % 3)
    confidence = np.clip(0.97 - 0.55 * difficulty + rng.normal(0, 0.04, n), 0.34, 0.99)
    probs = np.tile(((1 - confidence) / 2)[:, None], (1, 3))
    probs[np.arange(n), predicted] = confidence
    texts = [
        "my card and a refund dispute, maybe? " * (1 + int(4 * d)) if d > 0.6 else "where is my card"
        for d in difficulty
    ]
    return {
        "edge_probs": probs,
        "labels_idx": labels,
        "label_names": LABELS,
        "texts": texts,
        "cloud_correct": rng.random(n) < 0.95,
    }


def escalated_share(scores: np.ndarray, threshold: float) -> float:
    return float(np.mean(scores >= threshold))


# ---------------------------------------------------------------- threshold_for_cloud_share


@pytest.mark.parametrize("share", [0.0, 0.01, 0.05, 0.1, 1 / 3, 0.5, 0.9, 1.0])
def test_cloud_share_is_hit_within_one_over_n(share: float) -> None:
    scores = np.random.default_rng(0).random(997)
    threshold = threshold_for_cloud_share(scores, share)
    assert abs(escalated_share(scores, threshold) - share) <= 1 / 997
    assert escalated_share(scores, threshold) == float(np.mean(scores > threshold))  # >= and > agree


def test_cloud_share_docstring_example() -> None:
    assert threshold_for_cloud_share([0.1, 0.9, 0.5, 0.3], 0.5) == pytest.approx(0.4)


def test_ties_are_never_split() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    assert escalated_share(scores, threshold_for_cloud_share(scores, 0.4)) == pytest.approx(0.2)  # 1 is nearer 2
    assert escalated_share(scores, threshold_for_cloud_share(scores, 0.6)) == pytest.approx(0.8)  # 4 is nearer 3
    even = np.array([1.0, 0.5, 0.5, 0.0])
    assert escalated_share(even, threshold_for_cloud_share(even, 0.5)) == pytest.approx(0.25)  # tie: cheaper
    assert escalated_share(np.full(10, 0.5), threshold_for_cloud_share(np.full(10, 0.5), 0.3)) == 0.0


def test_cut_threshold_handles_ends_and_adjacent_floats() -> None:
    descending = np.array([0.9, 0.5, 0.1])
    assert cut_threshold(descending, 1) == pytest.approx(0.7)
    assert cut_threshold(descending, 0) > 0.9
    assert cut_threshold(descending, 3) < 0.1
    upper = 0.5
    lower = float(np.nextafter(upper, -np.inf))
    threshold = cut_threshold(np.array([upper, lower]), 1)
    assert upper >= threshold > lower


def test_bad_scores_and_shares_are_rejected() -> None:
    with pytest.raises(RoutingError, match="non-empty"):
        threshold_for_cloud_share([], 0.5)
    with pytest.raises(RoutingError, match="NaN"):
        threshold_for_cloud_share([0.1, float("nan")], 0.5)
    with pytest.raises(ConfigError, match=r"^share must be in \[0\.0, 1\.0\], got 1\.5$"):
        threshold_for_cloud_share([0.1, 0.2], 1.5)


def test_confidence_variant_agrees_with_the_confidence_policy() -> None:
    assert confidence_threshold_for_cloud_share([0.99, 0.6, 0.8, 0.95], 0.5) == pytest.approx(0.875)
    confidences = np.random.default_rng(3).uniform(0.34, 1.0, 500)
    for share in (0.0, 0.05, 0.2, 1.0):
        threshold = confidence_threshold_for_cloud_share(confidences, share)
        policy = ConfidencePolicy(min(threshold, 1.0))
        signals = [make_signal("q", [c, (1 - c) / 2, (1 - c) / 2], LABELS) for c in confidences]
        decisions = [policy.choose_tier(s).escalated for s in signals]
        assert abs(np.mean(decisions) - share) <= 1 / 500


# ---------------------------------------------------------------- threshold_for_accuracy


def test_threshold_for_accuracy_hand_worked() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    edge = np.array([0, 1, 0, 1, 1])  # 0.6 on its own
    cloud = np.array([1, 1, 1, 0, 1])  # escalating 1, 2, 3, 4, 5 gives 0.8, 0.8, 1.0, 0.8, 0.8
    assert threshold_for_accuracy(scores, edge, cloud, 0.8) == pytest.approx(0.85)
    assert threshold_for_accuracy(scores, edge, cloud, 0.9) == pytest.approx(0.65)
    assert threshold_for_accuracy(scores, edge, cloud, 0.6) > 0.9  # edge alone is enough


def test_threshold_for_accuracy_out_of_reach() -> None:
    with pytest.raises(RoutingError, match="out of reach.*best is 0.5000"):
        threshold_for_accuracy([0.9, 0.1], [0, 1], [0, 0], 0.9)


def test_threshold_for_accuracy_respects_ties() -> None:
    # the two tied queries escalate together: 0.5 -> 1.0 needs both
    threshold = threshold_for_accuracy([0.5, 0.5, 0.1], [0, 1, 1], [1, 1, 1], 0.9)
    assert escalated_share(np.array([0.5, 0.5, 0.1]), threshold) == pytest.approx(2 / 3)


def test_random_share_for_accuracy() -> None:
    assert random_share_for_accuracy(0.8, 1.0, 0.85) == pytest.approx(0.25)
    assert random_share_for_accuracy(0.8, 1.0, 0.7) == 0.0
    with pytest.raises(RoutingError, match="above cloud accuracy"):
        random_share_for_accuracy(0.8, 0.9, 0.95)


# ---------------------------------------------------------------- calibrate_router


def test_confidence_router_for_a_cloud_share() -> None:
    data = validation_data()
    router = calibrate_router(
        **data,
        policy_name="confidence",
        target={"cloud_share": 0.1},
        rng=np.random.default_rng(0),
        temperature=1.7,
    )
    assert router.policy == "confidence" and router.temperature == 1.7
    assert router.target == RouterTarget.cloud_share(0.1)
    assert router.metrics is not None
    assert router.metrics.n == 300
    assert abs(router.metrics.expected_cloud_share - 0.1) <= 1 / 300
    assert router.metrics.edge_accuracy == pytest.approx(np.mean(data["edge_probs"].argmax(1) == data["labels_idx"]))
    assert router.metrics.expected_hybrid_accuracy > router.metrics.edge_accuracy


def test_budgeted_share_examples_and_edges() -> None:
    assert budgeted_share(1000, 0.05, 0.9) == 0.041  # the docstring's example
    assert budgeted_share(1000, 0.05, 0.5) == 0.05  # at even odds the budget is the share itself
    assert budgeted_share(10, 0.05, 0.9) == 0.0  # too few queries to show any share is within 5%
    assert budgeted_share(100, 1.0, 0.9) == 1.0
    assert budgeted_share(1000, 0.05, 0.99) < budgeted_share(1000, 0.05, 0.9) < budgeted_share(100_000, 0.05, 0.9)


def test_a_budget_holds_on_new_traffic_about_as_often_as_promised() -> None:
    """Calibrate on 1,000 validation scores, then count how often 3,000 new queries stay within 5%.

    An exact 5% share overshoots about half the time; the 0.9 budget about one time in ten or less
    (the bound is on the population share, and the new sample adds its own spread).
    """
    rng = np.random.default_rng(0)
    within = {"exact": 0, "budget": 0}
    trials = 400
    for _ in range(trials):
        validation, new = rng.random(1000), rng.random(3000)
        for name, share in (("exact", 0.05), ("budget", budgeted_share(1000, 0.05, 0.9))):
            within[name] += escalated_share(new, threshold_for_cloud_share(validation, share)) <= 0.05
    assert 0.35 < within["exact"] / trials < 0.65
    assert within["budget"] / trials > 0.85


def test_confidence_router_for_a_cloud_budget() -> None:
    data = validation_data()
    target = RouterTarget.max_cloud_share(0.1, confidence=0.9)
    router = calibrate_router(**data, policy_name="confidence", target=target, rng=np.random.default_rng(0))
    assert router.target == target
    assert router.metrics is not None
    assert router.metrics.expected_cloud_share == pytest.approx(budgeted_share(300, 0.1, 0.9), abs=1 / 300)
    assert router.metrics.expected_cloud_share < 0.1
    random = calibrate_router(**data, policy_name="random", target=target, rng=np.random.default_rng(0))
    assert random.threshold == budgeted_share(300, 0.1, 0.9)


@pytest.mark.parametrize(
    "target",
    [{"cloud_share": 0.0}, {"max_cloud_share": 0.0}, RouterTarget.max_cloud_share(0.05, confidence=0.9)],
    ids=["share-0", "budget-0", "budget-too-small-for-20"],
)
def test_a_target_of_no_escalation_never_escalates(target: Any) -> None:
    data = validation_data(20)  # 20 queries cannot show that any share is within a 5% budget
    confidence = calibrate_router(**data, policy_name="confidence", target=target, rng=np.random.default_rng(0))
    assert confidence.threshold == 0.0  # not just below the lowest validation confidence
    assert confidence.metrics is not None and confidence.metrics.expected_cloud_share == 0.0
    learned = calibrate_router(
        **validation_data(), policy_name="learned", target={"cloud_share": 0.0}, rng=np.random.default_rng(0), steps=50
    )
    assert learned.threshold == 1.0


def test_confidence_router_at_full_cloud_share_with_a_certain_edge_answer() -> None:
    # The threshold that escalates a confidence of exactly 1.0 lies just above 1.0; it is clipped to 1.0
    # (a confidence policy escalates below it), so the router stays valid and still escalates all but that one.
    data = validation_data(20)
    data["edge_probs"][0] = [1.0, 0.0, 0.0]
    router = calibrate_router(
        **data, policy_name="confidence", target={"cloud_share": 1.0}, rng=np.random.default_rng(0)
    )
    assert router.threshold == 1.0
    assert router.metrics is not None and router.metrics.expected_cloud_share == pytest.approx(19 / 20)


def test_learned_router_fits_on_one_half_and_tunes_on_the_other() -> None:
    data = validation_data()
    router = calibrate_router(
        **data, policy_name="learned", target={"cloud_share": 0.2}, rng=np.random.default_rng(5), steps=200
    )
    assert router.learned_model is not None and router.metrics is not None
    assert router.metrics.n == 150  # the held-out half
    assert abs(router.metrics.expected_cloud_share - 0.2) <= 1 / 150
    again = calibrate_router(
        **data, policy_name="learned", target={"cloud_share": 0.2}, rng=np.random.default_rng(5), steps=200
    )
    assert again.to_dict() == router.to_dict()  # seeded: reproducible


def test_learned_router_fits_and_tunes_on_disjoint_halves_that_cover_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, ValidationSet] = {}

    def spy(name: str, data_arg: int | None) -> None:
        """Record the validation set ``name`` hands over (argument ``data_arg``, or its result when None)."""
        real = getattr(calibrate, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)
            seen[name] = result if data_arg is None else args[data_arg]
            return result

        monkeypatch.setattr(calibrate, name, wrapper)

    spy("build_validation_set", None)
    spy("fit_error_model", 0)
    spy("tune_threshold", 1)
    spy("validation_metrics", 1)
    calibrate_router(
        **validation_data(), policy_name="learned", target={"cloud_share": 0.2}, rng=np.random.default_rng(5), steps=200
    )
    # subsets share the signal objects of the whole set, so identity names a row
    rows = {name: [id(signal) for signal in data.signals] for name, data in seen.items()}
    fitted, tuned = set(rows["fit_error_model"]), set(rows["tune_threshold"])
    assert len(fitted) == len(rows["fit_error_model"]) == 150 and len(tuned) == len(rows["tune_threshold"]) == 150
    assert fitted.isdisjoint(tuned)
    assert fitted | tuned == set(rows["build_validation_set"]) and len(rows["build_validation_set"]) == 300
    assert rows["validation_metrics"] == rows["tune_threshold"]  # the metrics come from the held-out half too


def test_learned_router_for_an_accuracy_target() -> None:
    router = calibrate_router(
        **validation_data(),
        policy_name="learned",
        target=RouterTarget.accuracy(0.85),
        rng=np.random.default_rng(1),
        steps=200,
    )
    assert router.metrics is not None and router.metrics.expected_hybrid_accuracy is not None
    assert router.metrics.expected_hybrid_accuracy >= 0.85
    assert router.metrics.expected_cloud_share < 1.0


def test_random_and_fixed_policies() -> None:
    data, rng = validation_data(), np.random.default_rng(0)
    random_router = calibrate_router(**data, policy_name="random", target={"cloud_share": 0.3}, rng=rng)
    assert random_router.threshold == 0.3 and random_router.metrics.expected_cloud_share == 0.3
    edge = calibrate_router(**data, policy_name="always-edge", target=None, rng=rng)
    assert edge.threshold is None and edge.metrics.expected_cloud_share == 0.0
    assert edge.metrics.expected_hybrid_accuracy == edge.metrics.edge_accuracy
    cloud = calibrate_router(**data, policy_name="always-cloud", target=None, rng=rng)
    assert cloud.metrics.expected_cloud_share == 1.0
    assert cloud.metrics.expected_hybrid_accuracy == cloud.metrics.cloud_accuracy


def test_random_policy_for_an_accuracy_target_moves_linearly() -> None:
    data = validation_data()
    router = calibrate_router(**data, policy_name="random", target={"accuracy": 0.85}, rng=np.random.default_rng(0))
    assert router.metrics.expected_hybrid_accuracy == pytest.approx(0.85)


def test_tutorial_router_runs_the_cloud_on_every_query() -> None:
    router = calibrate_router(**validation_data(), policy_name="tutorial", target=None, rng=np.random.default_rng(0))
    assert router.threshold is None
    assert router.metrics.expected_cloud_share == 1.0
    assert router.metrics.expected_hybrid_accuracy is None
    assert build_policy(router, np.random.default_rng(0)).needs_cloud_first


def test_calibrated_router_builds_a_working_policy() -> None:
    data = validation_data()
    router = calibrate_router(
        **data, policy_name="learned", target={"cloud_share": 0.2}, rng=np.random.default_rng(5), steps=200
    )
    policy = build_policy(router, np.random.default_rng(0))
    signals = [make_signal(t, p, LABELS) for t, p in zip(data["texts"], data["edge_probs"], strict=True)]
    share = np.mean([policy.choose_tier(s).escalated for s in signals])
    assert 0.1 < share < 0.3  # the held-out share carries over to the whole set


def test_calibrate_router_errors() -> None:
    data, rng = validation_data(40), np.random.default_rng(0)
    with pytest.raises(RoutingError, match="available: always-cloud"):
        calibrate_router(**data, policy_name="smart", target=None, rng=rng)
    with pytest.raises(RoutingError, match="needs a target"):
        calibrate_router(**data, policy_name="confidence", target=None, rng=rng)
    with pytest.raises(RoutingError, match="cloud_correct is needed"):
        calibrate_router(
            **(data | {"cloud_correct": None}), policy_name="confidence", target={"accuracy": 0.9}, rng=rng
        )
    with pytest.raises(RoutingError, match="edge_probs must have shape"):
        calibrate_router(
            **(data | {"texts": data["texts"][:-1]}),
            policy_name="confidence",
            target={"cloud_share": 0.1},
            rng=rng,
        )
    with pytest.raises(RoutingError, match="labels_idx"):
        calibrate_router(
            **(data | {"labels_idx": data["labels_idx"] + 5}),
            policy_name="confidence",
            target={"cloud_share": 0.1},
            rng=rng,
        )
    small = validation_data(3)
    with pytest.raises(RoutingError, match="at least 4"):
        calibrate_router(**small, policy_name="learned", target={"cloud_share": 0.1}, rng=rng)


def test_unknown_cloud_correctness_leaves_hybrid_accuracy_unknown() -> None:
    data = validation_data(50) | {"cloud_correct": None}
    router = calibrate_router(
        **data, policy_name="confidence", target={"cloud_share": 0.1}, rng=np.random.default_rng(0)
    )
    assert router.metrics.expected_hybrid_accuracy is None and router.metrics.cloud_accuracy is None


def test_one_class_fit_half_warns(caplog: pytest.LogCaptureFixture) -> None:
    data = validation_data(20)
    data["labels_idx"] = data["edge_probs"].argmax(1)  # the edge is always right
    with caplog.at_level(logging.WARNING, logger="hybridroute.routing.calibrate"):
        calibrate_router(
            **data, policy_name="learned", target={"cloud_share": 0.1}, rng=np.random.default_rng(0), steps=50
        )
    assert "constant" in caplog.text
