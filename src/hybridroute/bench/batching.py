"""What micro-batching can buy in the model alone: CPU time per text at each batch size.

The edge service groups concurrent requests into one model call. How much that saves depends on the model and
the CPU, not on the service: a model that is compute-bound even for one short text gains little from larger
calls, and padding a batch to its longest text can cost more than grouping saves. ``run_batching_bench`` runs
the edge bundle on the same texts in calls of each batch size, twice: texts in arrival order (a batch padded
to its longest text) and sorted by length (little padding, what the service's length grouping approaches),
and reports the CPU time per text of each. The ratio of the single-text cost to the best batched cost bounds
what batching can add to throughput in the model; everything around the model (HTTP, audit, metrics) costs
the same per request either way. A third order, ``served``, is what the service itself runs: batches in
arrival order, each split into the edge classifier's own calls of similar length
(:func:`~hybridroute.runtime.classifier.length_groups`); its best ratio is what batching adds in the model
at a given batch size in practice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.config import check_range
from hybridroute.errors import ConfigError
from hybridroute.runtime.classifier import length_groups

ORDERS = ("arrival", "by_length", "served")
DEFINITIONS = {
    "cpu_ms_per_text": "process CPU time of the model calls (tokenized beforehand) divided by the texts answered",
    "padding_pct": "padded tokens the calls computed beyond the real ones, as a percentage of the real ones",
    "model_speedup_ceiling": "single-text CPU per text / the lowest batched CPU per text: the most batching can "
    "add to throughput in the model itself",
    "served_speedup": "single-text CPU per text / the lowest CPU per text of the served order (arrival-order "
    "batches split into calls of similar length, as the edge classifier runs them)",
}


@dataclass(frozen=True)
class BatchingBenchConfig:
    """What to measure.

    Attributes:
        batch_sizes: the call sizes to time; 1 is added when missing (it is the reference).
        texts: texts per measurement (the first ones of a seeded shuffle; fewer when fewer exist).
        threads: ONNX Runtime intra-op threads (1: one batch per core, as ``serve edge --threads 1``).
        seed: the shuffle that sets the arrival order.
    """

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    texts: int = 960
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.batch_sizes:
            raise ConfigError("batch_sizes is empty; give at least one size, e.g. 1,8,32")
        for size in self.batch_sizes:
            check_range("batch size", size, 1, 4096)
        check_range("texts", self.texts, 1, 1_000_000)
        check_range("threads", self.threads, 1, 256)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The batch sizes to time, 1 first."""
        return tuple(sorted({1, *self.batch_sizes}))


def calls(lengths: Sequence[int], order: str, size: int, seed: int) -> list[list[int]]:
    """Indices of the texts in each model call, in batches of ``size``.

    ``arrival``: a seeded arrival order; ``by_length``: sorted by length; ``served``: each arrival-order batch
    split into the length groups the edge classifier calls.

    Example: calls([5, 1, 3, 2], "by_length", 2, 0) -> [[1, 3], [2, 0]]
    """
    if order not in ORDERS:
        raise ConfigError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    arrival = [int(i) for i in np.random.default_rng(seed).permutation(len(lengths))]
    ordered = sorted(arrival, key=lambda i: lengths[i]) if order == "by_length" else arrival
    batches = [ordered[start : start + size] for start in range(0, len(ordered), size)]
    if order != "served":
        return batches
    return [
        [batch[i] for i in group] for batch in batches for group in length_groups([lengths[j] for j in batch], size)
    ]


def padding_pct(lengths: Sequence[int], groups: Sequence[Sequence[int]]) -> float:
    """Padded tokens beyond the real ones, as a percentage of the real ones.

    Example: padding_pct([4, 2], [[0, 1]]) -> 33.33 (8 computed for 6 real)
    """
    real = sum(lengths)
    padded = sum(len(group) * max(lengths[i] for i in group) for group in groups)
    return 100.0 * (padded - real) / real


def cpu_ms_per_text(
    run_call: Callable[[list[int]], Any],
    groups: Sequence[list[int]],
    warmup: int = 3,
    clock: Callable[[], float] = time.process_time,
) -> float:
    """CPU milliseconds (``clock``: process CPU seconds) per text over ``groups``, after ``warmup`` unmeasured calls."""
    for group in groups[:warmup]:
        run_call(group)
    started = clock()
    for group in groups:
        run_call(group)
    return 1000.0 * (clock() - started) / sum(len(g) for g in groups)


