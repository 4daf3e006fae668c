"""INT8 dynamic quantization with ONNX Runtime."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridroute.config import CompressConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeSettings:
    """What was quantized and how, recorded in the manifest."""

    method: str
    weight_type: str
    per_channel: bool
    op_types: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "method": self.method,
            "weight_type": self.weight_type,
            "per_channel": self.per_channel,
            "op_types": list(self.op_types),
        }


def int8_settings(config: CompressConfig) -> QuantizeSettings:
    """Dynamic INT8 settings: MatMul weights, plus the embedding Gather when configured."""
    ops = ("MatMul", "Gather") if config.quantize_embeddings else ("MatMul",)
    return QuantizeSettings("dynamic", "int8", config.per_channel, ops)


def quantize_int8(source: Path, target: Path, config: CompressConfig) -> QuantizeSettings:
    """Write a dynamically quantized INT8 copy of ``source`` to ``target``.

    Weights become INT8 ahead of time; activations are quantized on the fly per
    batch, so no calibration data is needed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = int8_settings(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=settings.per_channel,
        op_types_to_quantize=list(settings.op_types),
    )
    logger.info("quantized %s -> %s (%.1f MB)", source.name, target, target.stat().st_size / 1e6)
    return settings
