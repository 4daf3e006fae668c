"""Stage 2 (full fine-tuning) keeps the best epoch's weights, whichever epoch training ends on."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from hybridroute.config import FinetuneConfig
from hybridroute.training import finetune as finetune_module
from hybridroute.training.models import ClassifierSpec, SequenceClassifier, load_encoder, load_tokenizer

LABELS = ("negative", "positive")
TEXTS = {
    "negative": ["awful broken order", "terrible refund please", "angry about my order", "broken again today"],
    "positive": ["great service thanks", "love this order", "excellent and happy", "thanks a lot today"],
}


def _encoded(tokenizer: object, copies: int) -> finetune_module._Encoded:
    pairs = [(text, label) for label, texts in TEXTS.items() for text in texts] * copies
    texts, labels = zip(*pairs, strict=True)
    return finetune_module._encode(tokenizer, texts, labels, {label: i for i, label in enumerate(LABELS)}, 16)


@pytest.mark.parametrize(("patience", "epochs_run"), [(3, 4), (1, 3)])
def test_full_training_restores_the_best_epoch_weights(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, patience: int, epochs_run: int
) -> None:
    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(tiny_bert))
    model = SequenceClassifier(load_encoder(str(tiny_bert)), ClassifierSpec(LABELS, "mean", 16, str(tiny_bert), 0.1))
    accuracies = iter([0.6, 0.9, 0.5, 0.4])  # epoch 2 is the best; the epochs after it only get worse
    snapshots: list[dict[str, torch.Tensor]] = []

    def scripted_score(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        snapshots.append(copy.deepcopy(model.state_dict()))  # the weights this epoch ended with
        return next(accuracies), 1.0

    monkeypatch.setattr(finetune_module, "score", scripted_score)
    config = FinetuneConfig(epochs=4, patience=patience, learning_rate=1e-3, batch_size=8)
    pad_id = int(tokenizer.pad_token_id)  # type: ignore[attr-defined]

    history, best_epoch, stopped = finetune_module.train_full(
        model, _encoded(tokenizer, 2), _encoded(tokenizer, 1), pad_id, config, progress=False
    )

    assert [log.val_accuracy for log in history] == [0.6, 0.9, 0.5, 0.4][:epochs_run]
    assert (best_epoch, stopped, len(snapshots)) == (2, epochs_run < 4, epochs_run)
    final = model.state_dict()
    assert all(torch.equal(final[name], value) for name, value in snapshots[1].items())
    # the later epochs moved the weights, so holding epoch 2's is the restore's doing, not a standstill
    assert not all(torch.equal(final[name], value) for name, value in snapshots[-1].items())
