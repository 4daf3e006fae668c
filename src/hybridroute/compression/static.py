"""Static INT8: activations quantized with ranges calibrated on domain texts, sensitive operators kept float.

Dynamic INT8 measures each activation's range on every call; static INT8 fixes the ranges
ahead of time from calibration texts, so inference skips that work. Only MatMuls with a
constant weight are quantized (``MatMulConstBOnly``): the attention score and context
MatMuls multiply two activations whose ranges swing with the input, and quantizing them
costs accuracy for little speed. LayerNorm, Softmax, GELU and the classifier head stay float.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaticSettings:
    """How the static INT8 model was calibrated, recorded in the manifest."""

    calibration_texts: int = 256  # ranges settle after a few hundred short texts
    method: str = "MinMax"  # MinMax, Entropy or Percentile (ONNX Runtime's CalibrationMethod names)
    per_channel: bool = True
    excluded_op_types: tuple[str, ...] = field(
        default=("Gather", "Add", "Mul", "Softmax", "LayerNormalization", "SkipLayerNormalization", "Gemm")
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "calibration_texts": self.calibration_texts,
            "method": self.method,
            "per_channel": self.per_channel,
            "quantized_op_types": ["MatMul"],
            "matmul_const_b_only": True,
            "kept_float": list(self.excluded_op_types),
        }


class TextCalibrationReader:
    """Feeds tokenized texts, one per batch, to ONNX Runtime's calibrator."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], max_length: int) -> None:
        self._feeds = [_feed(tokenizer.encode(t).ids[:max_length]) for t in texts]
        self._iterator: Iterator[dict[str, np.ndarray]] = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed, or None when done."""
        return next(self._iterator, None)

    def rewind(self) -> None:
        """Start again from the first text."""
        self._iterator = iter(self._feeds)


def _feed(ids: Sequence[int]) -> dict[str, np.ndarray]:
    input_ids = np.asarray([ids], dtype=np.int64)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def declare_float_outputs(source: Path, target: Path) -> int:
    """Copy ``source`` to ``target`` declaring the outputs of fused contrib ops as float; return how many.

    ONNX shape inference does not know ONNX Runtime's contrib ops (SkipLayerNormalization,
    MultiHeadAttention, BiasGelu), and the calibrator and quantizer skip any tensor whose type
    they cannot see, silently leaving the MatMuls after those ops with float inputs. Every
    output of these ops in an FP32 encoder is float, so declaring it is exact.
    """
    import onnx

    model = onnx.load(str(source))
    known = {v.name for v in model.graph.value_info} | {o.name for o in model.graph.output}
    names = [o for n in model.graph.node if n.domain == "com.microsoft" for o in n.output if o and o not in known]
    model.graph.value_info.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in names
    )
    onnx.save_model(model, str(target))
    return len(names)


def quantize_static_int8(
    source: Path, target: Path, tokenizer: Any, texts: Sequence[str], max_length: int, settings: StaticSettings
) -> StaticSettings:
    """Write a static INT8 (QDQ) copy of ``source`` to ``target``, calibrated on ``texts``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    typed = target.with_name(f"{target.stem}-typed.onnx")
    declare_float_outputs(source, typed)
    source = typed
    sample = list(texts)[: settings.calibration_texts]
    logger.info("static INT8: calibrating on %d texts (%s)", len(sample), settings.method)
    quantize_static(
        str(source),
        str(target),
        TextCalibrationReader(tokenizer, sample, max_length),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=settings.per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, settings.method),
        extra_options={
            "MatMulConstBOnly": True,
            "DefaultTensorType": 1,  # 1 = FLOAT, for fused contrib ops
            # MatMul outputs stay float, so attention, layer norm and GELU read exact values
            # (ORT runs each DQ -> MatMul as MatMulIntegerToFloat)
            "OpTypesToExcludeOutputQuantization": ["MatMul"],
            "ActivationSymmetric": False,
            "WeightSymmetric": True,
        },
    )
    restored = keep_float_consumers(target)
    logger.info("static INT8: %d float-only inputs restored to their unquantized tensors", restored)
    return settings


def keep_float_consumers(model_file: Path, quantized_ops: tuple[str, ...] = ("MatMul",)) -> int:
    """Point every input of a float-only node back at the tensor before its Q -> DQ pair; return how many.

    The QDQ quantizer makes *every* consumer of a quantized activation read the dequantized
    copy, so the residual branch into SkipLayerNormalization would carry INT8 rounding
    although that node computes in float. Only ``quantized_ops`` should read DQ outputs.
    """
    import onnx

    model = onnx.load(str(model_file))
    producer = {o: n for n in model.graph.node for o in n.output}
    original = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in producer:
            q = producer[node.input[0]]
            if q.op_type == "QuantizeLinear":
                original[node.output[0]] = q.input[0]
    count = 0
    for node in model.graph.node:
        if node.op_type in (*quantized_ops, "QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            if name in original:
                node.input[i] = original[name]
                count += 1
    onnx.save_model(model, str(model_file))
    return count
