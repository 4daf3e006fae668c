"""The accuracy gate over compression variants: build each, keep the smallest (or fastest) within the allowed loss.

Each candidate is built from ``RUN/onnx_fp32`` and scored on the validation split against
the FP32 bundle. Among the candidates whose accuracy drop is within ``max_drop``, the
smallest model file (``prefer="size"``) or the lowest single-query p95 on validation texts
(``prefer="speed"``) becomes ``RUN/edge`` (staged, then renamed into place); its manifest
records the recipe and the whole candidates table. When none qualifies, the old edge
bundle stays untouched.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.calibration import fit_temperature
from hybridroute.compression.variants import Variant, build_variant
from hybridroute.data import LabelledTexts
from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.metrics import percentiles, time_each
from hybridroute.runs import RunLayout, install_folders, staging_folder
from hybridroute.runtime.bundle import MODEL_NAME, load_manifest, write_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.runtime.fastpath import FastClassifier

logger = logging.getLogger(__name__)

DEFAULT_MAX_DROP = 0.005  # half a point of validation accuracy: ~99.5% retention at 90%+ accuracy
PREFERENCES = ("size", "speed")
LATENCY_QUERIES = 200  # single queries timed per qualifying candidate when speed is preferred
LATENCY_WARMUP = 20


@dataclass(frozen=True)
class Candidate:
    """One built variant and how it scored."""

    variant: Variant
    bundle_dir: Path
    size_mb: float
    accuracy: float
    drop: float  # FP32 accuracy minus this accuracy (absolute)
    qualifies: bool
    p95_ms: float | None = None  # single-query p95 on validation texts, measured when speed is preferred

    def to_dict(self) -> dict[str, Any]:
        """One row of the candidates table."""
        return {
            "name": self.variant.name,
            "size_mb": round(self.size_mb, 4),
            "accuracy": self.accuracy,
            "drop": self.drop,
            "qualifies": self.qualifies,
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 3),
        }


# ---------------------------------------------------------------- pure helpers


def within_drop(reference: float, candidate: float, max_drop: float) -> bool:
    """True when ``candidate`` loses at most ``max_drop`` against ``reference`` (NaN never qualifies).

    Example: within_drop(0.90, 0.896, 0.005) -> True; within_drop(0.90, 0.89, 0.005) -> False
    """
    return bool(reference - candidate <= max_drop + 1e-12)


def smallest_qualifying(candidates: Sequence[Candidate]) -> Candidate | None:
    """The qualifying candidate with the smallest model file; ties go to the earlier one.

    Example: sizes (5, q), (3, not q), (4, q) -> the 4 MB one
    """
    qualifying = [c for c in candidates if c.qualifies]
    return min(qualifying, key=lambda c: c.size_mb) if qualifying else None


def fastest_qualifying(candidates: Sequence[Candidate]) -> Candidate | None:
    """The qualifying candidate with the lowest single-query p95; ties go to the smaller model.

    Example: (p95 3.0, 20 MB, q), (2.0, 17 MB, not q), (2.5, 19 MB, q) -> the 2.5 ms one
    """
    timed = [c for c in candidates if c.qualifies and c.p95_ms is not None]
    return min(timed, key=lambda c: (c.p95_ms, c.size_mb)) if timed else None


def check_preference(prefer: str) -> str:
    """``prefer`` when it is one of :data:`PREFERENCES`."""
    if prefer not in PREFERENCES:
        raise ConfigError(f"prefer must be one of {PREFERENCES}, got {prefer!r}")
    return prefer


# ---------------------------------------------------------------- measuring


def single_query_p95(bundle_dir: Path, texts: Sequence[str], queries: int = LATENCY_QUERIES) -> float:
    """p95 milliseconds of one text at a time through the single-query fast path (one thread)."""
    classifier = FastClassifier.from_dir(bundle_dir)
    sample = [texts[i % len(texts)] for i in range(LATENCY_WARMUP + queries)]
    time_each(classifier.predict_one, sample[:LATENCY_WARMUP])
    return percentiles(time_each(classifier.predict_one, sample[LATENCY_WARMUP:]))["p95"]


def validation_logits(bundle_dir: Path, data: LabelledTexts) -> tuple[float, np.ndarray, tuple[str, ...]]:
    """Accuracy, logits and label order of a bundle on labelled texts (one thread, batches of 64)."""
    classifier = EdgeClassifier.from_dir(bundle_dir, threads=1)
    logits = classifier.logits(data.texts, batch_size=64)
    predicted = np.asarray(classifier.labels)[logits.argmax(axis=1)]
    return float((predicted == np.asarray(data.labels)).mean()), logits, classifier.labels


def build_candidates(
    layout: RunLayout,
    variants: Sequence[Variant],
    validation: LabelledTexts,
    reference: float,
    max_drop: float,
    work_dir: Path,
    progress: Callable[[str], None] = logger.info,
    timed: bool = False,
) -> list[Candidate]:
    """Build and score every variant under ``work_dir``; ``timed``: also time the qualifying ones."""
    candidates = []
    for number, variant in enumerate(variants, start=1):
        progress(f"[{number}/{len(variants)}] building {variant.name}")
        bundle = build_variant(layout, variant, work_dir / variant.name)
        accuracy, _, _ = validation_logits(bundle, validation)
        size_mb = (bundle / MODEL_NAME).stat().st_size / 1e6
        qualifies = within_drop(reference, accuracy, max_drop)
        p95 = single_query_p95(bundle, validation.texts) if timed and qualifies else None
        candidate = Candidate(variant, bundle, size_mb, accuracy, reference - accuracy, qualifies, p95)
        progress(
            f"  {variant.name}: {size_mb:.2f} MB, accuracy {accuracy:.4f} (drop {100 * candidate.drop:+.2f} "
            f"points){'' if p95 is None else f', single-query p95 {p95:.2f} ms'} {'ok' if qualifies else 'REJECTED'}"
        )
        candidates.append(candidate)
    return candidates


# ---------------------------------------------------------------- installing


def _install(layout: RunLayout, chosen: Candidate, validation: LabelledTexts, record: dict[str, Any]) -> Path:
    """Copy the chosen bundle to RUN/edge via a staging folder, refitting temperature on validation."""
    with staging_folder(layout.edge) as staging:
        shutil.copytree(chosen.bundle_dir, staging, dirs_exist_ok=True)
        _, logits, labels = validation_logits(staging, validation)
        temperature = fit_temperature(logits, [labels.index(y) for y in validation.labels])
        manifest = load_manifest(staging)
        settings = manifest.settings | {"selection": record}
        metrics = manifest.metrics | {
            "val_accuracy": chosen.accuracy,
            "val_accuracy_fp32": record["fp32_accuracy"],
            "size_mb": chosen.size_mb,
        }
        write_manifest(staging, manifest.with_updates(settings=settings, metrics=metrics, temperature=temperature))
        install_folders((staging, layout.edge))
    return layout.edge


def select_variant(
    layout: RunLayout,
    variants: Sequence[Variant],
    validation: LabelledTexts,
    max_drop: float = DEFAULT_MAX_DROP,
    work_dir: Path | None = None,
    progress: Callable[[str], None] = logger.info,
    prefer: str = "size",
) -> tuple[Candidate, list[dict[str, Any]]]:
    """Build every variant, install the smallest (or fastest) within ``max_drop`` of FP32 as ``RUN/edge``.

    Args:
        layout: the run; ``RUN/onnx_fp32`` must exist.
        variants: the recipes to try.
        validation: labelled texts for the gate (the run's validation split).
        max_drop: largest allowed absolute accuracy loss against ONNX FP32 (0.005 = half a point).
        work_dir: where candidates are built (default ``RUN/variants``); kept for benchmarks.
        progress: receives one line per step.
        prefer: "size" installs the smallest model file; "speed" the lowest single-query p95
            (one thread, :data:`LATENCY_QUERIES` validation texts, timed for qualifying candidates only).

    Returns:
        The chosen candidate and the candidates table (one dict per variant).

    Raises:
        ArtifactError: no variant qualifies; ``RUN/edge`` is left as it was.
    """
    if not variants:
        raise ArtifactError("no compression variants to choose from")
    check_preference(prefer)
    work_dir = Path(work_dir) if work_dir else layout.root / "variants"
    reference, _, _ = validation_logits(layout.require(layout.onnx_fp32, "compress"), validation)
    progress(f"ONNX FP32 validation accuracy {reference:.4f} on {len(validation)} texts; allowed drop {max_drop}")
    timed = prefer == "speed"
    candidates = build_candidates(layout, variants, validation, reference, max_drop, work_dir, progress, timed)
    table = [c.to_dict() for c in candidates]
    chosen = fastest_qualifying(candidates) if timed else smallest_qualifying(candidates)
    if chosen is None:
        best = max(candidates, key=lambda c: c.accuracy)
        raise ArtifactError(
            f"no compression variant is within {100 * max_drop:.2f} points of ONNX FP32 accuracy {reference:.4f} "
            f"(best: {best.variant.name} at {best.accuracy:.4f}); RUN/edge left unchanged. "
            "Allow a larger drop or add a less aggressive variant."
        )
    record = {
        "max_drop": max_drop,
        "prefer": prefer,
        "fp32_accuracy": reference,
        "validation_texts": len(validation),
        "chosen": chosen.variant.name,
        "candidates": table,
    }
    _install(layout, chosen, validation, record)
    latency = "" if chosen.p95_ms is None else f", single-query p95 {chosen.p95_ms:.2f} ms"
    progress(
        f"chose {chosen.variant.name} (by {prefer}): {chosen.size_mb:.2f} MB, accuracy {chosen.accuracy:.4f}{latency}"
    )
    return chosen, table


def auto_compress(
    layout: RunLayout,
    variant_names: Sequence[str] | None = None,
    max_drop: float = DEFAULT_MAX_DROP,
    progress: Callable[[str], None] = logger.info,
    prefer: str = "size",
) -> tuple[Candidate, list[dict[str, Any]]]:
    """``compress --auto``: the default (or named) variants against the run's stored validation split."""
    from hybridroute.compression.variants import variants_by_name
    from hybridroute.runs import load_saved_split

    variants = variants_by_name(list(variant_names) if variant_names else None, layout.students())
    validation = load_saved_split(layout).validation
    return select_variant(layout, variants, validation, max_drop, progress=progress, prefer=prefer)
