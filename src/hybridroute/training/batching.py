"""Tokenizing once, length-bucketed batches and dynamic padding.

Customer messages vary from 3 to 100 tokens; padding each batch only to its
own longest text, with batches drawn from texts of similar length, cuts
training time roughly in half against random batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def tokenize(tokenizer: object, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, with special tokens, truncated at ``max_length``."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)  # type: ignore[operator]
    return [list(ids) for ids in encoded["input_ids"]]


def bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator, window: int = 50
) -> list[list[int]]:
    """Shuffle, sort by length inside windows of ``window`` batches, cut into batches, shuffle batches.

    Example: lengths [3, 9, 4, 8], batch_size 2 -> batches like [[1, 3], [0, 2]] (similar lengths together)
    """
    order = rng.permutation(len(lengths))
    span = batch_size * window
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span].tolist(), key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sequential_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of similar length in a fixed order, for evaluation.

    Example: lengths [3, 9, 4, 8], batch_size 2 -> [[0, 2], [3, 1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest list: (input_ids, attention_mask) as int64 tensors."""
    width = max(len(ids) for ids in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return ids, mask
