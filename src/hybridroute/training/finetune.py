"""Two-stage fine-tuning of an encoder into a classifier.

Stage 1 warms up a fresh head on a frozen encoder: its features are computed
once, so this costs one forward pass. Stage 2 trains the whole model at a
smaller learning rate with warm-up and linear decay, evaluates after every
epoch, stops after ``patience`` epochs without improvement and restores the
best weights. Without stage 1 the random head's large gradients would wreck
the pretrained encoder in the first steps.

Given a teacher's logits on the training texts (knowledge distillation, e.g.
from the cloud tier), both stages also pull the student towards the teacher's
softened distribution (Hinton et al., 2015).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from hybridroute.config import FinetuneConfig
from hybridroute.data import Split
from hybridroute.errors import DataError
from hybridroute.training.batching import bucketed_batches, pad, sequential_batches, tokenize
from hybridroute.training.models import (
    ClassifierSpec,
    SequenceClassifier,
    check_max_length,
    keep_bottom_layers,
    load_encoder,
    load_tokenizer,
)
from hybridroute.training.schedule import linear_warmup_decay

logger = logging.getLogger(__name__)

LOSS_MIN_DELTA = 1e-3  # validation-loss changes smaller than this are noise, not progress


@dataclass(frozen=True)
class EpochLog:
    """One epoch of one stage."""

    stage: str
    epoch: int
    train_loss: float
    val_accuracy: float
    val_loss: float
    seconds: float


@dataclass(frozen=True)
class FinetuneResult:
    """The saved classifier and how training went."""

    out_dir: Path
    labels: tuple[str, ...]
    val_accuracy: float
    best_epoch: int
    stopped_early: bool
    seconds: float
    history: list[EpochLog] = field(default_factory=list)


@dataclass
class _Encoded:
    tokens: list[list[int]]
    targets: torch.Tensor
    teacher: torch.Tensor | None = None  # teacher logits, one row per text

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.tokens]


# ---------------------------------------------------------------- evaluation


def predict_logits(
    model: SequenceClassifier, tokens: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
) -> torch.Tensor:
    """Logits for pre-tokenized texts, in their original order."""
    model.eval()
    out = torch.zeros((len(tokens), len(model.spec.labels)))
    with torch.no_grad():
        for batch_idx in sequential_batches([len(t) for t in tokens], batch_size):
            out[batch_idx] = model(*pad([tokens[i] for i in batch_idx], pad_id))
    return out


def score(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of logits against integer targets."""
    accuracy = float((logits.argmax(dim=1) == targets).float().mean())
    return accuracy, float(nn.functional.cross_entropy(logits, targets))


def _features(
    model: SequenceClassifier, data: _Encoded, pad_id: int, batch_size: int, desc: str, progress: bool
) -> torch.Tensor:
    model.eval()
    feats = torch.zeros((len(data.tokens), model.head.in_features))
    batches = sequential_batches(data.lengths, batch_size)
    with torch.no_grad():
        for batch_idx in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            feats[batch_idx] = model.features(*pad([data.tokens[i] for i in batch_idx], pad_id))
    return feats


# ---------------------------------------------------------------- loss


