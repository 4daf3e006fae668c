"""Stage 1 (head warm-up on cached encoder features) trains through the configured dropout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hybridroute.config import DataConfig, FinetuneConfig
from hybridroute.data import load_split
from hybridroute.training import finetune as finetune_module


def test_the_head_warm_up_applies_dropout_and_scores_without_it(
    tiny_bert: Path, toy_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[bool] = []
    warm_up = finetune_module.warm_up_head

    def spy(model: torch.nn.Module, *args: object, **kwargs: object) -> object:
        forward = model.dropout.forward

        def recording(x: torch.Tensor) -> torch.Tensor:
            modes.append(model.dropout.training)
            return forward(x)

        model.dropout.forward = recording
        try:
            return warm_up(model, *args, **kwargs)
        finally:
            del model.dropout.forward  # stage 2 and the final scoring are not stage 1's to record

    monkeypatch.setattr(finetune_module, "warm_up_head", spy)
    split = load_split(DataConfig(toy_csv, val_fraction=0.2))
    config = FinetuneConfig(head_epochs=2, epochs=0, batch_size=16, dropout=0.5)

    finetune_module.finetune(split, str(tiny_bert), config, tmp_path / "classifier", progress=False)

    assert modes and all(modes)  # every stage-1 update went through active dropout (validation skips it)
