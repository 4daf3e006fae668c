"""The calibrated router as an artifact: ``router.json`` and the policy it builds.

A :class:`RouterConfig` records which policy to run, its one tuned number, what
it was tuned for, the feature settings and learned model it needs, and what it
achieved on validation data. The serving layer loads it with
:func:`load_router` and turns it into a policy with :func:`build_policy`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.config import (
    check_choice,
    check_positive,
    check_probability,
    check_range,
    config_from_dict,
    is_number,
    load_json_config,
)
from hybridroute.errors import ConfigError, RoutingError
from hybridroute.files import write_text_atomic
from hybridroute.routing.features import FEATURE_NAMES, FeatureConfig
from hybridroute.routing.learned import LogisticModel
from hybridroute.routing.policies import POLICIES, RoutingPolicy, make_policy

ROUTER_FILE = "router.json"
TARGET_KINDS = ("cloud_share", "max_cloud_share", "accuracy")
BUDGET_CONFIDENCE = 0.9  # max_cloud_share: the probability that new traffic stays within the budget
# What ``RouterConfig.threshold`` means, per policy that has one.
THRESHOLD_MEANING = {
    "confidence": "minimum edge confidence; below it the query escalates",
    "learned": "predicted probability of an edge error at or above which the query escalates",
    "random": "share of queries escalated at random",
}


@dataclass(frozen=True)
class RouterTarget:
    """What the threshold was tuned for: a cloud share, a cloud budget or a hybrid accuracy on validation.

    Serialized as ``{"cloud_share": 0.05}``, ``{"accuracy": 0.93}`` or
    ``{"max_cloud_share": 0.05, "confidence": 0.9}``: the share of *new* traffic sent to the cloud
    stays at or below 5% with probability 0.9 (see ``calibrate.budgeted_share``), so validation
    escalates somewhat less than 5%. An exact ``cloud_share`` of 5% lands above 5% on new traffic
    about half the time.
    """

    kind: str
    value: float
    confidence: float = BUDGET_CONFIDENCE  # max_cloud_share only

    def __post_init__(self) -> None:
        check_choice("target kind", self.kind, TARGET_KINDS)
        check_number(f"target {self.kind}", self.value)
        check_probability(f"target {self.kind}", self.value)
        check_number("target confidence", self.confidence)
        check_range("target confidence", self.confidence, 0.5, 0.999)

    @classmethod
    def cloud_share(cls, share: float) -> RouterTarget:
        """Escalate this share of validation queries."""
        return cls("cloud_share", share)

    @classmethod
    def max_cloud_share(cls, budget: float, confidence: float = BUDGET_CONFIDENCE) -> RouterTarget:
        """Keep the cloud share of new traffic at or below ``budget`` with probability ``confidence``."""
        return cls("max_cloud_share", budget, confidence)

    @classmethod
    def accuracy(cls, accuracy: float) -> RouterTarget:
        """Reach this hybrid accuracy on validation with the smallest cloud share."""
        return cls("accuracy", accuracy)

    def to_dict(self) -> dict[str, float]:
        """``{kind: value}``, plus the confidence of a budget."""
        extra = {"confidence": self.confidence} if self.kind == "max_cloud_share" else {}
        return {self.kind: self.value} | extra

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RouterTarget:
        """Parse ``{"cloud_share": x}``, ``{"accuracy": x}`` or ``{"max_cloud_share": x[, "confidence": c]}``.

        Example: RouterTarget.from_dict({"cloud_share": 0.05}) -> RouterTarget("cloud_share", 0.05)
        """
        if (
            isinstance(values, Mapping)
            and "max_cloud_share" in values
            and set(values) <= {"max_cloud_share", "confidence"}
        ):
            return cls.max_cloud_share(values["max_cloud_share"], values.get("confidence", BUDGET_CONFIDENCE))
        if not isinstance(values, Mapping) or len(values) != 1:
            raise ConfigError(
                "target must be {'cloud_share': x}, {'accuracy': x} or {'max_cloud_share': x, 'confidence': c}; "
                f"got {values!r}"
            )
        ((kind, value),) = values.items()
        return cls(kind, value)


def check_number(name: str, value: object) -> None:
    """Raise unless ``value`` is an int or a float (a bool or a quoted number from a file is refused).

    Example: check_number("threshold", "0.5") -> ConfigError("threshold has the wrong type: ... got '0.5' (str)")
    """
    if not is_number(value):
        raise ConfigError(f"{name} has the wrong type: it must be a number, got {value!r:.60} ({type(value).__name__})")


def as_target(target: RouterTarget | Mapping[str, Any] | None) -> RouterTarget | None:
    """Accept a target as an object or its dict form.

    Example: as_target({"accuracy": 0.9}) -> RouterTarget("accuracy", 0.9)
    """
    if target is None or isinstance(target, RouterTarget):
        return target
    return RouterTarget.from_dict(target)


@dataclass(frozen=True)
class ValidationMetrics:
    """What the calibrated router achieved on the data used to pick its threshold.

    Attributes:
        n: Queries evaluated (for the learned policy: the held-out half).
        edge_accuracy: Edge-only accuracy.
        expected_cloud_share: Share of queries on which the cloud runs (1.0 for the cloud-first
            tutorial rule).
        expected_hybrid_accuracy: Accuracy with cloud answers for escalated queries;
            None when cloud correctness is unknown or the policy is cloud-first.
        cloud_accuracy: Cloud-only accuracy, when known.
    """

    n: int
    edge_accuracy: float
    expected_cloud_share: float
    expected_hybrid_accuracy: float | None = None
    cloud_accuracy: float | None = None

    def __post_init__(self) -> None:
        check_range("n", self.n, 1, 10**12)
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value is not None:
                check_probability(f.name, value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RouterConfig:
    """A calibrated router, as saved in ``router.json``.

    Attributes:
        policy: Registry name, one of :data:`POLICIES`.
        threshold: The policy's tuned number (see :data:`THRESHOLD_MEANING`): required for
            "confidence", "learned" and "random"; None for the others.
        target: What the threshold was tuned for, if anything.
        temperature: Softmax temperature of the edge model the router was calibrated with
            (recorded, not applied; compared with the edge bundle's when a run is opened).
        edge_model_version: Model version of the edge bundle the router was calibrated with
            (None in files written before it was recorded); compared when a run is opened.
        learned_model: The error model, required for "learned".
        features: Text-signal settings the signals (and the learned model) use.
        metrics: Validation results.
    """

    policy: str
    threshold: float | None = None
    target: RouterTarget | None = None
    temperature: float = 1.0
    learned_model: LogisticModel | None = None
    features: FeatureConfig = field(default_factory=FeatureConfig)
    metrics: ValidationMetrics | None = None
    edge_model_version: str | None = None

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, sorted(POLICIES))
        if self.edge_model_version is not None and not isinstance(self.edge_model_version, str):
            raise ConfigError(f"edge_model_version must be a string or null, got {self.edge_model_version!r:.60}")
        check_number("temperature", self.temperature)
        check_positive("temperature", self.temperature)
        self.check_threshold()
        self.check_learned_model()

    def check_threshold(self) -> None:
        """Raise ConfigError unless the threshold is present exactly when the policy uses one."""
        if self.policy not in THRESHOLD_MEANING:
            if self.threshold is not None:
                raise ConfigError(
                    f"threshold is only used by {sorted(THRESHOLD_MEANING)}, "
                    f"got {self.threshold!r} for policy {self.policy!r}"
                )
            return
        if self.threshold is None:
            raise ConfigError(f"policy {self.policy!r} needs a threshold ({THRESHOLD_MEANING[self.policy]})")
        check_number("threshold", self.threshold)
        check_probability("threshold", self.threshold)

    def check_learned_model(self) -> None:
        """Raise ConfigError unless a learned model of the right width is present exactly for "learned"."""
        if self.policy != "learned":
            if self.learned_model is not None:
                raise ConfigError(f"learned_model is only used by policy 'learned', not {self.policy!r}")
            return
        if self.learned_model is None:
            raise ConfigError("policy 'learned' needs a learned_model")
        if self.learned_model.n_features != len(FEATURE_NAMES):
            raise ConfigError(
                f"learned_model has {self.learned_model.n_features} features, "
                f"the router computes {len(FEATURE_NAMES)}: {list(FEATURE_NAMES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written to ``router.json``."""
        return {
            "policy": self.policy,
            "threshold": self.threshold,
            "target": self.target.to_dict() if self.target else None,
            "temperature": self.temperature,
            "learned_model": self.learned_model.to_dict() if self.learned_model else None,
            "features": self.features.to_dict(),
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "edge_model_version": self.edge_model_version,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RouterConfig:
        """Rebuild from :meth:`to_dict` output; unknown or missing keys are a ConfigError."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown router keys {unknown}; known keys: {known}")
        if "policy" not in values:
            raise ConfigError(f"router config has no 'policy'; available: {', '.join(sorted(POLICIES))}")
        try:
            parsed = dict(values)
            parsed["target"] = as_target(values.get("target"))
            parsed["learned_model"] = nested(values.get("learned_model"), LogisticModel.from_dict)
            features = nested(values.get("features"), lambda f: config_from_dict(FeatureConfig, dict(f)))
            parsed["features"] = features or FeatureConfig()
            parsed["metrics"] = nested(values.get("metrics"), lambda m: config_from_dict(ValidationMetrics, dict(m)))
            return cls(**parsed)
        except TypeError as exc:  # e.g. a threshold given as a string cannot be range-checked
            raise ConfigError(f"router config holds a value of the wrong type: {exc}") from exc


def nested(values: Any, build: Any) -> Any:
    """``build(values)`` for an object, None for None, ConfigError for anything else.

    Example: nested(None, LogisticModel.from_dict) -> None
    """
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise ConfigError(f"expected an object or null, got {type(values).__name__}: {values!r}")
    return build(values)


def save_router(path: str | Path, config: RouterConfig) -> Path:
    """Write ``config`` as JSON to ``path`` (a file, or a folder that gets ``router.json``).

    Returns:
        The file written.
    """
    target = Path(path)
    if target.is_dir():
        target = target / ROUTER_FILE
    text = json.dumps(config.to_dict(), indent=2, allow_nan=False)  # strict JSON: every number is finite
    return write_text_atomic(target, text + "\n")  # a crash mid-write leaves the old file, never half a new one


def load_router(path: str | Path) -> RouterConfig:
    """Read a ``router.json`` (or a folder holding one).

    Raises:
        RoutingError: If the file is missing, not JSON, or describes an invalid router
            (unknown policy, unknown keys, missing threshold or model, values out of range).
    """
    source = Path(path)
    if source.is_dir():
        source = source / ROUTER_FILE
    try:
        return RouterConfig.from_dict(load_json_config(source))
    except ConfigError as exc:
        raise RoutingError(f"invalid router file {source}: {exc}") from exc


def build_policy(config: RouterConfig, rng: np.random.Generator) -> RoutingPolicy:
    """Turn a router config into a ready policy (``rng`` is used by "random" and "tutorial").

    Example: build_policy(RouterConfig("confidence", threshold=0.8), rng) -> ConfidencePolicy(threshold=0.8)
    """
    params_by_policy: dict[str, dict[str, Any]] = {
        "always-edge": {},
        "always-cloud": {},
        "random": {"cloud_share": config.threshold, "rng": rng},
        "confidence": {"threshold": config.threshold},
        "learned": {"model": config.learned_model, "threshold": config.threshold},
        "tutorial": {"rng": rng},
    }
    return make_policy(config.policy, **params_by_policy[config.policy])
