"""Compression recipes ("variants") and how to build each into an edge bundle.

A :class:`Variant` names one combination of the techniques below; :func:`build_variant`
applies them in a fixed order to ``RUN/onnx_fp32``, or to a shallower student's
(``RUN/students/L<n>/onnx_fp32``, made by ``hybridroute shrink``) when the recipe sets ``layers``:

1. vocabulary pruning to the wordpieces of the training texts (embedding rows + tokenizer), and
   position embeddings cut to the bundle's max length (lossless: the tokenizer truncates there);
2. ONNX Runtime's transformer fusions (attention, skip-layer-norm, bias-GELU);
3. activation smoothing (dynamic INT8 only; after the fusions, which a smoothing ``Mul`` would block);
4. encoder weights: dynamic INT8, static INT8 (calibrated), 4-bit blocks (MatMulNBits) or FP32;
5. word embeddings: INT8 per row, 4-bit blocks, or FP32.

Every bundle records its recipe in ``manifest.settings["recipe"]``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hybridroute.compression.blockwise import BlockSettings, quantize_blockwise, save
from hybridroute.compression.embeddings import (
    embedding_gather,
    quantize_word_embeddings_int8,
    trim_position_embeddings,
)
from hybridroute.compression.optimize import EncoderShape, encoder_shape, optimize_graph
from hybridroute.compression.static import StaticSettings, quantize_static_int8
from hybridroute.compression.vocab import prune_vocabulary, word_embedding_initializer
from hybridroute.config import CompressConfig
from hybridroute.errors import ConfigError
from hybridroute.runs import RunLayout, install_folders, load_saved_split, staging_folder
from hybridroute.runtime.bundle import MODEL_NAME, TOKENIZER_NAME, Manifest, load_manifest, write_manifest

logger = logging.getLogger(__name__)

WEIGHTS = ("fp32", "int8-dynamic", "int8-static", "int4-block")
EMBEDDINGS = ("fp32", "int8", "int4")


@dataclass(frozen=True)
class Variant:
    """One compression recipe."""

    name: str
    weights: str = "int8-dynamic"  # one of WEIGHTS
    embeddings: str = "int8"  # one of EMBEDDINGS
    vocab_pruning: bool = False
    min_count: int = 1  # keep a training wordpiece seen at least this often (1 = every one)
    keep_general: int = 0  # also keep the N commonest general wordpieces (rare-word robustness, N x hidden bytes)
    graph_optimization: bool = False
    block_size: int = 32  # 4-bit block size (weights and embeddings)
    accuracy_level: int = 4  # MatMulNBits compute type: 4 = INT8 (fastest on CPU), 0 = as the model
    calibration_texts: int = 256  # static INT8 only
    layers: int = 0  # build from the n-layer student of the run (``shrink --layers n``); 0 = the run itself
    smoothing: bool = False  # smooth activation outliers into the weights first, as ``compress`` does (dynamic INT8)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("variant name must be non-empty")
        if self.layers < 0:
            raise ConfigError(f"variant {self.name}: layers must be >= 0, got {self.layers}")
        if self.weights not in WEIGHTS:
            raise ConfigError(f"variant {self.name}: weights {self.weights!r} unknown; choose one of {WEIGHTS}")
        if self.embeddings not in EMBEDDINGS:
            raise ConfigError(
                f"variant {self.name}: embeddings {self.embeddings!r} unknown; choose one of {EMBEDDINGS}"
            )
        if self.keep_general < 0:
            raise ConfigError(f"variant {self.name}: keep_general must be >= 0, got {self.keep_general}")
        if self.min_count < 1:
            raise ConfigError(f"variant {self.name}: min_count must be >= 1, got {self.min_count}")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise ConfigError(f"variant {self.name}: block_size must be a power of two >= 16, got {self.block_size}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ConfigError(f"variant {self.name}: accuracy_level must be 0-4, got {self.accuracy_level}")
        if self.smoothing and self.weights != "int8-dynamic":
            raise ConfigError(
                f"variant {self.name}: smoothing applies to int8-dynamic weights only, got weights {self.weights!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the manifest's recipe)."""
        return asdict(self)

    @property
    def block(self) -> BlockSettings:
        """4-bit settings of this recipe."""
        return BlockSettings(block_size=self.block_size, accuracy_level=self.accuracy_level)


