from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridroute.training.batching import bucketed_batches, pad, sequential_batches, tokenize


def _lengths(n: int = 503, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(3, 100, size=n).tolist()


@pytest.mark.parametrize(("n", "batch_size", "window"), [(503, 16, 50), (503, 16, 2), (7, 3, 50), (1, 4, 50)])
def test_bucketed_batches_cover_every_index_once(n: int, batch_size: int, window: int) -> None:
    batches = bucketed_batches(_lengths(n), batch_size, np.random.default_rng(1), window=window)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(n))
    assert all(1 <= len(batch) <= batch_size for batch in batches)


def test_bucketed_batches_group_similar_lengths() -> None:
    lengths = _lengths(1000)
    batches = bucketed_batches(lengths, 16, np.random.default_rng(2))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    rng = np.random.default_rng(3)
    random_batches = np.array_split(rng.permutation(1000), len(batches))
    random_spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in random_batches])
    assert spread < random_spread / 5


def test_bucketed_batches_sorted_within_one_window() -> None:
    lengths = [3, 9, 4, 8]
    batches = bucketed_batches(lengths, 2, np.random.default_rng(0))
    assert sorted(sorted(b) for b in batches) == [[0, 2], [1, 3]]


def test_bucketed_batches_deterministic_for_a_seed() -> None:
    lengths = _lengths()
    first = bucketed_batches(lengths, 8, np.random.default_rng(7))
    second = bucketed_batches(lengths, 8, np.random.default_rng(7))
    other = bucketed_batches(lengths, 8, np.random.default_rng(8))
    assert first == second
    assert first != other


def test_bucketed_batches_order_is_shuffled() -> None:
    lengths = list(range(200))
    batches = bucketed_batches(lengths, 10, np.random.default_rng(0))
    firsts = [min(lengths[i] for i in b) for b in batches]
    assert firsts != sorted(firsts)


def test_sequential_batches_docstring_example() -> None:
    assert sequential_batches([3, 9, 4, 8], 2) == [[0, 2], [3, 1]]


def test_sequential_batches_cover_and_order() -> None:
    lengths = _lengths(101)
    batches = sequential_batches(lengths, 10)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(101))
    assert [len(b) for b in batches] == [10] * 10 + [1]
    assert [lengths[i] for i in flat] == sorted(lengths)
    assert sequential_batches(lengths, 10) == batches


def test_sequential_batches_empty() -> None:
    assert sequential_batches([], 4) == []


def test_pad() -> None:
    ids, mask = pad([[5, 6, 7], [5], [1, 2]], pad_id=0)
    assert ids.dtype == torch.long
    assert mask.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [5, 0, 0], [1, 2, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_pad_uses_pad_id() -> None:
    ids, mask = pad([[4], [4, 4, 4]], pad_id=99)
    assert ids.tolist() == [[4, 99, 99], [4, 4, 4]]
    assert mask.sum().item() == 4


def test_tokenize_truncates_and_returns_lists() -> None:
    calls = []

    def fake_tokenizer(texts: list[str], truncation: bool, max_length: int) -> dict[str, list[list[int]]]:
        calls.append((texts, truncation, max_length))
        return {"input_ids": [list(range(min(len(t), max_length))) for t in texts]}

    result = tokenize(fake_tokenizer, ("abc", "abcdefgh"), max_length=5)
    assert result == [[0, 1, 2], [0, 1, 2, 3, 4]]
    assert calls == [(["abc", "abcdefgh"], True, 5)]
