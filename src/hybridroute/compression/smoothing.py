"""Activation smoothing before dynamic INT8 (SmoothQuant, Xiao et al. 2023), chosen per MatMul input.

Dynamic INT8 gives each MatMul input one scale per call, set by its largest value.
In a BERT encoder a few channels of the LayerNorm and GELU outputs run 10-30x
larger than the rest, so that one scale leaves the other channels a handful of
INT8 steps. Smoothing divides input channel ``j`` by ``s_j`` (a ``Mul`` node) and
multiplies row ``j`` of every weight it feeds by ``s_j``: the FP32 model computes
the same function, and the activation's range is flattened into the weights,
whose per-channel scales absorb it.

``s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)``, with ``alpha`` picked per
activation from a grid by the simulated INT8 error of the MatMul outputs on
calibration texts (the training split, never validation or test; see
:func:`calibration_feeds`). Not smoothing is one of the candidates, so no
activation is smoothed unless the simulation says its error drops.

Weights may sit in a ``MatMul`` or, in a fused graph, in the packed Q/K/V weight of an
``Attention`` node (``[hidden, 3 * hidden]``): smoothing the fused graph keeps the attention
fusion, which a ``Mul`` between the layer norm and the three MatMuls would break.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hybridroute.runtime.classifier import EdgeClassifier

logger = logging.getLogger(__name__)

ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
SCALE_LIMITS = (1e-2, 1e2)  # no channel is scaled by more than 100x either way
SMOOTH_SUFFIX = "_smoothed"
CALIBRATION_BATCH = 32  # the padded calls' size: the edge service's default micro-batch
WEIGHTED_OPS = ("MatMul", "Attention")  # input 0 the activation, input 1 a [in, out] weight


@dataclass
class ActivationSample:
    """One MatMul input seen on calibration texts: rows per text, and each channel's largest magnitude."""

    rows: list[np.ndarray] = field(default_factory=list)
    absmax: np.ndarray | None = None

    @property
    def kept_rows(self) -> int:
        """Rows kept for the simulation."""
        return sum(len(r) for r in self.rows)

    def add(self, values: np.ndarray, max_rows: int) -> None:
        """Record one text's activations (tokens x channels); rows beyond ``max_rows`` only update the maxima."""
        flat = values.reshape(-1, values.shape[-1]).astype(np.float32)
        channel_max = np.abs(flat).max(axis=0)
        self.absmax = channel_max if self.absmax is None else np.maximum(self.absmax, channel_max)
        if self.kept_rows + len(flat) <= max_rows:
            self.rows.append(flat)


@dataclass(frozen=True)
class SmoothingChoice:
    """What was chosen for one activation: ``alpha`` None means left as it was."""

    activation: str
    alpha: float | None
    error_plain: float  # simulated INT8 output error relative to the output's mean square
    error_chosen: float


