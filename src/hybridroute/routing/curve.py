"""Cascade curves and RouteLLM's summary numbers (APGR, CPT), in pure numpy.

A router with escalation scores (higher = escalate first) traces a curve: as the
cloud share sweeps from 0 to 1, the hybrid answers the highest-scoring queries
with the cloud and the rest with the edge. Summaries follow RouteLLM:

- ``PGR(x) = (acc(x) - edge_acc) / (cloud_acc - edge_acc)``, the share of the
  edge→cloud accuracy gap recovered at cloud share ``x``;
- ``APGR = ∫₀¹ PGR(x) dx`` (trapezoid rule): 0.5 for a random router, more for a useful one;
- ``CPT(p%)``: the smallest cloud share whose PGR reaches ``p%``.

PGR is undefined when the cloud is no better than the edge (gap ≤ 0): these
functions then raise :class:`RoutingError` instead of returning NaN or a
meaningless sign-flipped number, so a benchmark cannot publish one by accident.
"""

from __future__ import annotations

import numpy as np

from hybridroute.errors import RoutingError

_PGR_TOLERANCE = 1e-12  # PGR is a ratio of float sums; forgive rounding at exact hits


def as_flags(values: np.ndarray, name: str, n: int) -> np.ndarray:
    """Booleans as float64 0/1, checked to have length ``n``.

    Example: as_flags(np.array([True, False]), "edge_correct", 2) -> array([1., 0.])
    """
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise RoutingError(f"{name} must have shape ({n},), got {array.shape}")
    return array


def tie_group_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """Escalation counts at which a tie group ends, for scores sorted in descending order (0 included).

    Example: tie_group_ends(np.array([0.9, 0.5, 0.5, 0.1])) -> array([0, 1, 3, 4])
    """
    breaks = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1
    return np.concatenate([[0], breaks, [sorted_scores.size]])


def cascade_curve(
    escalation_scores: np.ndarray, edge_correct: np.ndarray, cloud_correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hybrid accuracy at every cloud share k/n, escalating the highest scores first.

    Queries with equal scores cannot be told apart by the router, so inside a tie
    group the accuracy is interpolated linearly: the expected accuracy when ties
    are broken at random (it does not depend on the input order).

    Args:
        escalation_scores: One score per query, higher = escalate first.
        edge_correct: Whether the edge answer was right, per query.
        cloud_correct: Whether the cloud answer was right, per query.

    Returns:
        ``(cloud_shares, accuracies)``, each of length n + 1; shares run 0, 1/n, …, 1,
        accuracies start at edge-only and end at cloud-only accuracy.

    Example: scores [0.9, 0.1], edge [0, 1], cloud [1, 1] -> ([0, .5, 1], [.5, 1, 1])
    """
    scores = np.asarray(escalation_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise RoutingError(f"escalation_scores must be a non-empty 1-D array, got shape {scores.shape}")
    n = scores.size
    edge, cloud = as_flags(edge_correct, "edge_correct", n), as_flags(cloud_correct, "cloud_correct", n)
    order = np.argsort(-scores, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum(cloud[order] - edge[order])])  # correct answers won by escalating
    ends = tie_group_ends(scores[order])
    counts = np.arange(n + 1)
    accuracies = (edge.sum() + np.interp(counts, ends, gain[ends])) / n
    return counts / n, accuracies


def performance_gap_recovered(accuracies: np.ndarray, edge_acc: float, cloud_acc: float) -> np.ndarray:
    """PGR of each accuracy: 0 at the edge's accuracy, 1 at the cloud's.

    Raises:
        RoutingError: If ``cloud_acc <= edge_acc`` (there is no gap to recover).

    Example: performance_gap_recovered(np.array([0.8, 0.9, 1.0]), 0.8, 1.0) -> array([0., 0.5, 1.])
    """
    gap = cloud_acc - edge_acc
    if not gap > 0:
        raise RoutingError(
            f"PGR is undefined: cloud accuracy {cloud_acc} is not above edge accuracy "
            f"{edge_acc}, so there is no gap to recover"
        )
    return (np.asarray(accuracies, dtype=np.float64) - edge_acc) / gap


def check_curve(shares: np.ndarray, accuracies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a curve: equal lengths, shares non-decreasing from 0 to 1."""
    x, y = np.asarray(shares, dtype=np.float64), np.asarray(accuracies, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise RoutingError(f"shares and accuracies must be 1-D of one length >= 2, got {x.shape}, {y.shape}")
    if (np.diff(x) < 0).any() or x[0] != 0.0 or x[-1] != 1.0:
        raise RoutingError(f"shares must rise from 0 to 1, got {x[0]} … {x[-1]} (non-decreasing)")
    return x, y


def apgr(shares: np.ndarray, accuracies: np.ndarray, edge_acc: float, cloud_acc: float) -> float:
    """Average performance gap recovered: the area under PGR over cloud share, by trapezoids.

    Raises:
        RoutingError: If the curve is malformed or ``cloud_acc <= edge_acc``.

    Example: a random router's straight line from edge_acc to cloud_acc -> 0.5
    """
    x, y = check_curve(shares, accuracies)
    pgr = performance_gap_recovered(y, edge_acc, cloud_acc)
    return float(np.sum(np.diff(x) * (pgr[1:] + pgr[:-1]) / 2.0))


def cpt(shares: np.ndarray, accuracies: np.ndarray, edge_acc: float, cloud_acc: float, pct: float) -> float:
    """Call-performance threshold: the smallest cloud share whose PGR is at least ``pct`` percent.

    Raises:
        RoutingError: If ``pct`` is outside (0, 100], the curve is malformed,
            ``cloud_acc <= edge_acc``, or no point of the curve reaches ``pct``.

    Example: shares [0, .25, .5, .75, 1], accuracies [.8, .85, .9, .95, 1], edges .8/1.0, pct 50 -> 0.5
    """
    if not 0 < pct <= 100:
        raise RoutingError(f"pct must be in (0, 100], got {pct!r}")
    x, y = check_curve(shares, accuracies)
    reached = np.flatnonzero(performance_gap_recovered(y, edge_acc, cloud_acc) >= pct / 100 - _PGR_TOLERANCE)
    if reached.size == 0:
        raise RoutingError(f"no point of the curve recovers {pct}% of the gap")
    return float(x[reached[0]])
