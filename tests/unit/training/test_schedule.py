from __future__ import annotations

import pytest
import torch

from hybridroute.training.schedule import linear_warmup_decay

BASE_LR = 0.1


def _factors(warmup: int, total: int, steps: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=BASE_LR)
    scheduler = linear_warmup_decay(optimizer, warmup, total)
    factors = []
    for _ in range(steps):
        factors.append(optimizer.param_groups[0]["lr"] / BASE_LR)
        optimizer.step()
        scheduler.step()
    return factors


@pytest.mark.parametrize(
    ("step", "factor"),
    [
        (0, 0.1),  # the first step already trains, at 1/warmup of the rate
        (4, 0.5),
        (9, 1.0),
        (10, 1.0),
        (55, 0.5),
        (91, 0.1),
        (100, 0.0),
        (120, 0.0),  # never negative past the end
    ],
)
def test_factors_at_given_steps(step: int, factor: float) -> None:
    assert _factors(10, 100, 121)[step] == pytest.approx(factor)


def test_warmup_rises_then_decays_monotonically() -> None:
    factors = _factors(10, 100, 101)
    warm, decay = factors[:10], factors[10:]
    assert all(a < b for a, b in zip(warm[:-1], warm[1:], strict=True))
    assert all(a > b for a, b in zip(decay[:-1], decay[1:], strict=True))
    assert max(factors) == pytest.approx(1.0)


def test_zero_warmup_starts_at_full_rate() -> None:
    factors = _factors(0, 4, 6)
    assert factors == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0, 0.0])


def test_warmup_equal_to_total() -> None:
    factors = _factors(4, 4, 6)
    assert factors == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.0, 0.0])
