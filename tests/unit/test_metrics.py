from __future__ import annotations

import pytest

from hybridroute.metrics import accuracy, macro_f1, percentiles


@pytest.mark.parametrize(
    ("predicted", "actual", "expected"),
    [
        (["a", "b"], ["a", "a"], 0.5),
        (["a", "b", "c"], ["a", "b", "c"], 1.0),
        (["b", "a"], ["a", "b"], 0.0),
        (["x", "y", "y", "x"], ["x", "y", "x", "x"], 0.75),
    ],
)
def test_accuracy_hand_worked(predicted: list[str], actual: list[str], expected: float) -> None:
    assert accuracy(predicted, actual) == pytest.approx(expected)


def test_accuracy_empty_is_zero() -> None:
    assert accuracy([], []) == 0.0


@pytest.mark.parametrize(("predicted", "actual"), [(["a"], ["a", "b"]), (["a", "b"], ["a"]), ([], ["a"])])
def test_accuracy_length_mismatch(predicted: list[str], actual: list[str]) -> None:
    with pytest.raises(ValueError, match=f"{len(predicted)} predictions for {len(actual)} labels"):
        accuracy(predicted, actual)


def test_macro_f1_docstring_example() -> None:
    assert macro_f1(["a", "b"], ["a", "a"]) == pytest.approx(1 / 3)


def test_macro_f1_hand_worked_three_classes() -> None:
    actual = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "c", "c"]
    # a: tp 2, fp 0, fn 1 -> 4/5; b: tp 1, fp 1, fn 1 -> 1/2; c: tp 1, fp 1, fn 0 -> 2/3
    assert macro_f1(predicted, actual) == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)


def test_macro_f1_is_unweighted_unlike_accuracy() -> None:
    actual = ["a"] * 9 + ["b"]
    predicted = ["a"] * 10
    assert accuracy(predicted, actual) == pytest.approx(0.9)
    # a: 2*9/(18+1) = 18/19; b: 0
    assert macro_f1(predicted, actual) == pytest.approx(9 / 19)


def test_macro_f1_counts_classes_only_predicted() -> None:
    assert macro_f1(["a", "z"], ["a", "a"]) == pytest.approx((2 / 3 + 0.0) / 2)


def test_macro_f1_perfect_and_empty() -> None:
    assert macro_f1(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert macro_f1([], []) == 0.0


def test_macro_f1_length_mismatch() -> None:
    with pytest.raises(ValueError, match="1 predictions for 2 labels"):
        macro_f1(["a"], ["a", "b"])


def test_percentiles_hand_worked() -> None:
    result = percentiles([float(v) for v in range(1, 101)])  # 1..100
    assert set(result) == {"mean", "p50", "p95", "p99"}
    assert result["mean"] == pytest.approx(50.5)
    assert result["p50"] == pytest.approx(50.5)
    assert result["p95"] == pytest.approx(95.05)
    assert result["p99"] == pytest.approx(99.01)


def test_percentiles_single_value_and_ordering() -> None:
    assert percentiles([7.0]) == {"mean": 7.0, "p50": 7.0, "p95": 7.0, "p99": 7.0}
    result = percentiles([1.0, 1.0, 1.0, 100.0])
    assert result["p50"] <= result["p95"] <= result["p99"] <= 100.0
    assert result["mean"] == pytest.approx(25.75)
    assert all(isinstance(v, float) for v in result.values())
