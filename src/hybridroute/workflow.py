"""The offline path of a model, step by step, into one run folder.

Each step reads what the previous one left in the run folder and records its
settings and results in ``run.json``. ``train_all`` runs them in order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.config import AdaptConfig, CompressConfig, DataConfig, FinetuneConfig, to_jsonable
from hybridroute.data import Split, load_split, load_texts, some_labels
from hybridroute.errors import ArtifactError, ConfigError, DataError
from hybridroute.runs import (
    RunLayout,
    install_folders,
    load_saved_split,
    rebuilding,
    save_split,
    staging_folder,
    step_command,
)

logger = logging.getLogger(__name__)

TEACHER_CHUNK = 512  # texts per progress step while a teacher scores the training set
# What `finetune` / `adapt` without --data need in a run folder that has no stored split (a new one).
FINETUNE_REMEDY = "give --data FILE (a new run folder has no stored split)"
ADAPT_REMEDY = "give --data FILE, or --corpus FILE to adapt on (a new run folder has no stored split)"


@dataclass(frozen=True)
class TrainPlan:
    """Everything ``train_all`` needs."""

    data: DataConfig
    adapt: AdaptConfig
    finetune: FinetuneConfig
    compress: CompressConfig
    corpus: Path | None = None  # unlabelled domain text; the training texts when None
    skip_adapt: bool = False
    corpus_text_col: str = "text"  # the column holding the text in a CSV/JSONL corpus


def prepare_data(layout: RunLayout, config: DataConfig) -> Split:
    """Load, validate and split the labelled data; store the split in the run folder."""
    layout.require_folder()
    split = load_split(config)
    save_split(layout, split)
    layout.update_info(
        data={
            "config": to_jsonable(config),
            "checksum": split.train.checksum,
            "labels": list(split.labels),
            "train": len(split.train),
            "validation": len(split.validation),
            "dropped_blank": split.train.dropped_blank,
        },
    )
    logger.info("data: %d train, %d validation, %d labels", len(split.train), len(split.validation), len(split.labels))
    return split


SPLIT_SETTINGS = ("text_col", "label_col", "val_fraction")  # DataConfig fields that shape the stored split


def reuse_or_prepare_data(layout: RunLayout, config: DataConfig, given: Sequence[str] = SPLIT_SETTINGS) -> Split:
    """Use the run's stored split when it came from the same file; split a new run afresh.

    A cloud tier trained on other data than the edge tier would make every comparison between them meaningless.
    The stored split's settings win: a setting among ``given`` (those the user asked for) that differs from the
    one the split was made with is refused rather than silently ignored.
    """
    from hybridroute.data import file_sha256

    data = layout.read_info().get("data", {})
    stored = data.get("checksum")
    if not stored:
        return prepare_data(layout, config)
    _refuse_other_split_settings(layout, config, data.get("config", {}), given)
    if not config.path.is_file():
        raise DataError(f"data file {config.path} does not exist (this run was trained on {stored[:12]}…)")
    if file_sha256(config.path) != stored:
        raise DataError(
            f"{config.path} differs from the data this run was trained on (checksum {stored[:12]}…); "
            "train the cloud tier on the same file, or use a new --out folder"
        )
    return load_saved_split(layout)


def _refuse_other_split_settings(
    layout: RunLayout, config: DataConfig, stored: dict[str, Any], given: Sequence[str]
) -> None:
    asked = to_jsonable(config)
    differ = [name for name in given if name in stored and asked[name] != stored[name]]
    if differ:
        got = ", ".join(f"--{n.replace('_', '-')} {asked[n]}" for n in differ)
        kept = ", ".join(f"{n} {stored[n]}" for n in differ)
        raise ConfigError(
            f"{got}: the stored split of {layout.root} was made with {kept}, and the cloud tier reuses it; "
            "drop the option, or use a new --out folder"
        )


def run_adapt(
    layout: RunLayout,
    config: AdaptConfig,
    corpus: Path | None = None,
    progress: bool = True,
    corpus_text_col: str = "text",
) -> Any:
    """Masked-LM adaptation on ``corpus`` (or the stored training texts) into ``RUN/adapted``.

    ``corpus_text_col`` names the column holding the text in a CSV or JSONL corpus (a .txt corpus has none).
    """
    from hybridroute.training.mlm import adapt

    layout.require_folder()
    texts = load_texts(corpus, corpus_text_col) if corpus else list(load_saved_split(layout, ADAPT_REMEDY).train.texts)
    with staging_folder(layout.adapted) as staging:  # a failed or killed adaptation keeps the previous encoder
        result = replace(adapt(texts, config, staging, progress), out_dir=layout.adapted)
        install_folders((staging, layout.adapted))
    source = {"corpus": str(corpus or "training texts")}
    if corpus and corpus.suffix.lower() != ".txt":
        source["corpus_text_col"] = corpus_text_col
    layout.update_info(
        base_model=config.base_model,
        adapt={"config": to_jsonable(config)} | source | _public(asdict(result)),
    )
    return result


def teacher_logits(teacher: Path, split: Split, progress: bool = True) -> np.ndarray:
    """A teacher bundle's logits on the training texts, columns in the split's label order."""
    from hybridroute.runtime import EdgeClassifier

    model = EdgeClassifier.from_dir(teacher)
    if sorted(model.labels) != sorted(split.labels):
        raise DataError(
            f"teacher {teacher} predicts {some_labels(sorted(model.labels))}, "
            f"the run has {some_labels(sorted(split.labels))}; "
            "distill from a model trained on the same labels"
        )
    from tqdm.auto import tqdm

    texts = list(split.train.texts)
    chunks = range(0, len(texts), TEACHER_CHUNK)
    parts = [
        model.logits(texts[i : i + TEACHER_CHUNK], batch_size=64)
        for i in tqdm(
            chunks, desc=f"teacher {teacher.name}: scoring training texts", unit="chunk", disable=not progress
        )
    ]
    logits = np.concatenate(parts) if parts else np.zeros((0, len(model.labels)), dtype=np.float32)
    return logits[:, [model.labels.index(label) for label in split.labels]]


def cached_teacher_logits(cache: Path, teacher: Path, split: Split, progress: bool = True) -> np.ndarray:
    """``teacher_logits``, kept in ``cache`` under a key of the teacher's model checksum, texts and labels.

    Scoring ten thousand texts with the cloud tier takes minutes on two cores; every later
    distillation from the same teacher on the same split reads them back instead.
    """
    import hashlib

    from hybridroute.runtime.bundle import MODEL_NAME, load_manifest

    key = hashlib.sha256(load_manifest(teacher).files[MODEL_NAME].encode())
    for part in (*split.labels, *split.train.texts):
        key.update(b"\x00" + part.encode())
    path = cache / f"teacher-{key.hexdigest()[:16]}.npy"
    if path.is_file():
        logger.info("teacher %s: reusing its logits from %s", teacher, path)
        return np.load(path)
    logits = teacher_logits(teacher, split, progress)
    cache.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp.npy")
    np.save(staging, logits)
    staging.replace(path)
    return logits


def _with_perturbed_copies(
    layout: RunLayout, split: Split, soft: np.ndarray, teacher: Path, config: FinetuneConfig, progress: bool
) -> tuple[Split, np.ndarray]:
    """``split`` and the teacher's logits, both extended by ``config.augment_copies`` perturbed copies of the texts."""
    if not config.augment_copies:
        return split, soft
    from hybridroute.training.augment import perturbed_copies, with_training_texts

    copies = perturbed_copies(split.train, config.augment_copies, config.seed)
    copies_soft = cached_teacher_logits(layout.cache, teacher, replace(split, train=copies), progress)
    logger.info("distilling on %d training texts and %d perturbed copies", len(split.train), len(copies))
    return with_training_texts(split, copies), np.concatenate([soft, copies_soft])


