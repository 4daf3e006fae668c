"""A tiny logistic-regression error predictor, fitted in numpy.

The learned router asks: "how likely is the edge answer to be wrong?" The
target is ``y = 1`` where the edge model erred on validation data; the inputs
are :func:`hybridroute.routing.features.feature_vector` rows. Eight features
and a few thousand rows need nothing heavier than batch gradient descent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybridroute.config import check_positive, check_range
from hybridroute.errors import ConfigError, RoutingError

_MODEL_KEYS = ("weights", "bias", "mean", "std", "feature_names")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow for large |z|).

    Example: sigmoid(np.array([0.0, 1000.0, -1000.0])) -> array([0.5, 1.0, 0.0])
    """
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def standardizer(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; a constant column gets std 1 so it maps to 0.

    Example: standardizer(np.array([[1.0, 5.0], [3.0, 5.0]])) -> (array([2., 5.]), array([1., 1.]))
    """
    mean, std = X.mean(axis=0), X.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


@dataclass(frozen=True, eq=False)
class LogisticModel:
    """``P(edge wrong | x) = sigmoid(((x - mean) / std) · weights + bias)``.

    Attributes:
        weights: One weight per standardized feature.
        bias: The intercept.
        mean: Feature means used for standardization.
        std: Feature standard deviations used for standardization (all > 0).
        feature_names: Optional names of the features, in order (checked against the width).
    """

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    std: np.ndarray
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("weights", "mean", "std"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "bias", float(self.bias))
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        self.check_shapes()

    def check_shapes(self) -> None:
        """Raise ConfigError unless weights, mean, std (and names) agree and are finite."""
        width = self.weights.shape
        if len(width) != 1 or self.mean.shape != width or self.std.shape != width:
            raise ConfigError(
                f"weights, mean, std must be 1-D of one length, got {width}, {self.mean.shape}, {self.std.shape}"
            )
        if self.feature_names and len(self.feature_names) != width[0]:
            raise ConfigError(f"feature_names has {len(self.feature_names)} names for {width[0]} weights")
        values = np.concatenate([self.weights, self.mean, self.std, [self.bias]])
        if not np.isfinite(values).all():
            raise ConfigError("weights, bias, mean and std must be finite numbers")
        if (self.std <= 0).any():
            raise ConfigError(f"std must be > 0 everywhere, got {self.std.tolist()}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogisticModel):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and the arrays are not hashable

    @property
    def n_features(self) -> int:
        """How many input features the model expects."""
        return int(self.weights.shape[0])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probability that the edge answer is wrong, for each row of ``X`` (shape (n, d) or (d,)).

        Raises:
            RoutingError: If ``X`` has the wrong number of columns.
        """
        array = np.asarray(X, dtype=np.float64)
        rows = array.reshape(1, -1) if array.ndim == 1 else array
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise RoutingError(f"model expects {self.n_features} features, got shape {array.shape}")
        probabilities = sigmoid(((rows - self.mean) / self.std) @ self.weights + self.bias)
        return probabilities[0:1] if array.ndim == 1 else probabilities

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` restores it exactly (floats round-trip through repr)."""
        return {
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "feature_names": list(self.feature_names),
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LogisticModel:
        """Rebuild a model from :meth:`to_dict` output.

        Raises:
            ConfigError: On missing or unknown keys, or values of the wrong shape.
        """
        missing = [k for k in _MODEL_KEYS[:4] if k not in values]
        unknown = sorted(set(values) - set(_MODEL_KEYS))
        if missing or unknown:
            raise ConfigError(
                f"logistic model dict: missing keys {missing}, unknown keys {unknown}; expected {list(_MODEL_KEYS)}"
            )
        try:
            return cls(**{k: values[k] for k in _MODEL_KEYS if k in values})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"logistic model dict holds invalid values: {exc}") from exc


def check_training_data(X: np.ndarray, y: np.ndarray) -> None:
    """Raise RoutingError unless X is (n, d) finite, y is n values in {0, 1} and n >= 1.

    Example: check_training_data(np.zeros((2, 3)), np.array([0, 2])) -> RoutingError
    """
    if X.ndim != 2 or X.shape[0] == 0:
        raise RoutingError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise RoutingError(f"y must hold one label per row of X ({X.shape[0]}), got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise RoutingError(f"y must hold only 0 and 1, got values {np.unique(y).tolist()}")
    if not np.isfinite(X).all():
        raise RoutingError("X holds NaN or infinite values")


def fit_logistic(
    X: np.ndarray,
    y: np.ndarray | Sequence[int],
    l2: float = 1e-2,
    steps: int = 500,
    lr: float = 0.1,
    feature_names: Sequence[str] = (),
) -> LogisticModel:
    """Fit L2-regularised logistic regression by full-batch gradient descent (deterministic).

    Features are standardized first (statistics kept in the model), weights start
    at zero and the bias is not regularised, so the same data always gives the
    same model.

    Args:
        X: Features, shape (n, d).
        y: 1 where the edge answer was wrong, else 0; shape (n,).
        l2: Strength of the L2 penalty ``l2 / 2 * ||w||²`` on the mean log loss.
        steps: Gradient-descent steps.
        lr: Learning rate.
        feature_names: Optional names stored in the model.

    Returns:
        The fitted model.

    Example: X = [[0], [1], [2], [3]], y = [0, 0, 1, 1] -> predict_proba([[3]]) > 0.5 > predict_proba([[0]])
    """
    check_range("l2", l2, 0.0, 1e6)
    check_range("steps", steps, 1, 10_000_000)
    check_positive("lr", lr)
    features, targets = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    check_training_data(features, targets)
    mean, std = standardizer(features)
    weights, bias = gradient_descent((features - mean) / std, targets, l2, steps, lr)
    return LogisticModel(weights, bias, mean, std, tuple(feature_names))


def gradient_descent(Z: np.ndarray, y: np.ndarray, l2: float, steps: int, lr: float) -> tuple[np.ndarray, float]:
    """Minimise mean log loss + ``l2/2 ||w||²`` on standardized ``Z`` from zero; returns (weights, bias)."""
    weights, bias = np.zeros(Z.shape[1]), 0.0
    for _ in range(steps):
        error = sigmoid(Z @ weights + bias) - y
        weights -= lr * (Z.T @ error / len(y) + l2 * weights)
        bias -= lr * float(error.mean())
    return weights, bias
