"""Router calibration on validation data: pick the threshold that meets a target.

Score convention, shared by every function here: an escalation score is higher
for queries that should go to the cloud first, and a query escalates when
``score >= threshold``. The learned policy's score is its predicted error
probability; the confidence policy's score is ``1 - confidence`` (its threshold
is stored as a confidence, see :func:`confidence_threshold_for_cloud_share`).

Thresholds are placed halfway between the last escalated and the first kept
score, so on the validation data ``>=`` and ``>`` agree and the threshold
generalises symmetrically. Equal scores cannot be split: a tie group escalates
together, and the achievable share closest to the target is used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from hybridroute.config import check_probability
from hybridroute.errors import RoutingError
from hybridroute.routing.curve import cascade_curve, tie_group_ends
from hybridroute.routing.features import FEATURE_NAMES, EdgeSignal, FeatureConfig, feature_matrix, make_signal
from hybridroute.routing.learned import LogisticModel, fit_logistic
from hybridroute.routing.policies import POLICIES, RandomPolicy, RoutingPolicy
from hybridroute.routing.router_config import (
    ROUTER_FILE,
    RouterConfig,
    RouterTarget,
    ValidationMetrics,
    as_target,
    build_policy,
    load_router,
    save_router,
)

logger = logging.getLogger(__name__)

# Re-exported: the router artifact belongs to calibration's output.
__all__ = [
    "ROUTER_FILE",
    "RouterConfig",
    "RouterTarget",
    "ValidationMetrics",
    "budgeted_share",
    "build_policy",
    "calibrate_router",
    "confidence_threshold_for_cloud_share",
    "load_router",
    "save_router",
    "threshold_for_accuracy",
    "threshold_for_cloud_share",
]

_ACCURACY_TOLERANCE = 1e-12  # accuracies are ratios of counts; forgive rounding at exact hits
_NO_TARGET = "this policy needs a target: {'cloud_share': x}, {'max_cloud_share': x} or {'accuracy': x}"


# ---------------------------------------------------------------- pure threshold helpers


def sorted_scores(escalation_scores: np.ndarray | Sequence[float]) -> np.ndarray:
    """Finite scores as float64, sorted in descending order (escalation order).

    Example: sorted_scores([0.2, 0.9, 0.5]) -> array([0.9, 0.5, 0.2])
    """
    scores = np.asarray(escalation_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise RoutingError(f"escalation scores must be a non-empty 1-D array, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise RoutingError("escalation scores hold NaN or infinite values")
    return -np.sort(-scores)


def cut_threshold(descending: np.ndarray, k: int) -> float:
    """A threshold that escalates exactly the first ``k`` of descending scores (``score >= t``).

    The first ``k`` must not tie with the rest. The threshold lies strictly between
    the neighbours when a float fits there, just past the ends for k = 0 or n.

    Example: cut_threshold(np.array([0.9, 0.5, 0.1]), 1) -> 0.7; k=0 -> just above 0.9
    """
    n = descending.size
    if k == 0:
        return float(np.nextafter(descending[0], np.inf))
    if k == n:
        return float(np.nextafter(descending[-1], -np.inf))
    upper, lower = descending[k - 1], descending[k]
    middle = upper / 2 + lower / 2  # halves first: no overflow for huge scores
    return float(middle if lower < middle <= upper else upper)


def nearest(candidates: np.ndarray, goal: float) -> int:
    """The candidate closest to ``goal``; on a tie, the smaller one (fewer escalations, cheaper).

    Example: nearest(np.array([0, 1, 3, 4]), 2.0) -> 1
    """
    return int(candidates[np.argmin(np.abs(candidates - goal))])


def threshold_for_cloud_share(escalation_scores: np.ndarray | Sequence[float], share: float) -> float:
    """The threshold at which ``share`` of the scores escalate (``score >= threshold``).

    With distinct scores the realised share is within 1/(2n) of ``share``. A tie
    group is never split: the achievable share closest to ``share`` is used
    (the smaller one when two are equally close).

    Example: threshold_for_cloud_share([0.1, 0.9, 0.5, 0.3], 0.5) -> 0.4 (0.9 and 0.5 escalate)
    """
    check_probability("share", share)
    descending = sorted_scores(escalation_scores)
    return cut_threshold(descending, nearest(tie_group_ends(descending), share * descending.size))


def wilson_upper(escalated: int, n: int, z: float) -> float:
    """One-sided Wilson upper bound of a share seen as ``escalated`` of ``n`` (``z``: the normal quantile).

    Example: wilson_upper(50, 1000, 1.2816) -> 0.0596
    """
    p, z2 = escalated / n, z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (centre + spread) / (1 + z2 / n)


def budgeted_share(n: int, budget: float, confidence: float) -> float:
    """The largest validation share k/n whose Wilson upper bound at ``confidence`` is within ``budget``.

    Calibrated to it, new traffic escalates at most ``budget`` with probability about ``confidence``
    (0 when even escalating nothing on validation cannot show that).

    Example: budgeted_share(1000, 0.05, 0.9) -> 0.041 (41 of 1,000 validation queries)
    """
    check_probability("budget", budget)
    z = NormalDist().inv_cdf(confidence)
    within = [k for k in range(n + 1) if wilson_upper(k, n, z) <= budget + _ACCURACY_TOLERANCE]
    return max(within, default=0) / n


def confidence_threshold_for_cloud_share(confidences: np.ndarray | Sequence[float], share: float) -> float:
    """The minimum confidence at which ``share`` of the queries escalate (``confidence < threshold``).

    The confidence variant of :func:`threshold_for_cloud_share`, computed on
    ``-confidence`` (negation is exact in floating point, ``1 - confidence`` is not)
    so the threshold separates the validation queries exactly.

    Example: confidence_threshold_for_cloud_share([0.99, 0.6, 0.8, 0.95], 0.5) -> 0.875
    """
    return -threshold_for_cloud_share(-np.asarray(confidences, dtype=np.float64), share)


def threshold_for_accuracy(
    escalation_scores: np.ndarray | Sequence[float],
    edge_correct: np.ndarray | Sequence[bool],
    cloud_correct: np.ndarray | Sequence[bool],
    target_accuracy: float,
) -> float:
    """The threshold with the smallest cloud share whose hybrid accuracy reaches ``target_accuracy``.

    Hybrid accuracy assumes the cloud answers the escalated queries. Only
    whole tie groups escalate.

    Raises:
        RoutingError: If no cloud share reaches the target (the message gives the best reachable accuracy).

    Example: scores [0.9, 0.1], edge [0, 1], cloud [1, 1], target 1.0 -> 0.5 (escalate the first)
    """
    check_probability("target_accuracy", target_accuracy)
    descending = sorted_scores(escalation_scores)
    scores = np.asarray(escalation_scores, dtype=np.float64)
    _, accuracies = cascade_curve(scores, np.asarray(edge_correct), np.asarray(cloud_correct))
    ends = tie_group_ends(descending)
    reached = np.flatnonzero(accuracies[ends] >= target_accuracy - _ACCURACY_TOLERANCE)
    if reached.size == 0:
        best = int(np.argmax(accuracies[ends]))
        raise RoutingError(
            f"target accuracy {target_accuracy} is out of reach on validation: the best is "
            f"{accuracies[ends][best]:.4f} at cloud share {ends[best] / descending.size:.4f}"
        )
    return cut_threshold(descending, int(ends[reached[0]]))


def random_share_for_accuracy(edge_accuracy: float, cloud_accuracy: float, target_accuracy: float) -> float:
    """Cloud share at which random escalation reaches ``target_accuracy`` in expectation.

    Random escalation moves accuracy linearly from edge to cloud accuracy.

    Example: random_share_for_accuracy(0.8, 1.0, 0.85) -> 0.25
    """
    if target_accuracy <= edge_accuracy:
        return 0.0
    if target_accuracy > cloud_accuracy:
        raise RoutingError(
            f"target accuracy {target_accuracy} is above cloud accuracy {cloud_accuracy}: "
            "random escalation cannot reach it"
        )
    return (target_accuracy - edge_accuracy) / (cloud_accuracy - edge_accuracy)


# ---------------------------------------------------------------- validation data


@dataclass(frozen=True, eq=False)
class ValidationSet:
    """Signals of validation queries with per-query correctness of each tier.

    Attributes:
        signals: One :class:`EdgeSignal` per query.
        edge_correct: Whether the edge's top label was right.
        cloud_correct: Whether the cloud was right, if known.
    """

    signals: tuple[EdgeSignal, ...]
    edge_correct: np.ndarray
    cloud_correct: np.ndarray | None

    def __len__(self) -> int:
        return len(self.signals)

    def subset(self, index: np.ndarray) -> ValidationSet:
        """The queries at ``index``."""
        cloud = None if self.cloud_correct is None else self.cloud_correct[index]
        return ValidationSet(tuple(self.signals[i] for i in index), self.edge_correct[index], cloud)

    def confidences(self) -> np.ndarray:
        """Edge confidence per query."""
        return np.array([s.confidence for s in self.signals], dtype=np.float64)

    def require_cloud_correct(self, why: str) -> np.ndarray:
        """``cloud_correct``, or a RoutingError saying ``why`` it is needed."""
        if self.cloud_correct is None:
            raise RoutingError(f"cloud_correct is needed {why}; pass the cloud model's validation results")
        return self.cloud_correct


def build_validation_set(
    edge_probs: np.ndarray,
    labels_idx: np.ndarray | Sequence[int],
    label_names: Sequence[str],
    texts: Sequence[str],
    cloud_correct: np.ndarray | Sequence[bool] | None,
    features: FeatureConfig,
) -> ValidationSet:
    """Check shapes and compute one signal per validation query."""
    probs, labels = np.asarray(edge_probs, dtype=np.float64), np.asarray(labels_idx)
    n = len(texts)
    if probs.ndim != 2 or probs.shape != (n, len(label_names)) or n == 0:
        raise RoutingError(
            f"edge_probs must have shape (len(texts)={n}, len(label_names)="
            f"{len(label_names)}) with n > 0, got {probs.shape}"
        )
    if labels.shape != (n,) or not np.isin(labels, np.arange(len(label_names))).all():
        raise RoutingError(f"labels_idx must hold {n} indices in [0, {len(label_names)})")
    cloud = None if cloud_correct is None else np.asarray(cloud_correct, dtype=bool)
    if cloud is not None and cloud.shape != (n,):
        raise RoutingError(f"cloud_correct must have shape ({n},), got {cloud.shape}")
    signals = tuple(make_signal(t, p, label_names, features) for t, p in zip(texts, probs, strict=True))
    return ValidationSet(signals, probs.argmax(axis=1) == labels, cloud)


def split_half(data: ValidationSet, rng: np.random.Generator) -> tuple[ValidationSet, ValidationSet]:
    """A seeded random 50/50 split: (fit half, threshold half)."""
    if len(data) < 4:
        raise RoutingError(f"the learned policy needs at least 4 validation queries, got {len(data)}")
    order = rng.permutation(len(data))
    half = len(data) // 2
    return data.subset(order[:half]), data.subset(order[half:])


# ---------------------------------------------------------------- calibration steps


def target_share(target: RouterTarget, n: int) -> float:
    """The validation cloud share a share or budget target calibrates to, on ``n`` validation queries."""
    if target.kind == "max_cloud_share":
        return budgeted_share(n, target.value, target.confidence)
    return target.value


def threshold_for_target(scores: np.ndarray, data: ValidationSet, target: RouterTarget | None) -> float:
    """Score-space threshold (``score >= t`` escalates) meeting ``target`` on ``data``."""
    if target is None:
        raise RoutingError(_NO_TARGET)
    if target.kind != "accuracy":
        return threshold_for_cloud_share(scores, target_share(target, len(data)))
    cloud = data.require_cloud_correct("for an accuracy target")
    return threshold_for_accuracy(scores, data.edge_correct, cloud, target.value)


def escalating_threshold(scores: np.ndarray, data: ValidationSet, target: RouterTarget | None, never: float) -> float:
    """:func:`threshold_for_target`, or ``never`` when that threshold escalates none of ``scores``.

    Example: scores [0.9, 0.5] with a cloud share of 0 -> ``never`` (not just above 0.9)
    """
    threshold = threshold_for_target(scores, data, target)
    return threshold if bool((np.asarray(scores) >= threshold).any()) else never


def tune_threshold(
    policy_name: str, data: ValidationSet, target: RouterTarget | None, model: LogisticModel | None
) -> float | None:
    """The policy's threshold for ``target`` on ``data`` (None for policies without one).

    Thresholds are clipped to [0, 1]; this only matters at the ends (share 0 or 1
    with confidences or error probabilities of exactly 0 or 1). A target met with no
    escalation at all (a share of 0, or one too small for ``data``) gets the threshold
    that never escalates (0 for confidence, 1 for learned), not one just past the
    validation scores, which new queries would cross.
    """
    if policy_name == "confidence":
        threshold = -escalating_threshold(-data.confidences(), data, target, never=-0.0)
    elif policy_name == "learned" and model is not None:
        scores = model.predict_proba(feature_matrix(data.signals))
        threshold = escalating_threshold(scores, data, target, never=1.0)
    elif policy_name == "random":
        threshold = random_share(data, target)
    else:
        return None
    return float(np.clip(threshold, 0.0, 1.0))


def random_share(data: ValidationSet, target: RouterTarget | None) -> float:
    """The random policy's cloud share for ``target``."""
    if target is None:
        raise RoutingError(_NO_TARGET)
    if target.kind != "accuracy":
        return target_share(target, len(data))
    cloud = data.require_cloud_correct("for an accuracy target")
    return random_share_for_accuracy(float(data.edge_correct.mean()), float(cloud.mean()), target.value)