def run_finetune(
    layout: RunLayout,
    config: FinetuneConfig,
    encoder: str | None = None,
    progress: bool = True,
    teacher: Path | None = None,
) -> Any:
    """Two-stage fine-tuning of ``encoder`` (default: the adapted one, else the base) into ``RUN/classifier``.

    With ``teacher`` (a bundle folder such as ``RUN/cloud``) the student is distilled from it.
    """
    from hybridroute.training.finetune import finetune

    layout.require_folder()
    info = layout.read_info()
    encoder = encoder or (str(layout.adapted) if layout.adapted.exists() else str(info.get("base_model", "minilm")))
    split = load_saved_split(layout, FINETUNE_REMEDY)
    soft = None
    if teacher is not None:
        soft = cached_teacher_logits(layout.cache, teacher, split, progress)
        split, soft = _with_perturbed_copies(layout, split, soft, teacher, config, progress)
    elif config.augment_copies:
        raise ConfigError(
            f"augment_copies={config.augment_copies} needs a teacher (--teacher RUN/cloud): "
            "the teacher labels the perturbed copies"
        )
    with rebuilding(layout.classifier):  # a failed fine-tuning keeps the previous classifier
        result = finetune(split, encoder, config, layout.classifier, progress, soft)
    record = {
        "config": to_jsonable(config),
        "encoder": encoder,
        "teacher": str(teacher) if teacher else None,
        "training_texts": len(split.train),
    }
    layout.update_info(finetune=record | _public(asdict(result)))
    if "base_model" not in info:
        layout.update_info(base_model=encoder)
    return result


