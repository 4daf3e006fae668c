"""``bench compression --variants`` throughput: a fresh session's cold first pass is not among the timed ones."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from hybridroute.bench import variants
from hybridroute.bench.variants import VariantBenchConfig, throughput


class _ColdFirstPass:
    """A classifier on a fake clock: its first pass pays a cold start (1 s), later passes take 0.1 s."""

    def __init__(self) -> None:
        self.passes = 0
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def predict_proba(self, texts: Sequence[str], batch_size: int) -> None:
        self.passes += 1
        self.now += 1.0 if self.passes == 1 else 0.1


@pytest.mark.parametrize("repeats", [1, 2, 3])
def test_throughput_leaves_the_cold_first_pass_untimed(monkeypatch: pytest.MonkeyPatch, repeats: int) -> None:
    fake = _ColdFirstPass()
    monkeypatch.setattr(variants.EdgeClassifier, "from_dir", staticmethod(lambda folder, threads: fake))
    monkeypatch.setattr(time, "perf_counter", fake.clock)
    rate = throughput(Path("unused"), ["text"] * 100, VariantBenchConfig(repeats=repeats, throughput_texts=100))
    assert fake.passes == repeats + 1  # one warm-up pass, then the timed ones
    # the warm rate: 100 texts in 0.1 s (with the cold pass timed: 100 at repeats 1, 550 at repeats 2)
    assert rate == pytest.approx(1000.0)
