"""From a fine-tuned classifier to verified ONNX bundles.

``export_bundle``: export -> parity check -> temperature -> FP32 bundle (the
cloud tier ships this way). ``compress_run``: the FP32 bundle, then INT8
quantization -> accuracy gate -> edge bundle. Bundles are written to a staging
folder and renamed into place only when every gate passed, so a failed run
never leaves a half-written bundle and an older one keeps serving.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.calibration import fit_temperature
from hybridroute.compression.export import export_onnx
from hybridroute.compression.gates import ParityReport, check_accuracy_drop, check_parity, parity
from hybridroute.compression.quantization import quantize_int8
from hybridroute.config import CompressConfig, to_jsonable
from hybridroute.data import LabelledTexts
from hybridroute.runs import RunLayout
from hybridroute.runtime.bundle import MODEL_NAME, TOKENIZER_NAME, Manifest, write_manifest
from hybridroute.runtime.classifier import EdgeClassifier, open_session, open_tokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    """An exported FP32 bundle and what its checks measured."""

    bundle_dir: Path
    labels: tuple[str, ...]
    max_length: int
    size_mb: float
    accuracy: float
    parity: ParityReport
    temperature: float


@dataclass(frozen=True)
class CompressReport:
    """What compression produced and the numbers its gates checked."""

    edge_dir: Path
    fp32_mb: float
    int8_mb: float
    fp32_accuracy: float
    int8_accuracy: float
    parity: dict[str, Any]
    temperature: float
    seconds: float

    @property
    def size_reduction_pct(self) -> float:
        """How much smaller INT8 is than FP32, in percent."""
        return 100.0 * (1.0 - self.int8_mb / self.fp32_mb)


# ---------------------------------------------------------------- helpers


def classifier_at(bundle_dir: Path, labels: tuple[str, ...], max_length: int) -> EdgeClassifier:
    """An ONNX classifier over a folder that has model and tokenizer but maybe no manifest yet."""
    tokenizer, pad_id = open_tokenizer(bundle_dir / TOKENIZER_NAME, max_length)
    return EdgeClassifier(open_session(bundle_dir / MODEL_NAME), tokenizer, labels, max_length, pad_id=pad_id)


def _accuracy(classifier: EdgeClassifier, data: LabelledTexts) -> tuple[float, np.ndarray]:
    logits = classifier.logits(data.texts, batch_size=64)
    predicted = np.asarray(classifier.labels)[logits.argmax(axis=1)]
    return float((predicted == np.asarray(data.labels)).mean()), logits


def _torch_logits(model: Any, tokenizer: Any, texts: tuple[str, ...], max_length: int) -> np.ndarray:
    from hybridroute.training.batching import tokenize
    from hybridroute.training.finetune import predict_logits

    return predict_logits(model, tokenize(tokenizer, texts, max_length), int(tokenizer.pad_token_id)).numpy()


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _swap_in(staging: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _manifest(layout: RunLayout, labels: tuple[str, ...], max_length: int, kind: str, **extra: Any) -> Manifest:
    info = layout.read_info()
    base = info.get("cloud", {}).get("base_model", "") if kind == "cloud" else info.get("base_model", "")
    return Manifest(
        labels=labels,
        max_length=max_length,
        files={},
        kind=kind,
        base_model=str(base),
        data_checksum=str(info.get("data", {}).get("checksum", "")),
        **extra,
    )


def _temperature(logits: np.ndarray, labels: tuple[str, ...], data: LabelledTexts) -> float:
    return fit_temperature(logits, [labels.index(y) for y in data.labels])


# ---------------------------------------------------------------- steps


def export_bundle(
    layout: RunLayout,
    classifier_dir: Path,
    bundle_dir: Path,
    validation: LabelledTexts,
    config: CompressConfig,
    kind: str,
) -> ExportReport:
    """Export a fine-tuned classifier to an FP32 ONNX bundle after a parity check against PyTorch."""
    from hybridroute.training.models import load_classifier

    model, tokenizer = load_classifier(layout.require(classifier_dir, "finetune"), eager=True)
    labels, max_length = model.spec.labels, model.spec.max_length
    staging = _fresh(bundle_dir.with_name(f".{bundle_dir.name}-staging"))
    logger.info("export: %s -> ONNX", classifier_dir.name)
    export_onnx(model, staging / MODEL_NAME, config.opset)
    tokenizer.backend_tokenizer.save(str(staging / TOKENIZER_NAME))  # type: ignore[attr-defined]
    sample = validation.texts[: config.parity_samples]
    logger.info("export: parity check against PyTorch on %d validation texts", len(sample))
    onnx_model = classifier_at(staging, labels, max_length)
    report = parity(_torch_logits(model, tokenizer, sample, max_length), onnx_model.logits(sample))
    check_parity(report, config.min_parity_agreement, config.max_logit_diff)
    accuracy, logits = _accuracy(onnx_model, validation)
    temperature = _temperature(logits, labels, validation)
    size_mb = (staging / MODEL_NAME).stat().st_size / 1e6
    metrics = {"val_accuracy": accuracy, "parity": report.to_dict(), "size_mb": size_mb}
    write_manifest(
        staging,
        _manifest(
            layout,
            labels,
            max_length,
            kind,
            temperature=temperature,
            metrics=metrics,
            settings={"export": to_jsonable(config)},
        ),
    )
    _swap_in(staging, bundle_dir)
    return ExportReport(bundle_dir, labels, max_length, size_mb, accuracy, report, temperature)


def compress_run(layout: RunLayout, validation: LabelledTexts, config: CompressConfig) -> CompressReport:
    """Build ``RUN/onnx_fp32`` and, if every gate passes, ``RUN/edge`` from ``RUN/classifier``."""
    started = time.monotonic()
    fp32 = export_bundle(layout, layout.classifier, layout.onnx_fp32, validation, config, "onnx_fp32")
    logger.info("compress: quantizing to INT8")
    staging = _fresh(layout.root / ".edge-staging")
    settings = quantize_int8(fp32.bundle_dir / MODEL_NAME, staging / MODEL_NAME, config)
    shutil.copy(fp32.bundle_dir / TOKENIZER_NAME, staging / TOKENIZER_NAME)
    logger.info("compress: accuracy gate on %d validation texts", len(validation))
    int8_acc, int8_logits = _accuracy(classifier_at(staging, fp32.labels, fp32.max_length), validation)
    check_accuracy_drop(fp32.accuracy, int8_acc, config.max_accuracy_drop)
    int8_mb = (staging / MODEL_NAME).stat().st_size / 1e6
    metrics = {
        "val_accuracy_fp32": fp32.accuracy,
        "val_accuracy_int8": int8_acc,
        "parity": fp32.parity.to_dict(),
        "size_mb_fp32": fp32.size_mb,
        "size_mb_int8": int8_mb,
    }
    temperature = _temperature(int8_logits, fp32.labels, validation)
    write_manifest(
        staging,
        _manifest(
            layout,
            fp32.labels,
            fp32.max_length,
            "edge",
            temperature=temperature,
            metrics=metrics,
            settings={"compress": to_jsonable(config), "quantization": settings.to_dict()},
        ),
    )
    _swap_in(staging, layout.edge)
    return CompressReport(
        layout.edge,
        fp32.size_mb,
        int8_mb,
        fp32.accuracy,
        int8_acc,
        fp32.parity.to_dict(),
        temperature,
        time.monotonic() - started,
    )
