"""ONNX Runtime's transformer graph optimizations (attention, layer-norm and GELU fusion), saved offline.

Fusing once at build time gives a graph that ONNX Runtime loads without repeating the
work and that the quantizers see in its final shape. The word-embedding lookup stays a
plain ``Gather`` (no EmbedLayerNormalization), so vocabulary pruning and INT8 embeddings
still find it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hybridroute.errors import ArtifactError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderShape:
    """What the fusion passes need to know about the encoder."""

    num_heads: int
    hidden_size: int


def encoder_shape(config_file: Path) -> EncoderShape:
    """Read heads and hidden size from a Hugging Face ``config.json``.

    Example: {"num_attention_heads": 12, "hidden_size": 384} -> EncoderShape(12, 384)
    """
    import json

    if not config_file.is_file():
        raise ArtifactError(f"{config_file} is missing: graph optimization needs the encoder's heads and width")
    data = json.loads(config_file.read_text(encoding="utf-8"))
    try:
        return EncoderShape(int(data["num_attention_heads"]), int(data["hidden_size"]))
    except KeyError as exc:
        raise ArtifactError(f"{config_file}: no {exc} entry; cannot fuse attention") from exc


def _fusion_options(separate_qkv: bool) -> object:
    from onnxruntime.transformers.fusion_options import AttentionOpType, FusionOptions

    options = FusionOptions("bert")
    options.enable_embed_layer_norm = False  # keep the word-embedding Gather visible to pruning and INT8
    if separate_qkv:
        # MultiHeadAttention keeps Q, K and V as three MatMuls, which 4-bit block quantization can reach;
        # the packed Attention op would hide its weights from MatMulNBits.
        options.use_multi_head_attention = True
        options.attention_op_type = AttentionOpType.MultiHeadAttention
    return options


def optimize_graph(source: Path, target: Path, shape: EncoderShape, separate_qkv: bool = False) -> dict[str, int]:
    """Write a fused copy of ``source`` to ``target``; return the count of each fused operator."""
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        optimized = optimize_model(
            str(source),
            model_type="bert",
            num_heads=shape.num_heads,
            hidden_size=shape.hidden_size,
            optimization_options=_fusion_options(separate_qkv),
            opt_level=0,
            use_gpu=False,
        )
    except Exception as exc:  # the optimizer raises assorted errors on graphs it does not recognise
        raise ArtifactError(f"transformer graph optimization failed on {source}: {exc}") from exc
    optimized.save_model_to_file(str(target))
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    logger.info("graph optimization fused %s", fused or "nothing")
    return fused


def op_counts(model_file: Path) -> Counter[str]:
    """How many nodes of each operator type a model holds."""
    import onnx

    return Counter(n.op_type for n in onnx.load(str(model_file), load_external_data=False).graph.node)
