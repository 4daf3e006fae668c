"""The compression-variants benchmark: every recipe in one table, measured side by side in one run.

Rows: ONNX FP32 (the reference), plain dynamic INT8 (``compress --no-smoothing``; rebuilt here
so the comparison never depends on what ``RUN/edge`` currently holds) and each
:class:`~hybridroute.compression.variants.Variant`. Columns: size, test accuracy, retention
against ONNX FP32, accuracy on the rare-word subset (test texts that hold a word whose
wordpieces were pruned), single-query p50/p95 at 1 and 2 threads, throughput at batch 32.

Single-query latency is measured on two paths: the batch path every model had so far
(``EdgeClassifier.predict_proba([text])``) and the single-query path
(:class:`~hybridroute.runtime.fastpath.FastClassifier`). Repeats are interleaved across
models (repeat 1 of every model, then repeat 2, ...) so a noisy neighbour slows all rows
alike, and the median over repeats is reported.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.bench.compression import aggregate_repeats, cycled, single_query_quality
from hybridroute.bench.machine import machine_info, machine_summary
from hybridroute.config import CompressConfig, check_range
from hybridroute.data import LabelledTexts
from hybridroute.metrics import percentiles, time_each
from hybridroute.runs import RunLayout
from hybridroute.runtime.bundle import MODEL_NAME, TOKENIZER_NAME, load_manifest, write_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.runtime.fastpath import FastClassifier, SessionTuning

logger = logging.getLogger(__name__)

FP32 = "onnx_fp32"
BASELINE = "int8_dynamic"  # plain dynamic INT8 (quantization.quantize_int8), unsmoothed
THREADS = (1, 2)


@dataclass(frozen=True)
class VariantBenchConfig:
    """How hard to measure."""

    repeats: int = 3
    latency_queries: int = 200
    warmup: int = 20
    batch_size: int = 32
    throughput_texts: int = 1024
    throughput_threads: int = 2
    max_drop: float = 0.005  # a variant "qualifies" when its test accuracy is within this of ONNX FP32

    def __post_init__(self) -> None:
        check_range("repeats", self.repeats, 1, 100)
        check_range("latency_queries", self.latency_queries, 1, 1_000_000)
        check_range("warmup", self.warmup, 0, 100_000)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("throughput_texts", self.throughput_texts, 1, 1_000_000)
        check_range("throughput_threads", self.throughput_threads, 1, 1024)


# ---------------------------------------------------------------- pure helpers


def retention_pct(reference: float, accuracy: float) -> float | None:
    """Accuracy as a percentage of the reference; None for a zero reference.

    Example: retention_pct(0.90, 0.8955) -> 99.5
    """
    return 100.0 * accuracy / reference if reference > 0 else None


def subset_accuracy(predicted: Sequence[str], actual: Sequence[str], mask: Sequence[bool]) -> float | None:
    """Accuracy over the rows where ``mask`` is true; None when there are none.

    Example: subset_accuracy(["a", "b"], ["a", "a"], [True, False]) -> 1.0
    """
    rows = [p == a for p, a, m in zip(predicted, actual, mask, strict=True) if m]
    return float(np.mean(rows)) if rows else None


# ---------------------------------------------------------------- bundles


def build_baseline(layout: RunLayout, out_dir: Path) -> Path:
    """Plain dynamic INT8 (MatMul + Gather, per channel) from ONNX FP32, as ``compress --no-smoothing`` makes it."""
    from hybridroute.compression.quantization import quantize_int8

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    settings = quantize_int8(layout.onnx_fp32 / MODEL_NAME, out_dir / MODEL_NAME, CompressConfig())
    shutil.copy(layout.onnx_fp32 / TOKENIZER_NAME, out_dir / TOKENIZER_NAME)
    manifest = load_manifest(layout.onnx_fp32)
    write_manifest(out_dir, manifest.with_updates(kind="edge", settings={"quantization": settings.to_dict()}))
    return out_dir


def built_from_current_source(layout: RunLayout, variant: Any, folder: Path) -> bool:
    """True when ``folder`` holds ``variant`` built from the model its source run has now (not a retrained one's)."""
    from hybridroute.compression.variants import source_layout

    if not (folder / "manifest.json").is_file():
        return False
    settings = load_manifest(folder).settings
    source = load_manifest(source_layout(layout, variant).onnx_fp32).model_version
    return settings.get("recipe") == variant.to_dict() and settings.get("source", {}).get("onnx_fp32") == source


def build_bundles(layout: RunLayout, variants: Sequence[Any], work_dir: Path, rebuild: bool = False) -> dict[str, Path]:
    """The folders to measure: FP32, the baseline, then each variant (reused when built from the same model)."""
    from hybridroute.compression.variants import build_variant

    bundles = {FP32: layout.onnx_fp32, BASELINE: build_baseline(layout, work_dir / BASELINE)}
    for variant in variants:
        folder = work_dir / variant.name
        if rebuild or not built_from_current_source(layout, variant, folder):
            build_variant(layout, variant, folder)
        bundles[variant.name] = folder
    return bundles


def rare_word_mask(layout: RunLayout, bundles: dict[str, Path], texts: Sequence[str]) -> list[bool]:
    """Test texts whose tokenization changes under the (first) pruned vocabulary; all False without one."""
    from hybridroute.compression.vocab import pruned_words

    for folder in bundles.values():
        if load_manifest(folder).settings.get("steps", {}).get("vocabulary", {}).get("pruned"):
            return pruned_words(layout.onnx_fp32 / TOKENIZER_NAME, folder / TOKENIZER_NAME, texts)
    return [False] * len(texts)


# ---------------------------------------------------------------- measuring


def quality(folder: Path, test: LabelledTexts, rare: Sequence[bool], batch_size: int) -> dict[str, Any]:
    """Size, accuracy (batched and one text at a time) and rare-word accuracy of one bundle."""
    classifier = EdgeClassifier.from_dir(folder, threads=1)
    batched = classifier.logits(test.texts, batch_size=batch_size).argmax(axis=1)
    predicted = [classifier.labels[i] for i in batched]
    accuracy = float(np.mean([p == a for p, a in zip(predicted, test.labels, strict=True)]))
    return {
        "size_mb": (folder / MODEL_NAME).stat().st_size / 1e6,
        "accuracy": accuracy,
        "rare_word_accuracy": subset_accuracy(predicted, test.labels, rare),
        **single_query_quality(classifier.logits, test.texts, test.labels, classifier.labels, batched),
    }


def _predict_alone(classifier: EdgeClassifier, text: str) -> Any:
    """One text through the batch path, as a caller with a single query uses it."""
    return classifier.predict_proba([text])


def _single_query_paths(name: str, folder: Path) -> dict[str, Callable[[str], Any]]:
    """Timed callables per (path, threads): the batch path for the reference rows, the fast path for all."""
    paths: dict[str, Callable[[str], Any]] = {}
    for threads in THREADS:
        if name in (FP32, BASELINE):
            batch = EdgeClassifier.from_dir(folder, threads=threads)
            paths[f"batch_path_t{threads}"] = partial(_predict_alone, batch)
        fast = FastClassifier.from_dir(folder, SessionTuning(threads=threads))
        paths[f"fast_path_t{threads}"] = fast.predict_proba_one
    return paths


def latency(
    bundles: dict[str, Path], texts: Sequence[str], config: VariantBenchConfig, progress: Callable[[str], None]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and path: median over interleaved repeats of single-query p50/p95/p99/mean (ms)."""
    calls = {name: _single_query_paths(name, folder) for name, folder in bundles.items()}
    for paths in calls.values():
        for call in paths.values():
            time_each(call, cycled(texts, config.warmup))
    queries = cycled(texts, config.latency_queries, start=config.warmup)
    samples: dict[str, dict[str, list[dict[str, float]]]] = {n: {p: [] for p in c} for n, c in calls.items()}
    for number in range(1, config.repeats + 1):
        progress(f"latency repeat {number}/{config.repeats}: {len(calls)} models, {len(queries)} queries each")
        for name, paths in calls.items():
            for path, call in paths.items():
                samples[name][path].append(percentiles(time_each(call, queries)))
    return {n: {p: aggregate_repeats(r) for p, r in paths.items()} for n, paths in samples.items()}


def throughput(folder: Path, texts: Sequence[str], config: VariantBenchConfig) -> float:
    """Texts per second through the batch path, median over repeats after one untimed warm-up pass.

    A fresh session's first pass allocates its arenas and fills caches (as the latency warm-up does); timing it
    would put a cold pass among the repeats.
    """
    import time

    classifier = EdgeClassifier.from_dir(folder, threads=config.throughput_threads)
    texts = list(texts)[: config.throughput_texts]
    classifier.predict_proba(texts, batch_size=config.batch_size)  # warm-up, not timed
    rates = []
    for _ in range(config.repeats):
        started = time.perf_counter()
        classifier.predict_proba(texts, batch_size=config.batch_size)
        rates.append(len(texts) / (time.perf_counter() - started))
    return float(np.median(rates))


# ---------------------------------------------------------------- orchestration


def _recipe(folder: Path) -> dict[str, Any]:
    settings = load_manifest(folder).settings
    return settings.get("recipe") or {"quantization": settings.get("quantization", "fp32")}


def headline(models: dict[str, dict[str, Any]], max_drop: float) -> dict[str, Any]:
    """Smallest and fastest qualifying variant, and their ratios to FP32 and to plain dynamic INT8."""
    fp32, base = models[FP32], models[BASELINE]
    qualifying = {
        n: m
        for n, m in models.items()
        if n not in (FP32, BASELINE) and fp32["accuracy"] - m["accuracy"] <= max_drop + 1e-12
    }
    result: dict[str, Any] = {"qualifying": sorted(qualifying), "max_drop": max_drop}
    if not qualifying:
        return result
    smallest = min(qualifying, key=lambda n: qualifying[n]["size_mb"])
    fastest = min(qualifying, key=lambda n: qualifying[n]["latency_ms"]["fast_path_t1"]["p95"])
    base_p95 = base["latency_ms"]["batch_path_t1"]["p95"]
    base_fast_p95 = base["latency_ms"]["fast_path_t1"]["p95"]
    return result | {
        "smallest": smallest,
        "smallest_size_reduction_pct": 100.0 * (1 - qualifying[smallest]["size_mb"] / fp32["size_mb"]),
        "smallest_retention_pct": qualifying[smallest]["retention_pct"],
        "fastest": fastest,
        "fastest_p95_speedup_vs_int8_dynamic_t1": base_p95 / qualifying[fastest]["latency_ms"]["fast_path_t1"]["p95"],
        # the same model file through the same fast path: what the recipe alone gains
        "fastest_p95_speedup_vs_int8_dynamic_fast_path_t1": base_fast_p95
        / qualifying[fastest]["latency_ms"]["fast_path_t1"]["p95"],
        "smallest_p95_speedup_vs_int8_dynamic_t1": base_p95 / qualifying[smallest]["latency_ms"]["fast_path_t1"]["p95"],
    }


def bench_variants(
    layout: RunLayout,
    test: LabelledTexts,
    variants: Sequence[Any] | None = None,
    config: VariantBenchConfig | None = None,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """Build (or reuse) every variant under ``work_dir`` and measure all of them on ``test`` in one table.

    Args:
        layout: the run; ``RUN/onnx_fp32`` must exist.
        test: labelled test texts (never used to build anything).
        variants: recipes to measure; when None, those ``compress --auto`` tries (students' included).
        config: measurement settings.
        work_dir: where bundles are built (default ``RUN/variants``, shared with ``compress --auto``).
        progress: receives one line per stage.
    """
    from hybridroute.compression.variants import variants_by_name

    config = config or VariantBenchConfig()
    variants = tuple(variants) if variants is not None else variants_by_name(None, layout.students())
    work_dir = Path(work_dir) if work_dir else layout.root / "variants"
    progress(f"building {len(variants)} variants and the dynamic INT8 baseline under {work_dir}")
    bundles = build_bundles(layout, variants, work_dir)
    rare = rare_word_mask(layout, bundles, test.texts)
    progress(f"rare-word subset: {sum(rare)} of {len(test)} test texts hold a word whose wordpieces were pruned")
    models: dict[str, dict[str, Any]] = {}
    for name, folder in bundles.items():
        progress(f"accuracy and throughput: {name}")
        models[name] = quality(folder, test, rare, config.batch_size) | {"recipe": _recipe(folder)}
        models[name]["throughput_qps"] = throughput(folder, test.texts, config)
    for figures in models.values():
        figures["retention_pct"] = retention_pct(models[FP32]["accuracy"], figures["accuracy"])
        figures["rare_word_retention_pct"] = _maybe_retention(
            models[FP32]["rare_word_accuracy"], figures["rare_word_accuracy"]
        )
    for name, paths in latency(bundles, test.texts, config, progress).items():
        models[name]["latency_ms"] = paths
    return {
        "models": models,
        "headline": headline(models, config.max_drop),
        "test_rows": len(test),
        "rare_word_rows": int(sum(rare)),
        "settings": config.__dict__,
        "machine": machine_info(),
    }


def _maybe_retention(reference: float | None, value: float | None) -> float | None:
    return None if reference is None or value is None else retention_pct(reference, value)


# ---------------------------------------------------------------- reporting


def _cell(value: float | None, digits: int) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _latency_cells(latency_ms: dict[str, dict[str, float]], path: str) -> list[str]:
    return [_cell(latency_ms.get(f"{path}_t{t}", {}).get(q), 2) for t in THREADS for q in ("p50", "p95")]


def markdown_table(result: dict[str, Any]) -> str:
    """One row per model (fast single-query path), then the batch-path rows and the headline."""
    header = (
        "| Model | Size MB | Accuracy % | Single-query acc % | Batch-changed | Retention % | Rare-word acc % "
        "| p50 ms (1t) | p95 ms (1t) | p50 ms (2t) | p95 ms (2t) | Throughput q/s |"
    )
    lines = [header, "|" + "---|" * 12]
    for name, m in result["models"].items():
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    _cell(m["size_mb"], 2),
                    _cell(100 * m["accuracy"], 2),
                    _cell(100 * m["accuracy_single_query"], 2),
                    str(m["batch_label_changes"]),
                    _cell(m["retention_pct"], 2),
                    _cell(None if m["rare_word_accuracy"] is None else 100 * m["rare_word_accuracy"], 2),
                    *_latency_cells(m["latency_ms"], "fast_path"),
                    _cell(m["throughput_qps"], 0),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "Batch path (`EdgeClassifier.predict_proba([text])`, as served until now):",
        "",
        "| Model | p50 ms (1t) | p95 ms (1t) | p50 ms (2t) | p95 ms (2t) |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["models"].items():
        if "batch_path_t1" in m["latency_ms"]:
            lines.append("| " + " | ".join([name, *_latency_cells(m["latency_ms"], "batch_path")]) + " |")
    return "\n".join(lines + ["", *_footnotes(result)])


def _footnotes(result: dict[str, Any]) -> list[str]:
    h, s = result["headline"], result["settings"]
    notes = [
        f"- Qualifying (test accuracy within {100 * h['max_drop']:.2f} points of ONNX FP32): "
        f"{', '.join(h['qualifying']) or 'none'}"
    ]
    if "smallest" in h:
        notes += [
            f"- Smallest qualifying: {h['smallest']}, {_cell(h['smallest_size_reduction_pct'], 1)}% smaller than "
            f"ONNX FP32, retention {_cell(h['smallest_retention_pct'], 2)}%, single-query p95 "
            f"{_cell(h['smallest_p95_speedup_vs_int8_dynamic_t1'], 2)}× faster than plain dynamic INT8 (1 thread)",
            f"- Fastest qualifying: {h['fastest']}, p95 {_cell(h['fastest_p95_speedup_vs_int8_dynamic_t1'], 2)}× "
            "faster than plain dynamic INT8 on its batch path, "
            f"{_cell(h['fastest_p95_speedup_vs_int8_dynamic_fast_path_t1'], 2)}× on the same fast path (1 thread)",
        ]
    notes += [
        f"- Test rows: {result['test_rows']}; rare-word rows: {result['rare_word_rows']}; latency: tokenize + "
        f"infer + softmax, median over {s['repeats']} interleaved repeats of {s['latency_queries']} queries; "
        f"throughput at batch {s['batch_size']} with {s['throughput_threads']} threads, after an untimed pass",
        f"- Machine: {machine_summary(result.get('machine', {}))}",
    ]
    return notes


def run_variants_bench(
    run_dir: Path,
    test_file: Path,
    text_col: str = "text",
    label_col: str = "label",
    limit: int = 0,
    variant_names: Sequence[str] | None = None,
    config: VariantBenchConfig | None = None,
    progress: Callable[[str], None] = logger.info,
) -> dict[str, Any]:
    """``bench compression --variants``: load the test file, then :func:`bench_variants`."""
    from hybridroute.compression.variants import variants_by_name
    from hybridroute.config import DataConfig
    from hybridroute.data import check_known_labels, load_labelled

    layout = RunLayout.open(Path(run_dir))
    manifest = load_manifest(layout.require(layout.onnx_fp32, "compress"))
    test = load_labelled(DataConfig(Path(test_file), text_col=text_col, label_col=label_col))
    if limit:
        test = test.subset(range(min(limit, len(test))))
    check_known_labels(test, manifest.labels)
    variants = variants_by_name(list(variant_names) if variant_names else None, layout.students())
    return bench_variants(layout, test, variants, config, progress=progress)