@dataclass(frozen=True)
class SmoothingReport:
    """Recorded in the edge manifest."""

    calibration_calls: int  # model calls recorded: a lone text or a padded batch each
    choices: tuple[SmoothingChoice, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: how many inputs were smoothed, at which alphas, and the simulated error before and after."""
        smoothed = [c for c in self.choices if c.alpha is not None]
        return {
            "method": "smoothquant",
            "calibration_calls": self.calibration_calls,
            "activations": len(self.choices),
            "smoothed": len(smoothed),
            "alphas": {c.activation: c.alpha for c in smoothed},
            "median_relative_error_plain": _median([c.error_plain for c in self.choices]),
            "median_relative_error_smoothed": _median([c.error_chosen for c in self.choices]),
        }


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if values else None


# ---------------------------------------------------------------- simulated INT8


def fake_quantize_activation(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """ONNX Runtime's DynamicQuantizeLinear (uint8, one scale per call), one call per text.

    ``starts`` holds each text's first row in ``x``.
    """
    ends = np.append(starts[1:], len(x))
    high = np.maximum(np.maximum.reduceat(x.max(axis=1), starts), 0.0)
    low = np.minimum(np.minimum.reduceat(x.min(axis=1), starts), 0.0)
    scale = (high - low) / 255.0
    scale[scale == 0] = 1.0
    zero = np.round(-low / scale)
    per_row = np.repeat(np.arange(len(starts)), ends - starts)
    s, z = scale[per_row, None], zero[per_row, None]
    return (np.clip(np.round(x / s) + z, 0, 255) - z) * s


def fake_quantize_weight(w: np.ndarray) -> np.ndarray:
    """Symmetric INT8 with one scale per output column, as ``quantize_dynamic(per_channel=True)`` makes it."""
    scale = np.abs(w).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    return np.round(w / scale) * scale


def smoothing_scales(absmax: np.ndarray, weight: np.ndarray, alpha: float) -> np.ndarray:
    """Per input channel: ``max|X_j| ** alpha / max|W_j| ** (1 - alpha)``, clipped to SCALE_LIMITS."""
    weight_max = np.abs(weight).max(axis=1)
    scales = np.maximum(absmax, 1e-5) ** alpha / np.maximum(weight_max, 1e-5) ** (1.0 - alpha)
    return np.clip(scales, *SCALE_LIMITS).astype(np.float32)


def relative_error(
    x: np.ndarray, starts: np.ndarray, weight: np.ndarray, exact: np.ndarray, scales: np.ndarray | None
) -> float:
    """Mean squared error of the simulated INT8 product against ``exact`` (FP32), over its mean square."""
    if scales is not None:
        x, weight = x / scales, weight * scales[:, None]
    approx = fake_quantize_activation(x, starts) @ fake_quantize_weight(weight)
    return float(((approx - exact) ** 2).mean() / max(float((exact**2).mean()), 1e-12))


def choose(activation: str, sample: ActivationSample, weight: np.ndarray) -> tuple[SmoothingChoice, np.ndarray | None]:
    """The alpha (or none) with the smallest simulated error, and its scales."""
    assert sample.absmax is not None, "choose() needs at least one recorded text"
    x = np.concatenate(sample.rows)
    starts = np.cumsum([0] + [len(r) for r in sample.rows[:-1]])
    exact = x @ weight
    plain = relative_error(x, starts, weight, exact, None)
    best: tuple[float, float | None, np.ndarray | None] = (plain, None, None)
    for alpha in ALPHAS:
        scales = smoothing_scales(sample.absmax, weight, alpha)
        error = relative_error(x, starts, weight, exact, scales)
        if error < best[0]:
            best = (error, alpha, scales)
    return SmoothingChoice(activation, best[1], plain, best[0]), best[2]


# ---------------------------------------------------------------- the graph


def smoothable_inputs(model: Any) -> dict[str, list[Any]]:
    """Activation name -> the MatMul (or fused Attention) nodes that multiply it by a 2-D FP32 weight used once."""
    from onnx import TensorProto

    weights = {i.name: i for i in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    groups: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS or node.input[1] not in weights:
            continue
        weight = weights[node.input[1]]
        if len(weight.dims) == 2 and weight.data_type == TensorProto.FLOAT and uses[node.input[1]] == 1:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def record_activations(
    model: Any, names: Sequence[str], feeds: Sequence[dict[str, np.ndarray]], max_rows: int
) -> dict[str, ActivationSample]:
    """Run ``model`` (an FP32 ModelProto) on each feed and keep its ``names`` tensors."""
    import onnx
    import onnxruntime as ort

    from hybridroute.runtime.classifier import session_from

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in names:
        probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = session_from(probe.SerializeToString(), options)
    samples = {name: ActivationSample() for name in names}
    for feed in feeds:
        for name, values in zip(names, session.run(list(names), feed), strict=True):
            samples[name].add(np.asarray(values), max_rows)
    return samples


def apply_scales(
    model: Any, weights: dict[str, Any], nodes: Sequence[Any], activation: str, scales: np.ndarray
) -> None:
    """Scale the weights of ``nodes`` by row and feed them ``activation / scales`` through a new Mul node.

    ``weights`` holds the model's initializers by name.
    """
    from onnx import helper, numpy_helper

    for node in nodes:
        tensor = weights[node.input[1]]
        tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor) * scales[:, None], tensor.name))
    divisor, smoothed = f"{activation}_smooth_scale", f"{activation}{SMOOTH_SUFFIX}"
    model.graph.initializer.append(numpy_helper.from_array((1.0 / scales).astype(np.float32), divisor))
    mul = helper.make_node("Mul", [activation, divisor], [smoothed], name=f"{activation}_SmoothMul")
    for node in nodes:
        node.input[0] = smoothed
    position = next((i + 1 for i, n in enumerate(model.graph.node) if activation in n.output), 0)
    model.graph.node.insert(position, mul)  # after its producer (first for a graph input): the graph stays sorted


def smooth_model(model: Any, feeds: Sequence[dict[str, np.ndarray]], max_rows: int = 4096) -> SmoothingReport:
    """Smooth ``model`` (an FP32 ModelProto) in place from its activations on ``feeds`` (one model call each)."""
    from onnx import numpy_helper

    if not feeds:
        raise ValueError("smoothing needs at least one calibration text; got none")
    groups = smoothable_inputs(model)
    names = sorted(groups)
    if not names:
        logger.info("smoothing: no MatMul with a weight of its own; nothing to smooth")
        return SmoothingReport(len(feeds), ())
    samples = record_activations(model, names, feeds, max_rows)
    weights = {i.name: i for i in model.graph.initializer}
    choices = []
    for name in names:
        nodes = groups[name]
        weight = np.concatenate([numpy_helper.to_array(weights[n.input[1]]) for n in nodes], axis=1)
        choice, scales = choose(name, samples[name], weight)
        if scales is not None:
            apply_scales(model, weights, nodes, name, scales)
        choices.append(choice)
    report = SmoothingReport(len(feeds), tuple(choices))
    summary = report.to_dict()
    logger.info(
        "smoothing: %d of %d MatMul inputs smoothed; median simulated INT8 error %.2e -> %.2e",
        summary["smoothed"],
        summary["activations"],
        summary["median_relative_error_plain"] or 0.0,
        summary["median_relative_error_smoothed"] or 0.0,
    )
    return report


def smooth_file(source: Path, target: Path, feeds: Sequence[dict[str, np.ndarray]]) -> SmoothingReport:
    """Write a smoothed copy of the FP32 model ``source`` to ``target``."""
    import onnx

    model = onnx.load(str(source))
    report = smooth_model(model, feeds)
    onnx.save(model, str(target))
    return report


# ---------------------------------------------------------------- calibration


def calibration_feeds(classifier: EdgeClassifier, texts: Sequence[str], count: int) -> list[dict[str, np.ndarray]]:
    """Session inputs for ``count`` texts drawn without replacement (seeded): each alone, then in padded calls of 32.

    Lone texts are how the edge answers one query, and (first in the list) they fill the simulation's rows; the
    padded calls widen each channel's maximum with what micro-batches add, padding positions and other texts.
    Smoothing chosen on lone texts alone lost fidelity in batches of 32 (banking77 validation: KL from FP32
    0.0027 plain, 0.0075 smoothed); with the padded calls it gains in both (0.0007 alone, 0.0008 in batches).
    """
    rng = np.random.default_rng(0)
    drawn = [texts[i] for i in rng.choice(len(texts), size=count, replace=False)]
    alone = [classifier.feeds(*classifier.encode([text])) for text in drawn]
    step = CALIBRATION_BATCH
    batched = [classifier.feeds(*classifier.encode(drawn[i : i + step])) for i in range(0, len(drawn), step)]
    return alone + batched


def smooth_for_int8(
    source: Path, target: Path, classifier: EdgeClassifier, texts: Sequence[str], count: int
) -> dict[str, Any]:
    """Smooth the FP32 model ``source`` into ``target`` on up to ``count`` of ``texts``; return the manifest record.

    ``classifier`` runs ``source`` with the tokenizer its bundle will ship (it encodes the calibration texts).
    """
    used = min(count, len(texts))
    logger.info("smoothing activations on %d training texts", used)
    report = smooth_file(source, target, calibration_feeds(classifier, texts, used))
    return {"calibration_texts": used} | report.to_dict()