def default_variants() -> tuple[Variant, ...]:
    """The candidates ``compress --auto`` tries, from the plain INT8 recipe to the smallest."""
    return (
        Variant("int8-opt", "int8-dynamic", "int8", graph_optimization=True),
        Variant("smooth-int8-opt", "int8-dynamic", "int8", graph_optimization=True, smoothing=True),
        Variant("pruned-int8-opt", "int8-dynamic", "int8", vocab_pruning=True, graph_optimization=True),
        Variant(
            "smooth-pruned-int8-opt",
            "int8-dynamic",
            "int8",
            vocab_pruning=True,
            graph_optimization=True,
            smoothing=True,
        ),
        Variant("pruned-static-int8-opt", "int8-static", "int8", vocab_pruning=True, graph_optimization=True),
        Variant("pruned-int4-b32-opt", "int4-block", "int8", vocab_pruning=True, graph_optimization=True),
        Variant(
            "pruned-int4-b128-opt", "int4-block", "int8", vocab_pruning=True, graph_optimization=True, block_size=128
        ),
        Variant("pruned-int4-b32-int4emb-opt", "int4-block", "int4", vocab_pruning=True, graph_optimization=True),
        Variant(
            "pruned-int4-b128-int4emb-opt",
            "int4-block",
            "int4",
            vocab_pruning=True,
            graph_optimization=True,
            block_size=128,
        ),
        Variant(
            "pruned5k-int4-b32-opt",
            "int4-block",
            "int8",
            vocab_pruning=True,
            keep_general=5000,
            graph_optimization=True,
        ),
    )


def student_variants(layers: int) -> tuple[Variant, ...]:
    """The recipes tried on a ``layers``-layer student: INT8 with and without fusion or smoothing, pruned INT8, 4-bit.

    Unfused INT8 is there because dynamic INT8's fused attention is the slower of the two on
    some CPUs (an AMD EPYC: 4-layer student p95 3.97 fused against 3.70 ms unfused, one thread).
    Smoothed INT8 is ``compress``'s recipe. Pruned INT8 is fast and small; *pruned5k* keeps 5,000
    general wordpieces more for unseen words; 4-bit is the smallest.

    Example: student_variants(3) -> (L3-int8-opt, L3-int8, L3-smooth-int8-opt, L3-pruned-int8-opt,
    L3-pruned5k-int8-opt, L3-pruned-int4-b128-opt)
    """
    return (
        Variant(f"L{layers}-int8-opt", "int8-dynamic", "int8", graph_optimization=True, layers=layers),
        Variant(f"L{layers}-int8", "int8-dynamic", "int8", layers=layers),
        Variant(
            f"L{layers}-smooth-int8-opt", "int8-dynamic", "int8", graph_optimization=True, smoothing=True, layers=layers
        ),
        Variant(
            f"L{layers}-pruned-int8-opt",
            "int8-dynamic",
            "int8",
            vocab_pruning=True,
            graph_optimization=True,
            layers=layers,
        ),
        Variant(
            f"L{layers}-pruned5k-int8-opt",
            "int8-dynamic",
            "int8",
            vocab_pruning=True,
            keep_general=5000,
            graph_optimization=True,
            layers=layers,
        ),
        Variant(
            f"L{layers}-pruned-int4-b128-opt",
            "int4-block",
            "int8",
            vocab_pruning=True,
            graph_optimization=True,
            block_size=128,
            layers=layers,
        ),
    )