@dataclass(frozen=True)
class ClassifierLoss:
    """Label cross-entropy, mixed with distillation towards teacher logits when a batch carries them."""

    label_smoothing: float = 0.0
    distill_weight: float = 0.0
    temperature: float = 1.0

    @classmethod
    def from_config(cls, config: FinetuneConfig) -> ClassifierLoss:
        """The loss a fine-tuning configuration asks for."""
        return cls(config.label_smoothing, config.distill_weight, config.distill_temperature)

    def __call__(
        self, logits: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss of a batch; ``teacher`` holds the teacher's logits for the same rows."""
        hard = nn.functional.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        if teacher is None or self.distill_weight == 0.0:
            return hard
        t = self.temperature
        soft = nn.functional.kl_div(
            nn.functional.log_softmax(logits / t, dim=1),
            nn.functional.log_softmax(teacher / t, dim=1),
            log_target=True,
            reduction="batchmean",
        )
        # T^2 keeps the soft term's gradients on the scale of the hard term's.
        return (1.0 - self.distill_weight) * hard + self.distill_weight * t * t * soft


def _rows(values: torch.Tensor | None, index: torch.Tensor | list[int]) -> torch.Tensor | None:
    return None if values is None else values[index]


# ---------------------------------------------------------------- stages


def warm_up_head(
    model: SequenceClassifier, train: _Encoded, val: _Encoded, pad_id: int, config: FinetuneConfig, progress: bool
) -> list[EpochLog]:
    """Stage 1: train only the head on frozen-encoder features."""
    if config.head_epochs == 0:
        return []
    started = time.monotonic()
    train_x = _features(model, train, pad_id, 64, "stage 1: encoding training texts", progress)
    val_x = _features(model, val, pad_id, 64, "stage 1: encoding validation texts", progress)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=config.head_learning_rate)
    loss_fn = ClassifierLoss.from_config(config)
    generator = torch.Generator().manual_seed(config.seed)
    history = []
    for epoch in tqdm(range(1, config.head_epochs + 1), desc="stage 1: head warm-up", disable=not progress):
        model.head.train()
        model.dropout.train()  # the features are cached, but the head still trains through the configured dropout
        losses = []
        for batch in torch.randperm(len(train_x), generator=generator).split(config.batch_size):
            loss = loss_fn(model.head(model.dropout(train_x[batch])), train.targets[batch], _rows(train.teacher, batch))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        model.head.eval()
        model.dropout.eval()
        with torch.no_grad():
            accuracy, val_loss = score(model.head(val_x), val.targets)
        history.append(EpochLog("head", epoch, float(np.mean(losses)), accuracy, val_loss, time.monotonic() - started))
    logger.info("stage 1 done: validation accuracy %.4f", history[-1].val_accuracy)
    return history


def _optimizer(model: nn.Module, config: FinetuneConfig) -> torch.optim.Optimizer:
    # Biases and LayerNorm weights are not decayed, as in BERT's recipe.
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate)