def fit_error_model(data: ValidationSet, l2: float, steps: int) -> LogisticModel:
    """Fit the learned policy's error model: y = 1 where the edge answer was wrong."""
    errors = (~data.edge_correct).astype(np.float64)
    if errors.min() == errors.max():
        logger.warning(
            "the fit half has only %s edge answers; the error model learns a constant",
            "wrong" if errors[0] else "right",
        )
    return fit_logistic(feature_matrix(data.signals), errors, l2=l2, steps=steps, feature_names=FEATURE_NAMES)


def escalation_mask(policy: RoutingPolicy, data: ValidationSet) -> np.ndarray:
    """Which queries a deterministic policy escalates."""
    return np.array([policy.choose_tier(s).escalated for s in data.signals], dtype=bool)


def validation_metrics(policy: RoutingPolicy, data: ValidationSet) -> ValidationMetrics:
    """What ``policy`` achieves on ``data`` (random: in expectation; tutorial: cloud runs on every query)."""
    edge_acc = float(data.edge_correct.mean())
    cloud_acc = None if data.cloud_correct is None else float(data.cloud_correct.mean())
    if policy.needs_cloud_first:  # the cloud ran on every query; which answer was kept is random
        return ValidationMetrics(len(data), edge_acc, 1.0, None, cloud_acc)
    if isinstance(policy, RandomPolicy):
        share = policy.cloud_share
        hybrid = None if cloud_acc is None else edge_acc + share * (cloud_acc - edge_acc)
        return ValidationMetrics(len(data), edge_acc, share, hybrid, cloud_acc)
    mask = escalation_mask(policy, data)
    hybrid = None
    if data.cloud_correct is not None:
        hybrid = float(np.where(mask, data.cloud_correct, data.edge_correct).mean())
    return ValidationMetrics(len(data), edge_acc, float(mask.mean()), hybrid, cloud_acc)