def variants_by_name(names: list[str] | None = None, students: Sequence[int] = ()) -> tuple[Variant, ...]:
    """Default variants plus those of the given students, optionally only those named (in the given order)."""
    known = {v.name: v for v in default_variants()} | {
        v.name: v for layers in students for v in student_variants(layers)
    }
    if not names:
        return tuple(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown variants {unknown}; known: {sorted(known)}")
    return tuple(known[n] for n in names)


# ---------------------------------------------------------------- steps


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def source_layout(layout: RunLayout, variant: Variant) -> RunLayout:
    """The run whose ONNX FP32 model ``variant`` starts from: the run itself or one of its students."""
    if not variant.layers:
        return layout
    student = layout.student(variant.layers)
    if not (student.onnx_fp32 / "manifest.json").is_file():
        raise ConfigError(
            f"variant {variant.name} needs the {variant.layers}-layer student {student.root}: "
            f"run `hybridroute shrink --run {layout.root} --layers {variant.layers}` first"
        )
    return student


def _prune(model: Any, layout: RunLayout, variant: Variant, work: Path) -> dict[str, Any]:
    if not variant.vocab_pruning:
        shutil.copy(layout.onnx_fp32 / TOKENIZER_NAME, work / TOKENIZER_NAME)
        rows = int(word_embedding_initializer(model).dims[0])
        return {"pruned": False, "kept": rows}
    train = load_saved_split(layout).train  # the training texts only: pruning must never see test data
    pruned = prune_vocabulary(
        model,
        layout.onnx_fp32 / TOKENIZER_NAME,
        work / TOKENIZER_NAME,
        train.texts,
        variant.min_count,
        variant.keep_general,
    )
    return {"pruned": True, **pruned.to_dict()}


def _optimize(source: Path, layout: RunLayout, variant: Variant, work: Path) -> tuple[Path, dict[str, int]]:
    if not variant.graph_optimization:
        return source, {}
    target = work / "optimized.onnx"
    config = layout.classifier / "encoder" / "config.json"
    # 0 heads / 0 width lets the optimizer read them off the graph when the PyTorch classifier is gone
    shape = encoder_shape(config) if config.is_file() else EncoderShape(0, 0)
    # Q, K and V stay separate MatMuls where the quantizer handles MatMul only (4-bit, static INT8);
    # dynamic INT8 quantizes the packed Attention op itself (QAttention).
    fused = optimize_graph(source, target, shape, separate_qkv=variant.weights in ("int4-block", "int8-static"))
    return target, fused


def _smooth(
    source: Path, layout: RunLayout, variant: Variant, work: Path, fp32: Manifest
) -> tuple[Path, dict[str, Any]]:
    if not variant.smoothing:
        return source, {}
    from hybridroute.compression.smoothing import smooth_for_int8
    from hybridroute.runtime.classifier import EdgeClassifier, open_session, open_tokenizer

    # this bundle's own (maybe pruned) tokenizer encodes the calibration texts for the graph as it now stands
    tokenizer, pad_id = open_tokenizer(work / TOKENIZER_NAME, fp32.max_length)
    classifier = EdgeClassifier(open_session(source), tokenizer, fp32.labels, fp32.max_length, pad_id=pad_id)
    target = work / "smoothed.onnx"
    texts = load_saved_split(layout).train.texts  # as many as compress calibrates on, from its config default
    return target, smooth_for_int8(source, target, classifier, texts, CompressConfig.smoothing_texts)


def _dynamic_int8(source: Path, target: Path) -> tuple[Any, dict[str, Any]]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "Attention"]  # the embedding Gather is handled by its own step
    # Fused contrib ops defeat ONNX shape inference; their outputs are float in every graph we build.
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=ops,
        extra_options={"DefaultTensorType": 1},
    )  # 1 = FLOAT
    return _load(target), {"method": "dynamic", "per_channel": True, "op_types": ops}


