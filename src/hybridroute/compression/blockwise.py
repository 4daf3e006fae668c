"""4-bit block weight quantization with ONNX Runtime's ``MatMulNBits`` (and ``GatherBlockQuantized``).

Each block of ``block_size`` weights along the input axis shares one scale (and a zero
point), so outliers spoil only their block. ``accuracy_level`` 4 lets the CPU kernel
multiply in INT8 after unpacking, the fastest path on x86 and ARM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockSettings:
    """How the 4-bit weights were made, recorded in the manifest."""

    bits: int = 4
    block_size: int = 32  # 32 keeps MiniLM within half a point of FP32; 128 saves ~0.3 MB more
    symmetric: bool = False
    accuracy_level: int = 4  # MatMulNBits computes in INT8 after unpacking (fastest on CPU)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "bits": self.bits,
            "block_size": self.block_size,
            "symmetric": self.symmetric,
            "accuracy_level": self.accuracy_level,
        }


def quantize_blockwise(
    model: Any, settings: BlockSettings, op_types: tuple[str, ...] = ("MatMul",), nodes: list[str] | None = None
) -> Any:
    """Quantize the constant weights of ``op_types`` nodes in an ONNX ModelProto; return the new model.

    ``("MatMul",)`` quantizes the encoder; add ``"Gather"`` for 4-bit word embeddings
    (``GatherBlockQuantized``, blocks along the hidden axis). ``nodes`` limits it to named nodes.
    """
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=settings.block_size,
        is_symmetric=settings.symmetric,
        accuracy_level=settings.accuracy_level,
        op_types_to_quantize=op_types,
        quant_axes=(("MatMul", 0), ("Gather", 1)),
        bits=settings.bits,
    )
    excluded: list[str] = []
    if nodes is not None:  # the quantizer's own nodes_to_include *adds* nodes to op_types: exclude the rest
        excluded = [n.name for n in model.graph.node if n.op_type in op_types and n.name not in nodes]
    quantizer = MatMulNBitsQuantizer(model, nodes_to_exclude=excluded, algo_config=config)
    _quiet(quantizer.process)
    return quantizer.model.model


def _quiet(call: Any) -> None:
    # The quantizer logs every node at INFO through the root logger; keep our logs readable.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        call()
    finally:
        root.setLevel(level)


def save(model: Any, path: Path) -> Path:
    """Write an ONNX model as one file."""
    import onnx

    onnx.save_model(model, str(path))
    return path
