from __future__ import annotations

import numpy as np
import pytest

from hybridroute.calibration import expected_calibration_error, fit_temperature, log_softmax, nll


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _synthetic(true_temperature: float, n: int = 4000, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports z * T, so dividing by T is exactly right."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, k))
    probs = _softmax(z)
    targets = np.array([rng.choice(k, p=p) for p in probs])
    return z * true_temperature, targets


def test_log_softmax_rows_normalise_and_scale() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    out = log_softmax(logits, 1.0)
    assert np.allclose(np.exp(out).sum(axis=1), 1.0)
    assert np.isfinite(out).all()
    assert np.allclose(log_softmax(logits * 2, 2.0), out)


def test_nll_hand_worked() -> None:
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    # p(target) = 0.5 and 0.75
    assert nll(logits, np.array([0, 0]), 1.0) == pytest.approx(-(np.log(0.5) + np.log(0.75)) / 2)


@pytest.mark.parametrize("true_temperature", [0.5, 3.0, 8.0])
def test_fit_temperature_recovers_known_temperature(true_temperature: float) -> None:
    logits, targets = _synthetic(true_temperature)
    fitted = fit_temperature(logits, targets.tolist())
    assert fitted == pytest.approx(true_temperature, rel=0.15)


def test_fit_temperature_lowers_nll_and_keeps_argmax() -> None:
    logits, targets = _synthetic(3.0, seed=1)
    fitted = fit_temperature(logits, targets)
    assert nll(logits, targets, fitted) < nll(logits, targets, 1.0)
    calibrated = log_softmax(logits, fitted)
    assert np.array_equal(calibrated.argmax(axis=1), logits.argmax(axis=1))


def test_fit_temperature_is_the_minimum() -> None:
    logits, targets = _synthetic(2.0, n=1000, seed=2)
    fitted = fit_temperature(logits, targets)
    best = nll(logits, targets, fitted)
    for factor in (0.8, 0.95, 1.05, 1.25):
        assert best <= nll(logits, targets, fitted * factor) + 1e-12


def test_fit_temperature_stays_in_bounds() -> None:
    # Labels are always the argmax: NLL keeps falling as T shrinks, so the search ends at the low bound.
    logits = np.array([[2.0, 0.0], [0.0, 2.0]] * 10)
    targets = np.array([0, 1] * 10)
    fitted = fit_temperature(logits, targets, low=0.1, high=5.0)
    assert 0.1 <= fitted <= 0.1 * 1.01


def test_ece_perfect_calibration_is_zero() -> None:
    confidence = np.full(10, 0.9)
    correct = np.array([1] * 9 + [0], dtype=float)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_perfect_in_two_bins() -> None:
    confidence = np.array([0.6] * 5 + [1.0] * 5)
    correct = np.array([1, 1, 1, 0, 0] + [1] * 5, dtype=bool)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_overconfident_example() -> None:
    confidence = np.full(10, 0.9)
    correct = np.array([1] * 5 + [0] * 5, dtype=float)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.4)


def test_ece_weights_bins_by_size() -> None:
    # 8 texts at 0.95 all right (gap 0.05), 2 texts at 0.55 all wrong (gap 0.55).
    confidence = np.array([0.95] * 8 + [0.55] * 2)
    correct = np.array([1] * 8 + [0] * 2, dtype=float)
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.8 * 0.05 + 0.2 * 0.55)


def test_temperature_scaling_reduces_ece() -> None:
    logits, targets = _synthetic(4.0, seed=3)
    fitted = fit_temperature(logits, targets)
    before = np.exp(log_softmax(logits, 1.0))
    after = np.exp(log_softmax(logits, fitted))
    correct = before.argmax(axis=1) == targets
    ece_before = expected_calibration_error(before.max(axis=1), correct)
    ece_after = expected_calibration_error(after.max(axis=1), correct)
    assert ece_after < ece_before / 2
    assert ece_after < 0.05
