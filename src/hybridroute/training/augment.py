"""Perturbed copies of the training texts for distillation (the teacher labels them).

A small student trained on the teacher's distribution over the training texts alone sees only those points
of the teacher's function. Perturbed copies (words dropped, neighbours swapped) show it more of that function
around each text (TinyBERT's and EDA's data augmentation, without word vectors). The teacher scores every copy,
so a perturbation that changes a text's meaning also changes its soft target; the copies keep the original
label for the cross-entropy part of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hybridroute.data import LabelledTexts, Split
from hybridroute.errors import ConfigError


@dataclass(frozen=True)
class Perturbation:
    """How a copy differs from its text: each word dropped with ``drop``, then ``swaps`` adjacent pairs swapped."""

    drop: float = 0.1
    swaps: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop < 1.0:
            raise ConfigError(f"drop must be in [0, 1); got {self.drop}")
        if self.swaps < 0:
            raise ConfigError(f"swaps must be 0 or more; got {self.swaps}")

    def apply(self, text: str, rng: np.random.Generator) -> str:
        """One perturbed copy of ``text`` (never empty: a text whose every word was dropped keeps one)."""
        words = text.split()
        if len(words) < 2:
            return text
        kept = [word for word, draw in zip(words, rng.random(len(words)), strict=True) if draw >= self.drop]
        if not kept:
            kept = [words[int(rng.integers(len(words)))]]
        for _ in range(self.swaps if len(kept) > 1 else 0):
            i = int(rng.integers(len(kept) - 1))
            kept[i], kept[i + 1] = kept[i + 1], kept[i]
        return " ".join(kept)


def perturbed_copies(
    data: LabelledTexts, copies: int, seed: int, perturbation: Perturbation | None = None
) -> LabelledTexts:
    """``copies`` perturbed copies of every text, in order (copy 1 of all texts, then copy 2, ...), labels kept."""
    if copies < 0:
        raise ConfigError(f"copies must be 0 or more; got {copies}")
    perturbation = perturbation or Perturbation()
    rng = np.random.default_rng(seed)
    texts = tuple(perturbation.apply(text, rng) for _ in range(copies) for text in data.texts)
    return LabelledTexts(texts, data.labels * copies, source=data.source, checksum=data.checksum)


def with_training_texts(split: Split, extra: LabelledTexts) -> Split:
    """``split`` with ``extra`` appended to its training texts (validation untouched)."""
    train = LabelledTexts(
        split.train.texts + extra.texts,
        split.train.labels + extra.labels,
        source=split.train.source,
        checksum=split.train.checksum,
    )
    return replace(split, train=train)