@dataclass
class _Stepper:
    """One optimisation step: loss, backward, clipping, optimiser and schedule."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: ClassifierLoss

    def step(
        self,
        model: SequenceClassifier,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        y: torch.Tensor,
        teacher: torch.Tensor | None = None,
    ) -> float:
        loss = self.loss_fn(model(input_ids, mask), y, teacher)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return loss.item()


@dataclass
class _EarlyStopping:
    """Keeps the best full-training epoch by (validation accuracy, then lower loss) and counts epochs without progress.

    The warmed-up starting point does not count towards patience: with a frozen encoder it can score well, yet
    the first full epochs, still at a high learning rate, may trail it; counting it would stop training before it
    settles. ``train_full`` compares it with the best full epoch only at the end.
    """

    patience: int
    best: tuple[float, float] = (-1.0, float("inf"))
    state: dict[str, torch.Tensor] | None = None
    epoch: int = 0
    waited: int = 0

    def update(self, model: nn.Module, epoch: int, accuracy: float, loss: float) -> bool:
        """Record an epoch; return True when training should stop."""
        # Equal accuracy counts as progress only when the loss falls by more than noise.
        if accuracy > self.best[0] or (accuracy == self.best[0] and loss < self.best[1] - LOSS_MIN_DELTA):
            self.best, self.state, self.epoch, self.waited = (
                (accuracy, loss),
                copy.deepcopy(model.state_dict()),
                epoch,
                0,
            )
            return False
        self.waited += 1
        return self.waited >= self.patience


def _train_epoch(
    model: SequenceClassifier,
    train: _Encoded,
    pad_id: int,
    stepper: _Stepper,
    batch_size: int,
    rng: np.random.Generator,
    bar: tqdm,
) -> float:
    model.train()
    losses = []
    for batch_idx in bucketed_batches(train.lengths, batch_size, rng):
        input_ids, mask = pad([train.tokens[i] for i in batch_idx], pad_id)
        losses.append(stepper.step(model, input_ids, mask, train.targets[batch_idx], _rows(train.teacher, batch_idx)))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    return float(np.mean(losses))


def _stepper(model: SequenceClassifier, config: FinetuneConfig, total: int) -> _Stepper:
    optimizer = _optimizer(model, config)
    scheduler = linear_warmup_decay(optimizer, int(config.warmup_ratio * total), total)
    return _Stepper(optimizer, scheduler, ClassifierLoss.from_config(config))


def train_full(
    model: SequenceClassifier,
    train: _Encoded,
    val: _Encoded,
    pad_id: int,
    config: FinetuneConfig,
    progress: bool,
    start: EpochLog | None = None,
) -> tuple[list[EpochLog], int, bool]:
    """Stage 2: train everything, early-stop on validation accuracy, restore the best weights.

    ``start`` is the warmed-up model's validation score. When no full epoch beats it (a student
    whose layers were already fine-tuned can only lose by moving them), the warmed-up weights come
    back. Returns the epoch history, the best epoch (0: the warmed-up weights, or no full epoch
    ran) and whether it stopped early.
    """
    # (its validation accuracy, its weights): the candidate the full epochs must beat
    warmed = (start.val_accuracy, copy.deepcopy(model.state_dict())) if start is not None and config.epochs else None
    rng = np.random.default_rng(config.seed)
    total = math.ceil(len(train.tokens) / config.batch_size) * config.epochs
    stepper = _stepper(model, config, total)
    stopping = _EarlyStopping(config.patience)
    history: list[EpochLog] = []
    started = time.monotonic()
    bar = tqdm(total=total, desc="stage 2: full fine-tuning", unit="batch", disable=not progress)
    for epoch in range(1, config.epochs + 1):
        train_loss = _train_epoch(model, train, pad_id, stepper, config.batch_size, rng, bar)
        accuracy, val_loss = score(predict_logits(model, val.tokens, pad_id), val.targets)
        history.append(EpochLog("full", epoch, train_loss, accuracy, val_loss, time.monotonic() - started))
        bar.write(f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f}, val accuracy {accuracy:.4f}")
        if stopping.update(model, epoch, accuracy, val_loss):
            break
    bar.close()
    stopped = len(history) < config.epochs
    if warmed is not None and warmed[0] > stopping.best[0]:
        logger.info(
            "no full epoch beat the warmed-up head (best full epoch %.4f, warmed-up head %.4f on validation): "
            "keeping the warmed-up weights",
            stopping.best[0],
            warmed[0],
        )
        model.load_state_dict(warmed[1])
        return history, 0, stopped
    if stopping.state is not None:
        model.load_state_dict(stopping.state)
    return history, stopping.epoch, stopped


# ---------------------------------------------------------------- orchestration


def _check_teacher(logits: np.ndarray, texts: int, labels: int) -> None:
    if logits.shape != (texts, labels):
        raise DataError(f"teacher logits must have shape ({texts}, {labels}) (texts, labels); got {logits.shape}")
    if not np.isfinite(logits).all():
        raise DataError("teacher logits contain NaN or infinite values")


def _encode(tokenizer: object, texts: Sequence[str], labels: Sequence[str], index: dict[str, int], n: int) -> _Encoded:
    return _Encoded(tokenize(tokenizer, texts, n), torch.tensor([index[x] for x in labels], dtype=torch.long))


def finetune(
    split: Split,
    encoder: str,
    config: FinetuneConfig,
    out_dir: Path,
    progress: bool = True,
    teacher_logits: np.ndarray | None = None,
) -> FinetuneResult:
    """Fine-tune ``encoder`` (a base name or folder) on ``split`` and save the classifier in ``out_dir``.

    ``teacher_logits`` (one row per training text, columns in ``split.labels`` order) turn on distillation.
    """
    if teacher_logits is not None:
        _check_teacher(teacher_logits, len(split.train), len(split.labels))
    started = time.monotonic()
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(encoder)
    pad_id = int(tokenizer.pad_token_id)  # type: ignore[attr-defined]
    spec = ClassifierSpec(split.labels, config.pooling, config.max_length, encoder, config.dropout)
    base = load_encoder(encoder)
    check_max_length(base, config.max_length, "finetune", encoder)
    model = SequenceClassifier(keep_bottom_layers(base, config.layers) if config.layers else base, spec)
    index = {label: i for i, label in enumerate(split.labels)}
    train = _encode(tokenizer, split.train.texts, split.train.labels, index, config.max_length)
    if teacher_logits is not None:
        train.teacher = torch.as_tensor(teacher_logits, dtype=torch.float32)
    val = _encode(tokenizer, split.validation.texts, split.validation.labels, index, config.max_length)
    for param in model.encoder.parameters():
        param.requires_grad_(False)
    history = warm_up_head(model, train, val, pad_id, config, progress)
    for param in model.encoder.parameters():
        param.requires_grad_(True)
    start = history[-1] if history else None
    full_history, best_epoch, stopped = train_full(model, train, val, pad_id, config, progress, start)
    accuracy, _ = score(predict_logits(model, val.tokens, pad_id), val.targets)
    model.save(out_dir, tokenizer)
    seconds = time.monotonic() - started
    return FinetuneResult(out_dir, split.labels, accuracy, best_epoch, stopped, seconds, history + full_history)