def shrink_defaults(layers: int) -> FinetuneConfig:
    """Distillation settings for a shallower student of a fine-tuned run.

    The student starts from the teacher's own fine-tuned lower layers, so it needs few epochs;
    the teacher's full distribution carries more than the labels, so it gets most of the loss.
    """
    return FinetuneConfig(head_epochs=5, epochs=4, learning_rate=1e-4, patience=2, distill_weight=0.7, layers=layers)


def run_shrink(
    layout: RunLayout,
    config: FinetuneConfig,
    teacher: Path | None = None,
    compress: CompressConfig | None = None,
    progress: bool = True,
) -> tuple[RunLayout, Any, Any]:
    """Distill ``RUN/classifier`` into a ``config.layers``-layer student at ``RUN/students/L<n>``.

    The student is a run folder of its own: the parent's split (copied), its classifier (the
    parent's first ``layers`` layers, trained against ``teacher``'s logits: the parent's FP32
    ONNX bundle by default, or e.g. ``RUN/cloud``), then the usual export, INT8 quantization and
    gates (``compress``, default ``CompressConfig()``). Compression variants with ``layers=n``
    build from it.
    """
    import shutil

    if config.layers < 1:
        raise ConfigError(f"shrink needs layers >= 1, got {config.layers}")
    teacher = teacher or layout.require(layout.onnx_fp32, "compress")
    parent = layout.require(layout.classifier, "finetune")
    split = load_saved_split(layout)  # the student's split: a copy of the parent's, made below
    soft = cached_teacher_logits(layout.cache, teacher, split, progress)  # a bad teacher fails before any deletion
    student = layout.student(config.layers)
    from hybridroute.training.finetune import finetune

    with rebuilding(student.root):  # a failed shrink keeps the previous student
        shutil.copytree(layout.require(layout.data_dir, "train"), student.data_dir)
        info = layout.read_info()
        student.update_info(data=info.get("data", {}), base_model=info.get("base_model", ""), parent=str(layout.root))
        result = finetune(split, str(parent / "encoder"), config, student.classifier, progress, soft)
        record = {"config": to_jsonable(config), "encoder": str(parent / "encoder"), "teacher": str(teacher)}
        student.update_info(finetune=record | _public(asdict(result)))
        report = run_compress(student, compress or CompressConfig())
    layout.merge_into_section(
        "students", **{f"L{config.layers}": {"val_accuracy": result.val_accuracy, "seconds": result.seconds}}
    )
    return student, result, report


def run_compress(layout: RunLayout, config: CompressConfig) -> Any:
    """Export, check, quantize and gate into ``RUN/edge``."""
    from hybridroute.compression.pipeline import compress_run

    report = compress_run(layout, load_saved_split(layout), config)
    layout.update_info(
        compress={"config": to_jsonable(config)}
        | _public(asdict(report))
        | {"size_reduction_pct": report.size_reduction_pct}
    )
    return report


def cloud_finetune_defaults() -> FinetuneConfig:
    """Fine-tuning settings for the 110M-parameter cloud encoder on a 2-core CPU.

    A larger model needs a smaller learning rate and fewer epochs; three epochs
    keep banking77 within the 90-minute budget on 2 cores.
    """
    return FinetuneConfig(head_epochs=3, epochs=3, learning_rate=4e-5, patience=2, batch_size=32, max_length=64)


def run_cloud(
    layout: RunLayout,
    config: FinetuneConfig,
    base_model: str = "mpnet",
    compress: CompressConfig | None = None,
    progress: bool = True,
) -> Any:
    """Fine-tune the cloud-tier encoder on the stored split and export ``RUN/cloud`` (FP32 ONNX)."""
    from hybridroute.compression.pipeline import export_bundle
    from hybridroute.training.finetune import finetune

    split = load_saved_split(layout)
    layout.update_info(cloud={"base_model": base_model, "config": to_jsonable(config)})
    result = finetune(split, base_model, config, layout.cloud_classifier, progress)
    report = export_bundle(
        layout, layout.cloud_classifier, layout.cloud, split.validation, compress or CompressConfig(), "cloud"
    )
    layout.update_info(
        cloud={"base_model": base_model, "config": to_jsonable(config)}
        | _public(asdict(result))
        | {"size_mb": report.size_mb, "onnx_val_accuracy": report.accuracy, "temperature": report.temperature}
    )
    return result


