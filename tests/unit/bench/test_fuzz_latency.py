"""``bench fuzz`` latency figures: interpolated percentiles, as every other benchmark reports them."""

from __future__ import annotations

import numpy as np
import pytest

from hybridroute.bench.fuzz import Tally, milliseconds


@pytest.mark.parametrize("count", [1, 2, 7, 100, 1001])
def test_fuzz_percentiles_match_numpy_and_the_other_benchmarks(count: int) -> None:
    seconds = list(np.random.default_rng(count).exponential(0.01, size=count))
    found = Tally(seconds=seconds).to_dict()
    assert found["p50_ms"] == pytest.approx(1000.0 * np.percentile(seconds, 50))
    assert found["p99_ms"] == pytest.approx(1000.0 * np.percentile(seconds, 99))
    assert found["max_ms"] == pytest.approx(1000.0 * max(seconds))


def test_fuzz_percentiles_interpolate_between_the_middle_pair() -> None:
    found = Tally(seconds=[0.004, 0.001, 0.003, 0.002]).to_dict()
    assert found["p50_ms"] == pytest.approx(2.5)  # not the upper middle value (3.0)
    assert found["p99_ms"] == pytest.approx(3.97)  # not the largest value (4.0)


def test_an_endpoint_with_no_timings_has_no_latency() -> None:
    found = Tally().to_dict()
    assert found["p50_ms"] is None and found["p99_ms"] is None and found["max_ms"] is None
    assert milliseconds(None) is None and milliseconds(0.0125) == 12.5
