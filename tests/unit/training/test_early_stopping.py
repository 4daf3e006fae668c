from __future__ import annotations

import pytest
import torch

from hybridroute.training.finetune import LOSS_MIN_DELTA, _EarlyStopping


def _run(patience: int, scores: list[tuple[float, float]]) -> tuple[_EarlyStopping, int]:
    """Feed (accuracy, loss) per epoch until the rule says stop; return the rule and the epochs run."""
    stopping, model = _EarlyStopping(patience), torch.nn.Linear(1, 1)
    for epoch, (accuracy, loss) in enumerate(scores, start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)  # marks whose weights the rule kept
        if stopping.update(model, epoch, accuracy, loss):
            return stopping, epoch
    return stopping, len(scores)


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_stops_patience_epochs_after_the_best_and_keeps_its_weights(patience: int) -> None:
    scores = [(0.5, 1.0), (0.7, 0.9)] + [(0.6, 0.8)] * 10
    stopping, ran = _run(patience, scores)
    assert ran == 2 + patience
    assert stopping.epoch == 2 and stopping.best == (0.7, 0.9)
    assert stopping.state is not None and stopping.state["weight"].item() == 2


def test_equal_accuracy_counts_as_progress_only_when_the_loss_falls_by_more_than_noise() -> None:
    noise, real = LOSS_MIN_DELTA / 2, LOSS_MIN_DELTA * 2
    stopping, ran = _run(1, [(0.7, 1.0), (0.7, 1.0 - real), (0.7, 1.0 - real - noise), (0.7, 0.0)])
    assert (ran, stopping.epoch) == (3, 2)


def test_never_stops_while_every_epoch_improves() -> None:
    stopping, ran = _run(1, [(0.1 * epoch, 1.0) for epoch in range(1, 8)])
    assert (ran, stopping.epoch, stopping.waited) == (7, 7, 0)
