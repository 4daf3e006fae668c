"""Classification metrics on plain sequences, and latency samples (numpy only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def accuracy(predicted: Sequence[str], actual: Sequence[str]) -> float:
    """Share of exact matches.

    Example: accuracy(["a", "b"], ["a", "a"]) -> 0.5
    """
    if len(predicted) != len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} labels")
    if not actual:
        return 0.0
    return float(np.mean([p == a for p, a in zip(predicted, actual, strict=True)]))


def macro_f1(predicted: Sequence[str], actual: Sequence[str]) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``actual`` or ``predicted``.

    Example: macro_f1(["a", "b"], ["a", "a"]) -> mean(F1_a=2/3, F1_b=0) = 1/3
    """
    if len(predicted) != len(actual):
        raise ValueError(f"{len(predicted)} predictions for {len(actual)} labels")
    classes = sorted(set(actual) | set(predicted))
    scores = []
    for c in classes:
        tp = sum(p == c and a == c for p, a in zip(predicted, actual, strict=True))
        fp = sum(p == c and a != c for p, a in zip(predicted, actual, strict=True))
        fn = sum(p != c and a == c for p, a in zip(predicted, actual, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """Mean, p50, p95 and p99 of a sample (milliseconds in, milliseconds out)."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p95": float(np.percentile(array, 95)),
        "p99": float(np.percentile(array, 99)),
    }


def time_each(
    call: Callable[[Any], Any], items: Sequence[Any], clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Milliseconds each ``call(item)`` took."""
    timings = []
    for item in items:
        started = clock()
        call(item)
        timings.append((clock() - started) * 1000.0)
    return timings
