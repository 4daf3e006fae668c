"""From a fine-tuned classifier to verified ONNX bundles.

``export_bundle``: export -> parity check -> temperature -> FP32 bundle (the
cloud tier ships this way). ``compress_run``: the FP32 bundle, then INT8
quantization -> accuracy gate -> edge bundle. Bundles are written to staging
folders and renamed into place only when every gate passed, ``RUN/onnx_fp32``
and ``RUN/edge`` together (see :func:`hybridroute.runs.install_folders`), so a
failed run leaves the run folder as it was: no half-written bundle, the older
one keeps serving, and the FP32 bundle stays the reference of the edge bundle.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
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
from hybridroute.data import LabelledTexts, Split, some_labels
from hybridroute.errors import ArtifactError
from hybridroute.runs import RunLayout, install_folders, staging_folder, step_command
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


def _export_into(
    layout: RunLayout,
    classifier_dir: Path,
    staging: Path,
    validation: LabelledTexts,
    config: CompressConfig,
    kind: str,
) -> ExportReport:
    """Export a fine-tuned classifier into the empty folder ``staging`` and check it against PyTorch."""
    from hybridroute.training.models import load_classifier

    model, tokenizer = load_classifier(classifier_dir, eager=True)
    labels, max_length = model.spec.labels, model.spec.max_length
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
    return ExportReport(staging, labels, max_length, size_mb, accuracy, report, temperature)


def export_bundle(
    layout: RunLayout,
    classifier_dir: Path,
    bundle_dir: Path,
    validation: LabelledTexts,
    config: CompressConfig,
    kind: str,
) -> ExportReport:
    """Export a fine-tuned classifier to an FP32 ONNX bundle after a parity check against PyTorch."""
    layout.require(classifier_dir, "finetune")  # before any folder is made
    with staging_folder(bundle_dir) as staging:
        report = _export_into(layout, classifier_dir, staging, validation, config, kind)
        install_folders((staging, bundle_dir))
    return dataclasses.replace(report, bundle_dir=bundle_dir)


def _quantize(fp32: ExportReport, target: Path, train_texts: tuple[str, ...], config: CompressConfig) -> dict[str, Any]:
    """INT8 from the FP32 bundle, smoothed first when configured; returns the manifest's settings."""
    source = fp32.bundle_dir / MODEL_NAME
    settings: dict[str, Any] = {"compress": to_jsonable(config)}
    with tempfile.TemporaryDirectory(prefix="hybridroute-smooth-") as scratch:
        if config.smoothing:
            from hybridroute.compression.smoothing import smooth_for_int8

            classifier = classifier_at(fp32.bundle_dir, fp32.labels, fp32.max_length)
            smoothed = Path(scratch) / MODEL_NAME
            settings["smoothing"] = smooth_for_int8(source, smoothed, classifier, train_texts, config.smoothing_texts)
            source = smoothed
        logger.info("compress: quantizing to INT8")
        settings["quantization"] = quantize_int8(source, target, config).to_dict()
    return settings


def check_classifier_labels(layout: RunLayout, split: Split) -> None:
    """Refuse a stored split whose labels differ from those ``RUN/classifier`` predicts (it came from other data)."""
    from hybridroute.training.models import read_classifier_spec

    trained = read_classifier_spec(layout.classifier).labels
    if sorted(map(str, trained)) != sorted(split.labels):
        raise ArtifactError(
            f"{layout.root}: the stored split has labels {some_labels(sorted(split.labels))}, the classifier predicts "
            f"{some_labels(sorted(map(str, trained)))}; fine-tune it on this split with "
            f"`{step_command('finetune', layout.root)}`"
        )


def compress_run(layout: RunLayout, split: Split, config: CompressConfig) -> CompressReport:
    """Build ``RUN/onnx_fp32`` and ``RUN/edge`` from ``RUN/classifier``, installing both only if every gate passes.

    The validation split scores the export and gates INT8; the training split calibrates smoothing.
    """
    started = time.monotonic()
    validation = split.validation
    layout.require(layout.classifier, "finetune")  # before any folder is made
    check_classifier_labels(layout, split)
    with staging_folder(layout.onnx_fp32) as fp32_staging, staging_folder(layout.edge) as staging:
        fp32 = _export_into(layout, layout.classifier, fp32_staging, validation, config, "onnx_fp32")
        settings = _quantize(fp32, staging / MODEL_NAME, split.train.texts, config)
        shutil.copy(fp32_staging / TOKENIZER_NAME, staging / TOKENIZER_NAME)
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
                settings=settings,
            ),
        )
        install_folders((fp32_staging, layout.onnx_fp32), (staging, layout.edge))  # the edge bundle last
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
