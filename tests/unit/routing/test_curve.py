from __future__ import annotations

import numpy as np
import pytest

from hybridroute.errors import RoutingError
from hybridroute.routing.curve import apgr, cascade_curve, cpt, performance_gap_recovered, tie_group_ends


def perfect_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """100 queries, the edge wrong on 20, the cloud right on all; scores rank the errors first."""
    edge = np.ones(100, dtype=bool)
    edge[::5] = False
    scores = np.where(edge, 0.1, 0.9) + np.linspace(0, 0.01, 100)  # distinct scores, errors on top
    return scores, edge, np.ones(100, dtype=bool)


def test_docstring_example() -> None:
    shares, accuracies = cascade_curve(np.array([0.9, 0.1]), np.array([0, 1]), np.array([1, 1]))
    np.testing.assert_allclose(shares, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(accuracies, [0.5, 1.0, 1.0])


def test_curve_shares_rise_and_endpoints_are_edge_only_and_cloud_only() -> None:
    rng = np.random.default_rng(0)
    edge, cloud = rng.random(300) < 0.7, rng.random(300) < 0.9
    shares, accuracies = cascade_curve(rng.random(300), edge, cloud)
    assert shares.shape == accuracies.shape == (301,)
    assert shares[0] == 0.0 and shares[-1] == 1.0
    assert (np.diff(shares) > 0).all()
    assert accuracies[0] == pytest.approx(edge.mean())
    assert accuracies[-1] == pytest.approx(cloud.mean())


def test_ties_are_interpolated_and_input_order_does_not_matter() -> None:
    assert tie_group_ends(np.array([0.9, 0.5, 0.5, 0.1])).tolist() == [0, 1, 3, 4]
    edge, cloud = np.array([1, 0, 1, 0]), np.array([1, 1, 1, 1])
    _, flat = cascade_curve(np.full(4, 0.5), edge, cloud)
    np.testing.assert_allclose(flat, [0.5, 0.625, 0.75, 0.875, 1.0])
    _, reordered = cascade_curve(np.full(4, 0.5), edge[::-1], cloud[::-1])
    np.testing.assert_allclose(reordered, flat)


def test_apgr_of_a_perfect_router() -> None:
    scores, edge, cloud = perfect_case()
    shares, accuracies = cascade_curve(scores, edge, cloud)
    # PGR climbs linearly to 1 at share 0.2, then stays at 1: area 0.5 * 0.2 + 0.8 = 0.9
    assert apgr(shares, accuracies, edge.mean(), cloud.mean()) == pytest.approx(0.9)


def test_apgr_of_a_random_router_is_about_one_half() -> None:
    rng = np.random.default_rng(1)
    edge, cloud = rng.random(4000) < 0.7, rng.random(4000) < 0.9
    shares, accuracies = cascade_curve(rng.random(4000), edge, cloud)
    assert apgr(shares, accuracies, edge.mean(), cloud.mean()) == pytest.approx(0.5, abs=0.05)
    shares, accuracies = cascade_curve(np.zeros(4000), edge, cloud)  # all tied: the expected random curve
    assert apgr(shares, accuracies, edge.mean(), cloud.mean()) == pytest.approx(0.5)


def test_cpt_on_a_hand_made_curve() -> None:
    shares = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    accuracies = np.array([0.8, 0.9, 0.96, 0.98, 1.0])  # PGR 0, .5, .8, .9, 1
    np.testing.assert_allclose(performance_gap_recovered(accuracies, 0.8, 1.0), [0, 0.5, 0.8, 0.9, 1.0])
    assert cpt(shares, accuracies, 0.8, 1.0, 50) == 0.25
    assert cpt(shares, accuracies, 0.8, 1.0, 80) == 0.5  # 0.96 - 0.8 rounds below 0.16: tolerated
    assert cpt(shares, accuracies, 0.8, 1.0, 85) == 0.75
    assert cpt(shares, accuracies, 0.8, 1.0, 100) == 1.0


def test_cpt_of_the_perfect_router() -> None:
    scores, edge, cloud = perfect_case()
    shares, accuracies = cascade_curve(scores, edge, cloud)
    assert cpt(shares, accuracies, edge.mean(), cloud.mean(), 50) == pytest.approx(0.10)
    assert cpt(shares, accuracies, edge.mean(), cloud.mean(), 80) == pytest.approx(0.16)


@pytest.mark.parametrize(("edge_acc", "cloud_acc"), [(0.9, 0.9), (0.9, 0.8)])
def test_no_gap_is_an_error_not_a_number(edge_acc: float, cloud_acc: float) -> None:
    shares, accuracies = np.array([0.0, 1.0]), np.array([edge_acc, cloud_acc])
    with pytest.raises(RoutingError, match="no gap to recover"):
        apgr(shares, accuracies, edge_acc, cloud_acc)
    with pytest.raises(RoutingError, match="no gap to recover"):
        cpt(shares, accuracies, edge_acc, cloud_acc, 50)


def test_cpt_and_apgr_reject_bad_input() -> None:
    shares, accuracies = np.array([0.0, 0.5, 1.0]), np.array([0.8, 0.85, 0.9])
    for pct in (0, -5, 101):
        with pytest.raises(RoutingError, match="pct"):
            cpt(shares, accuracies, 0.8, 1.0, pct)
    with pytest.raises(RoutingError, match="recovers"):
        cpt(shares, accuracies, 0.8, 1.0, 60)  # the curve never gets past 50%
    with pytest.raises(RoutingError, match="rise from 0 to 1"):
        apgr(np.array([0.0, 0.5]), np.array([0.8, 0.9]), 0.8, 1.0)
    with pytest.raises(RoutingError, match="one length"):
        apgr(shares, accuracies[:2], 0.8, 1.0)


def test_cascade_curve_rejects_mismatched_inputs() -> None:
    with pytest.raises(RoutingError, match="edge_correct"):
        cascade_curve(np.zeros(3), np.zeros(2), np.zeros(3))
    with pytest.raises(RoutingError, match="non-empty"):
        cascade_curve(np.zeros(0), np.zeros(0), np.zeros(0))
