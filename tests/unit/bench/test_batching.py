"""The batching bench's arithmetic with a model whose cost is known: per call, per computed token."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hybridroute.bench.batching import BatchingBenchConfig, calls, markdown_table, measure_batching, padding_pct
from hybridroute.errors import ConfigError


class CostedModel:
    """Charges ``per_call`` CPU seconds per call and ``per_token`` per computed (padded) token on a fake clock."""

    def __init__(self, per_call: float, per_token: float) -> None:
        self.per_call, self.per_token, self.now = per_call, per_token, 0.0

    def clock(self) -> float:
        return self.now

    def run(self, batch: list[Sequence[int]]) -> None:
        self.now += self.per_call + self.per_token * len(batch) * max(len(ids) for ids in batch)


def test_calls_cover_every_text_once_in_each_order() -> None:
    lengths = [7, 1, 5, 3, 2, 9, 4]
    for order in ("arrival", "by_length", "served"):
        groups = calls(lengths, order, 3, seed=1)
        assert sorted(i for g in groups for i in g) == list(range(7))
    assert [len(g) for g in calls(lengths, "arrival", 3, seed=1)] == [3, 3, 1]
    assert calls(lengths, "by_length", 3, seed=1) == [[1, 4, 3], [6, 2, 0], [5]]
    assert calls(lengths, "arrival", 7, seed=1) != calls(lengths, "arrival", 7, seed=2)


def test_the_served_order_splits_each_arrival_batch_as_the_edge_classifier_does() -> None:
    from hybridroute.runtime.classifier import length_groups

    lengths = [20, 2, 2, 21, 2, 22, 2, 20]
    for arrival in calls(lengths, "arrival", 4, seed=3):
        split = length_groups([lengths[i] for i in arrival], 4)
        assert [[arrival[i] for i in group] for group in split] == [
            g for g in calls(lengths, "served", 4, seed=3) if set(g) <= set(arrival)
        ]
    served = calls(lengths, "served", 8, seed=0)  # one batch of all eight: the short and the long apart
    assert sorted(sorted(lengths[i] for i in g) for g in served) == [[2, 2, 2, 2], [20, 20, 21, 22]]


def test_an_unknown_order_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown order 'random'; use one of arrival, by_length, served"):
        calls([1, 2], "random", 1, 0)


def test_padding_counts_the_tokens_computed_beyond_the_real_ones() -> None:
    assert padding_pct([4, 2], [[0, 1]]) == pytest.approx(100 * 2 / 6)
    assert padding_pct([4, 2], [[0], [1]]) == 0.0


def test_the_ceiling_is_the_single_text_cost_over_the_best_batched_cost() -> None:
    ids = [[1] * 10 for _ in range(64)]  # equal lengths: no padding in either order
    model = CostedModel(per_call=0.001, per_token=0.0001)  # one text: 1 + 1 ms; in calls of 8: 0.125 + 1 ms
    lines: list[str] = []
    found = measure_batching(ids, model.run, BatchingBenchConfig((8,), texts=64), lines.append, model.clock)
    rows = {(r["batch_size"], r["order"]): r["cpu_ms_per_text"] for r in found["rows"]}
    assert rows[(1, "arrival")] == pytest.approx(2.0)
    assert rows[(8, "arrival")] == pytest.approx(1.125) and rows[(8, "by_length")] == pytest.approx(1.125)
    assert rows[(8, "served")] == pytest.approx(1.125)  # equal lengths: one call per batch
    assert found["model_speedup_ceiling"] == pytest.approx(2.0 / 1.125)
    assert found["served_speedup"] == pytest.approx(2.0 / 1.125)
    assert len(lines) == 4 and lines[0].startswith("[1/4] batch 1 (arrival)")


def test_padding_makes_arrival_order_batches_dearer_than_one_text_at_a_time() -> None:
    ids = [[1] * (2 if i % 2 else 30) for i in range(64)]  # half short, half long
    model = CostedModel(per_call=0.0, per_token=0.0001)
    found = measure_batching(ids, model.run, BatchingBenchConfig((16,), texts=64), clock=model.clock)
    rows = {(r["batch_size"], r["order"]): r for r in found["rows"]}
    assert rows[(16, "arrival")]["cpu_ms_per_text"] > rows[(1, "arrival")]["cpu_ms_per_text"]
    assert rows[(16, "by_length")]["padding_pct"] == 0.0 and rows[(16, "arrival")]["padding_pct"] > 50
    assert found["best"]["order"] == "by_length"
    assert rows[(16, "served")]["padding_pct"] == 0.0  # each batch called as its short and its long texts
    assert rows[(16, "served")]["cpu_ms_per_text"] == pytest.approx(rows[(1, "arrival")]["cpu_ms_per_text"])
    assert "batching can add at most 1.00x" in markdown_table(found)
    assert "as served (arrival-order batches in calls of similar length): best " in markdown_table(found)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_sizes": ()}, "batch_sizes is empty"), ({"batch_sizes": (0,)}, "batch size"), ({"texts": 0}, "texts")],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BatchingBenchConfig(**kwargs)  # type: ignore[arg-type]


def test_one_text_at_a_time_is_always_the_reference() -> None:
    assert BatchingBenchConfig((32, 8)).sizes == (1, 8, 32)


def test_a_model_too_fast_for_the_clock_has_no_ceiling_rather_than_a_division_by_zero() -> None:
    model = CostedModel(per_call=0.0, per_token=0.0)
    found = measure_batching([[1, 2]] * 8, model.run, BatchingBenchConfig((4,), texts=8), clock=model.clock)
    assert found["model_speedup_ceiling"] is None and found["served_speedup"] is None
    assert "batching can add at most ? (too fast for the CPU clock)" in markdown_table(found)
    assert "(batch 4): ? (too fast for the CPU clock)" in markdown_table(found)