def train_all(layout: RunLayout, plan: TrainPlan, progress: bool = True) -> dict[str, Any]:
    """Data -> adaptation -> fine-tuning -> compression; returns the run record."""
    from hybridroute.training.models import resolve_base_model

    resolve_base_model(plan.adapt.base_model)  # a missing model is refused before the run folder is made
    prepare_data(layout, plan.data)
    if plan.skip_adapt:
        _train_without_adapting(layout, plan, progress)
    else:
        run_adapt(layout, plan.adapt, plan.corpus, progress, plan.corpus_text_col)
        run_finetune(layout, plan.finetune, None, progress)
        run_compress(layout, plan.compress)
    return layout.read_info()


def _train_without_adapting(layout: RunLayout, plan: TrainPlan, progress: bool) -> None:
    """Fine-tune and compress the base model itself; an earlier run's ``RUN/adapted`` and its record go.

    Left behind, the old adapted encoder would be what a later ``finetune`` without ``--encoder`` picks, and
    its ``adapt`` section would be reported as this run's adaptation. Both stay if this run fails.
    """
    with rebuilding(layout.adapted):  # builds nothing there: set aside now, dropped once the run is written
        layout.update_info(base_model=plan.adapt.base_model)
        run_finetune(layout, plan.finetune, plan.adapt.base_model, progress)
        run_compress(layout, plan.compress)
        layout.drop_sections("adapt")


def _public(values: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def check_split_labels(layout: RunLayout, split_labels: Sequence[str], edge_labels: Sequence[str]) -> None:
    """Refuse a stored split whose labels the edge bundle cannot predict (the bundle came from other data)."""
    unknown = sorted(set(split_labels) - set(edge_labels))
    if unknown:
        raise ArtifactError(
            f"{layout.root}: the stored split has labels the edge bundle {layout.edge} lacks: {some_labels(unknown)} "
            f"(the bundle predicts {some_labels(sorted(edge_labels))}); rebuild it from this run's classifier with "
            f"`hybridroute compress --run {layout.root}`, or retrain with `{step_command('train', layout.root)}`"
        )


def validation_outcomes(layout: RunLayout) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Validation split, the edge's calibrated probabilities on it, and the cloud's correctness (if a cloud exists)."""
    from hybridroute.hybrid import check_cloud_labels
    from hybridroute.runtime import EdgeClassifier

    validation = load_saved_split(layout).validation
    edge = EdgeClassifier.from_dir(layout.require(layout.edge, "train"))
    check_split_labels(layout, validation.labels, edge.labels)
    probabilities = edge.predict_proba(validation.texts, batch_size=64)
    cloud_correct = None
    if layout.cloud.is_dir():
        cloud = EdgeClassifier.from_dir(layout.cloud)
        check_cloud_labels(cloud.labels, edge.labels, layout.cloud, layout.edge)
        predicted = [p.label for p in cloud.predict(validation.texts, batch_size=64)]
        cloud_correct = np.array([p == y for p, y in zip(predicted, validation.labels, strict=True)])
    return validation, probabilities, cloud_correct


def run_calibrate(layout: RunLayout, policy: str, target: dict[str, float], seed: int = 0) -> Any:
    """Fit the router's threshold (and error model) on the validation split; save ``RUN/router.json``."""
    from hybridroute.routing.calibrate import calibrate_router
    from hybridroute.routing.router_config import save_router
    from hybridroute.runtime import read_manifest

    validation, probabilities, cloud_correct = validation_outcomes(layout)
    manifest = read_manifest(layout.edge)
    labels_idx = [manifest.labels.index(y) for y in validation.labels]  # validation_outcomes checked them
    router = calibrate_router(
        probabilities,
        labels_idx,
        manifest.labels,
        validation.texts,
        cloud_correct,
        policy,
        target,
        np.random.default_rng(seed),
        temperature=manifest.temperature,
    )
    router = replace(router, edge_model_version=manifest.model_version)
    save_router(layout.router, router)
    layout.update_info(router=router.to_dict())
    return router
