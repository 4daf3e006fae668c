"""The fine-tuning loss: label cross-entropy, mixed with distillation towards a teacher."""

from __future__ import annotations

import pytest
import torch

from hybridroute.config import FinetuneConfig
from hybridroute.errors import ConfigError
from hybridroute.training.finetune import ClassifierLoss

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2]])
TARGETS = torch.tensor([0, 2])


def test_without_teacher_it_is_cross_entropy() -> None:
    loss = ClassifierLoss(label_smoothing=0.1, distill_weight=0.5, temperature=2.0)
    expected = torch.nn.functional.cross_entropy(LOGITS, TARGETS, label_smoothing=0.1)
    assert loss(LOGITS, TARGETS) == pytest.approx(float(expected))
    assert ClassifierLoss(distill_weight=0.0)(LOGITS, TARGETS, LOGITS * 3) == pytest.approx(
        float(torch.nn.functional.cross_entropy(LOGITS, TARGETS))
    )


def test_a_teacher_that_agrees_adds_nothing_beyond_the_weighted_hard_term() -> None:
    loss = ClassifierLoss(distill_weight=0.25, temperature=3.0)
    hard = float(torch.nn.functional.cross_entropy(LOGITS, TARGETS))
    # Logits that differ by a constant per row are the same distribution: the KL term is zero.
    assert loss(LOGITS, TARGETS, LOGITS + 5.0) == pytest.approx(0.75 * hard, rel=1e-5)


def test_the_soft_term_pulls_the_student_towards_the_teacher() -> None:
    student = LOGITS.clone().requires_grad_(True)
    teacher = torch.tensor([[-1.0, 0.5, 2.0], [0.1, 0.3, 0.2]])
    ClassifierLoss(distill_weight=1.0, temperature=2.0)(student, TARGETS, teacher).backward()
    assert student.grad is not None
    # Gradient descent lowers the class the student over-rates and raises the one the teacher prefers.
    assert student.grad[0, 0] > 0 > student.grad[0, 2]
    assert float(student.grad[1].abs().max()) < 1e-6  # the second row already agrees


def test_distillation_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="distill_weight"):
        FinetuneConfig(distill_weight=1.5)
    with pytest.raises(ConfigError, match="distill_temperature"):
        FinetuneConfig(distill_temperature=0.0)