def _static_int8(
    source: Path, target: Path, variant: Variant, work: Path, layout: RunLayout, max_length: int
) -> tuple[Any, dict[str, Any]]:
    from hybridroute.runtime.classifier import open_tokenizer

    settings = StaticSettings(calibration_texts=variant.calibration_texts)
    # This bundle's (maybe pruned) tokenizer, set up as the runtime uses it: no padding (a saved tokenizer.json
    # may carry a fixed one, which would calibrate on [PAD] rows marked as real tokens), truncation at max_length.
    tokenizer, _ = open_tokenizer(work / TOKENIZER_NAME, max_length)
    texts = load_saved_split(layout).train.texts  # calibrate on training texts, never on test data
    quantize_static_int8(source, target, tokenizer, texts, max_length, settings)
    return _load(target), settings.to_dict()


def _quantize_weights(
    source: Path, variant: Variant, work: Path, layout: RunLayout, max_length: int
) -> tuple[Any, dict[str, Any]]:
    if variant.weights == "fp32":
        return _load(source), {}
    if variant.weights == "int4-block":
        return quantize_blockwise(_load(source), variant.block), variant.block.to_dict()
    if variant.weights == "int8-dynamic":
        return _dynamic_int8(source, work / "weights.onnx")
    return _static_int8(source, work / "weights.onnx", variant, work, layout, max_length)


def _quantize_embeddings(model: Any, variant: Variant) -> tuple[Any, dict[str, Any]]:
    if variant.embeddings == "int8":
        return model, quantize_word_embeddings_int8(model)
    if variant.embeddings == "int4":
        name = embedding_gather(model).name
        return quantize_blockwise(model, variant.block, ("Gather",), nodes=[name]), {"embeddings": "int4"}
    return model, {"embeddings": "fp32"}


def _write_bundle(model: Any, work: Path, out_dir: Path, manifest: Manifest) -> Path:
    with staging_folder(out_dir) as staging:
        save(model, staging / MODEL_NAME)
        shutil.copy(work / TOKENIZER_NAME, staging / TOKENIZER_NAME)
        size_mb = (staging / MODEL_NAME).stat().st_size / 1e6
        write_manifest(staging, manifest.with_updates(metrics={"size_mb": size_mb}))
        install_folders((staging, out_dir))
    return out_dir


# ---------------------------------------------------------------- orchestration


def build_variant(layout: RunLayout, variant: Variant, out_dir: Path) -> Path:
    """Build ``variant`` from ``RUN/onnx_fp32`` into the bundle folder ``out_dir``; return it.

    The bundle holds model.onnx, tokenizer.json and a manifest whose
    ``settings["recipe"]`` is the variant and ``settings["steps"]`` what each step did.
    Temperature and labels are those of the FP32 bundle (selection refits temperature).
    """
    layout = source_layout(layout, variant)
    fp32 = load_manifest(layout.require(layout.onnx_fp32, "compress"))
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix=f"variant-{variant.name}-") as scratch:
        work = Path(scratch)
        model = _load(layout.onnx_fp32 / MODEL_NAME)
        steps: dict[str, Any] = {
            "vocabulary": _prune(model, layout, variant, work),
            "positions": trim_position_embeddings(model, fp32.max_length),
        }
        save(model, work / "pruned.onnx")
        del model
        source, steps["fused"] = _optimize(work / "pruned.onnx", layout, variant, work)
        source, steps["smoothing"] = _smooth(source, layout, variant, work, fp32)
        model, steps["weights"] = _quantize_weights(source, variant, work, layout, fp32.max_length)
        model, steps["embeddings"] = _quantize_embeddings(model, variant)
        settings = {"recipe": variant.to_dict(), "steps": steps, "source": {"onnx_fp32": fp32.model_version}}
        manifest = fp32.with_updates(kind="edge", settings=settings, metrics={})
        _write_bundle(model, work, out_dir, manifest)
    logger.info("variant %s -> %s (%.2f MB)", variant.name, out_dir, (out_dir / MODEL_NAME).stat().st_size / 1e6)
    return out_dir
