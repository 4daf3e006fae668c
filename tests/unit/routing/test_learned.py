from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing.learned import LogisticModel, fit_logistic, sigmoid, standardizer


def blobs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated Gaussian blobs in 3-D, on very different scales."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 3)) + np.where(y[:, None] == 1, 2.5, -2.5) * np.array([1.0, 0.0, 0.0])
    return X * np.array([1.0, 100.0, 0.01]), y


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    positives, negatives = scores[y == 1], scores[y == 0]
    return float((positives[:, None] > negatives[None, :]).mean())


def test_learns_a_separable_toy_problem() -> None:
    X, y = blobs()
    model = fit_logistic(X, y)
    probabilities = model.predict_proba(X)
    assert ((probabilities >= 0.5) == y).mean() > 0.95
    X_test, y_test = blobs(seed=1)
    assert auc(model.predict_proba(X_test), y_test) > 0.95


def test_fit_is_deterministic() -> None:
    X, y = blobs(100)
    assert fit_logistic(X, y) == fit_logistic(X, y)


def test_round_trip_is_exact_through_json() -> None:
    X, y = blobs(100)
    model = fit_logistic(X, y, feature_names=("a", "b", "c"))
    restored = LogisticModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model
    np.testing.assert_array_equal(restored.weights, model.weights)
    assert restored.bias == model.bias
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert restored.feature_names == ("a", "b", "c")


def test_constant_features_do_not_break_standardization() -> None:
    assert [a.tolist() for a in standardizer(np.array([[1.0, 5.0], [3.0, 5.0]]))] == [[2.0, 5.0], [1.0, 1.0]]
    X = np.column_stack([np.arange(10.0), np.full(10, 7.0)])
    model = fit_logistic(X, (np.arange(10) >= 5).astype(int))
    assert np.isfinite(model.predict_proba(X)).all()


def test_one_class_data_learns_a_constant() -> None:
    model = fit_logistic(np.arange(8.0).reshape(4, 2), np.zeros(4))
    assert (model.predict_proba(np.arange(8.0).reshape(4, 2)) < 0.5).all()


def test_sigmoid_is_stable_at_extremes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(sigmoid(np.array([0.0, 1000.0, -1000.0])), [0.5, 1.0, 0.0])


def test_predict_proba_shapes_and_width_check() -> None:
    model = LogisticModel(np.array([1.0, -1.0]), 0.0, np.zeros(2), np.ones(2))
    assert model.predict_proba(np.array([0.0, 0.0])).shape == (1,)
    assert model.predict_proba(np.zeros((5, 2))).shape == (5,)
    with pytest.raises(RoutingError, match="expects 2 features"):
        model.predict_proba(np.zeros((5, 3)))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"weights": [1.0], "bias": 0.0, "mean": [0.0]}, "missing keys"),
        ({"weights": [1.0], "bias": 0.0, "mean": [0.0], "std": [1.0], "extra": 1}, "unknown keys"),
        ({"weights": [1.0, 2.0], "bias": 0.0, "mean": [0.0], "std": [1.0]}, "one length"),
        ({"weights": [1.0], "bias": 0.0, "mean": [0.0], "std": [0.0]}, "std must be > 0"),
        ({"weights": [1.0], "bias": float("nan"), "mean": [0.0], "std": [1.0]}, "finite"),
        ({"weights": ["x"], "bias": 0.0, "mean": [0.0], "std": [1.0]}, "invalid values"),
        ({"weights": [1.0], "bias": 0.0, "mean": [0.0], "std": [1.0], "feature_names": ["a", "b"]}, "names"),
    ],
)
def test_from_dict_rejects_bad_models(values: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LogisticModel.from_dict(values)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((0, 2)), np.zeros(0), "non-empty"),
        (np.zeros((3, 2)), np.zeros(2), "one label per row"),
        (np.zeros((2, 2)), np.array([0, 2]), "only 0 and 1"),
        (np.array([[np.nan], [1.0]]), np.array([0, 1]), "NaN"),
    ],
)
def test_fit_rejects_bad_training_data(X: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(RoutingError, match=match):
        fit_logistic(X, y)


def test_fit_validates_hyperparameters() -> None:
    X, y = blobs(20)
    with pytest.raises(ConfigError, match="lr"):
        fit_logistic(X, y, lr=0.0)
    with pytest.raises(ConfigError, match="steps"):
        fit_logistic(X, y, steps=0)