def measure_batching(
    ids: Sequence[Sequence[int]],
    run_ids: Callable[[list[Sequence[int]]], Any],
    config: BatchingBenchConfig,
    progress: Callable[[str], None] = lambda _line: None,
    clock: Callable[[], float] = time.process_time,
) -> dict[str, Any]:
    """CPU per text for each batch size and order, and the ceiling it implies (see the module docstring).

    Args:
        ids: token ids per text (already truncated).
        run_ids: runs the model once on a list of token-id lists (padding them itself).
        config: batch sizes and the arrival-order seed.
        progress: receives a status line after each measurement.
        clock: process CPU seconds.
    """
    lengths = [len(x) for x in ids]
    rows: list[dict[str, Any]] = []
    steps = [(size, order) for size in config.sizes for order in (ORDERS if size > 1 else ORDERS[:1])]
    for step, (size, order) in enumerate(steps, start=1):
        groups = calls(lengths, order, size, config.seed)
        cost = cpu_ms_per_text(lambda group: run_ids([ids[i] for i in group]), groups, clock=clock)
        rows.append(
            {"batch_size": size, "order": order, "cpu_ms_per_text": cost, "padding_pct": padding_pct(lengths, groups)}
        )
        progress(f"[{step}/{len(steps)}] batch {size} ({order}): {cost:.3f} ms CPU per text")
    single = rows[0]["cpu_ms_per_text"]
    best = min(rows[1:], key=lambda row: row["cpu_ms_per_text"], default=rows[0])
    served = min((r for r in rows[1:] if r["order"] == "served"), key=lambda r: r["cpu_ms_per_text"], default=rows[0])
    return {
        "rows": rows,
        "single_cpu_ms_per_text": single,
        "best": best,
        "model_speedup_ceiling": _ratio(single, best["cpu_ms_per_text"]),
        "served": served,
        "served_speedup": _ratio(single, served["cpu_ms_per_text"]),
        "texts": len(ids),
        "mean_tokens": float(np.mean(lengths)),
    }


def _ratio(single: float, batched: float) -> float | None:
    """The ratio single / batched; None when the batched cost read as 0 (too fast for the CPU clock)."""
    return single / batched if batched > 0 else None


def run_batching_bench(
    run: Path,
    texts: Sequence[str],
    source: str,
    config: BatchingBenchConfig,
    progress: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Measure the run's edge bundle on ``texts`` (see :func:`measure_batching`); the JSON-ready result."""
    from hybridroute.bench.machine import machine_info
    from hybridroute.runs import RunLayout
    from hybridroute.runtime.classifier import EdgeClassifier, pad_batch

    if not texts:
        raise ConfigError(f"no texts to measure in {source}")
    classifier = EdgeClassifier.from_dir(RunLayout.open(run).edge, threads=config.threads)
    shuffled = [texts[int(i)] for i in np.random.default_rng(config.seed).permutation(len(texts))]
    ids = classifier.token_ids(shuffled[: config.texts])

    def run_ids(batch: list[Sequence[int]]) -> Any:
        return classifier.run(*pad_batch(batch, classifier.pad_id))

    found = measure_batching(ids, run_ids, config, progress)
    settings = asdict(config) | {"run": str(run), "texts_source": source}
    return {
        "benchmark": "batching",
        "model_version": classifier.model_version,
        **found,
        "settings": settings,
        "machine": machine_info(),
        "definitions": DEFINITIONS,
    }


def markdown_table(result: dict[str, Any]) -> str:
    """One row per batch size and order, then the ceiling."""
    lines = ["| batch | order | CPU ms per text | padding % |", "|---:|---|---:|---:|"]
    for row in result["rows"]:
        lines.append(
            f"| {row['batch_size']} | {row['order']} | {row['cpu_ms_per_text']:.3f} | {row['padding_pct']:.1f} |"
        )
    best, ceiling = result["best"], result["model_speedup_ceiling"]
    served, served_speedup = result["served"], result["served_speedup"]
    lines += [
        "",
        f"- {result['texts']} texts, {result['mean_tokens']:.1f} tokens on average",
        f"- one text at a time {result['single_cpu_ms_per_text']:.3f} ms; best batched "
        f"{best['cpu_ms_per_text']:.3f} ms (batch {best['batch_size']}, {best['order']}): batching can add at most "
        + (f"{ceiling:.2f}x to throughput in the model" if ceiling else "? (too fast for the CPU clock)"),
        f"- as served (arrival-order batches in calls of similar length): best {served['cpu_ms_per_text']:.3f} ms "
        f"(batch {served['batch_size']}): "
        + (f"{served_speedup:.2f}x in the model" if served_speedup else "? (too fast for the CPU clock)"),
    ]
    return "\n".join(lines)
