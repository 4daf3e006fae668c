from __future__ import annotations

import numpy as np
import pytest

from hybridroute.compression.gates import ParityReport, check_accuracy_drop, check_parity, parity
from hybridroute.errors import ArtifactError


def test_parity_docstring_example() -> None:
    report = parity(np.array([[1.0, 0.0]]), np.array([[0.9, 0.1]]))
    assert report.samples == 1
    assert report.agreement == 1.0
    assert report.max_logit_diff == pytest.approx(0.1)


def test_parity_arithmetic() -> None:
    reference = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    candidate = np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 1.5], [0.0, 0.0, 3.0], [1.0, 0.0, -0.25]])
    report = parity(reference, candidate)
    assert report == ParityReport(samples=4, agreement=0.75, max_logit_diff=1.5)
    assert report.to_dict() == {"samples": 4, "agreement": 0.75, "max_logit_diff": 1.5}


def test_parity_identical() -> None:
    logits = np.random.default_rng(0).normal(size=(20, 4))
    report = parity(logits, logits.copy())
    assert (report.agreement, report.max_logit_diff) == (1.0, 0.0)


def test_parity_shape_mismatch() -> None:
    with pytest.raises(ArtifactError, match=r"reference \(2, 3\), candidate \(2, 4\)"):
        parity(np.zeros((2, 3)), np.zeros((2, 4)))


def test_check_parity_passes_at_the_limits() -> None:
    check_parity(ParityReport(100, 0.99, 1e-3), min_agreement=0.99, max_logit_diff=1e-3)


def test_check_parity_fails_on_agreement_with_both_numbers() -> None:
    with pytest.raises(ArtifactError) as info:
        check_parity(ParityReport(200, 0.95, 1e-4), min_agreement=0.99, max_logit_diff=1e-3)
    message = str(info.value)
    assert "200 texts" in message
    assert "agreement 0.9500" in message
    assert "needs >= 0.99" in message


def test_check_parity_fails_on_logit_diff_with_both_numbers() -> None:
    with pytest.raises(ArtifactError) as info:
        check_parity(ParityReport(10, 1.0, 0.05), min_agreement=0.99, max_logit_diff=1e-3)
    message = str(info.value)
    assert "5.00e-02" in message
    assert "needs <= 1e-03" in message


def test_check_parity_refuses_nan_logits() -> None:
    reference = np.array([[2.0, 0.0], [0.0, 2.0]])
    candidate = np.array([[np.nan, 0.0], [0.0, np.nan]])  # argmax still agrees: NaN counts as the maximum
    with pytest.raises(ArtifactError):
        check_parity(parity(reference, candidate), min_agreement=0.99, max_logit_diff=1e-3)


@pytest.mark.parametrize(
    ("reference", "candidate", "max_drop"),
    [
        (0.90, 0.89, 0.01),  # exactly the allowed drop (0.9 - 0.89 is a hair above 0.01 in floats)
        (0.80, 0.79, 0.01),
        (0.5, 0.5, 0.0),
        (0.7, 0.75, 0.0),  # improving is always fine
        (0.9, 0.8, 0.1),
    ],
)
def test_check_accuracy_drop_passes_up_to_the_boundary(reference: float, candidate: float, max_drop: float) -> None:
    check_accuracy_drop(reference, candidate, max_drop)


@pytest.mark.parametrize(
    ("reference", "candidate", "max_drop"),
    [
        (0.90, 0.8899, 0.01),
        (0.5, 0.4999, 0.0),
        (0.9, 0.79, 0.1),
    ],
)
def test_check_accuracy_drop_fails_beyond(reference: float, candidate: float, max_drop: float) -> None:
    with pytest.raises(ArtifactError, match="INT8 accuracy gate failed") as info:
        check_accuracy_drop(reference, candidate, max_drop)
    assert f"{candidate:.4f}" in str(info.value)
    assert f"{reference:.4f}" in str(info.value)


def test_check_accuracy_drop_message_in_points() -> None:
    with pytest.raises(ArtifactError) as info:
        check_accuracy_drop(0.92, 0.88, 0.01, what="FP16")
    message = str(info.value)
    assert message.startswith("FP16 accuracy gate failed")
    assert "drop 4.00 points, allowed 1.00" in message