def calibrate_router(
    edge_probs: np.ndarray,
    labels_idx: np.ndarray | Sequence[int],
    label_names: Sequence[str],
    texts: Sequence[str],
    cloud_correct: np.ndarray | Sequence[bool] | None,
    policy_name: str,
    target: RouterTarget | Mapping[str, Any] | None,
    rng: np.random.Generator,
    *,
    temperature: float = 1.0,
    features: FeatureConfig | None = None,
    l2: float = 1e-2,
    steps: int = 500,
) -> RouterConfig:
    """Calibrate a routing policy on validation data and describe it as a :class:`RouterConfig`.

    Steps: compute one signal per query; for "learned", split the validation
    set 50/50 with ``rng`` and fit the error model on one half, so that the
    threshold is chosen (and the metrics measured) on the other, held-out half
    (choosing it on the fitting data would flatter the model); pick the threshold
    that meets ``target``; measure the result.

    Args:
        edge_probs: Calibrated edge probabilities, shape (n, len(label_names)).
        labels_idx: True label index per query.
        label_names: Label names in the model's output order.
        texts: Query texts (for the text signals).
        cloud_correct: Whether the cloud model was right per query; needed for
            accuracy targets and hybrid-accuracy metrics, else None.
        policy_name: One of :data:`POLICIES`.
        target: ``{"cloud_share": x}``, ``{"max_cloud_share": x, "confidence": c}`` or ``{"accuracy": x}``
            (a :class:`RouterTarget` also works); required for "confidence", "learned" and "random".
        rng: Randomness for the learned split and for building random/tutorial policies.
        temperature: The temperature ``edge_probs`` were calibrated with (recorded only).
        features: Text-signal settings; defaults to :class:`FeatureConfig`.
        l2: L2 strength of the learned error model.
        steps: Gradient steps of the learned error model.

    Returns:
        The calibrated router, ready for :func:`save_router` and :func:`build_policy`.

    Raises:
        RoutingError: For an unknown policy, inconsistent inputs, a missing target,
            or an accuracy target without ``cloud_correct`` or out of reach.
    """
    if policy_name not in POLICIES:
        available = ", ".join(sorted(POLICIES))
        raise RoutingError(f"unknown routing policy {policy_name!r}; available: {available}")
    goal, config = as_target(target), features or FeatureConfig()
    data = build_validation_set(edge_probs, labels_idx, label_names, texts, cloud_correct, config)
    model, held_out = None, data
    if policy_name == "learned":
        fit_half, held_out = split_half(data, rng)
        model = fit_error_model(fit_half, l2, steps)
    threshold = tune_threshold(policy_name, held_out, goal, model)
    router = RouterConfig(policy_name, threshold, goal, temperature, model, config)
    return replace(router, metrics=validation_metrics(build_policy(router, rng), held_out))
