"""Temperature scaling: one scalar that makes softmax confidences honest.

Fitted on the validation split by minimising negative log-likelihood; the
argmax (and so accuracy) is unchanged, only confidences move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def log_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise log-softmax of ``logits / temperature``."""
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood at a temperature."""
    return float(-log_softmax(logits, temperature)[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: Sequence[int], low: float = 0.05, high: float = 20.0) -> float:
    """The temperature in [low, high] with the lowest NLL, by golden-section search on log T.

    NLL is unimodal in T for a fixed set of logits, so the search converges.
    Example: over-confident logits (scaled x10) -> a temperature near 10.
    """
    y = np.asarray(targets)
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(logits, y, float(np.exp(c))) < nll(logits, y, float(np.exp(d))):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width bins weighted by size.

    Example: confidences all 0.9 with 90% correct -> 0.0
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(total)
