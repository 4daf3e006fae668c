"""Learning-rate schedules."""

from __future__ import annotations

import torch


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Rise linearly for ``warmup`` steps, then fall linearly to zero at ``total``.

    Example: warmup 10, total 100 -> factor 0.6 at step 5, 1.0 at step 9, 0.5 at step 55.
    """

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
