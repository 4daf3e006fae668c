"""INT8 word embeddings with one scale per row, written as plain ONNX operators.

``quantize_dynamic`` quantizes the embedding ``Gather`` with a single scale for the whole
table, which lets a few large rows flatten every other token. One scale per row costs
4 bytes a token and keeps each token's vector as precise as INT8 allows:

    ids --Gather(q_int8)--> Cast(float) --Mul--> embeddings
    ids --Gather(scales)----------------^
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hybridroute.compression.vocab import WORD_EMBEDDINGS_INPUT
from hybridroute.errors import ArtifactError

logger = logging.getLogger(__name__)


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric INT8 per row: (int8 table, float32 scales of shape (rows, 1)).

    Example: quantize_rows(np.array([[1.0, -2.0]])) -> ([[64, -127]], [[2/127]])
    """
    scales = np.abs(table).max(axis=1, keepdims=True) / 127.0
    scales = np.where(scales == 0, 1.0, scales).astype(np.float32)
    quantized = np.clip(np.rint(table / scales), -127, 127).astype(np.int8)
    return quantized, scales


def embedding_gather(model: Any) -> Any:
    """The float word-embedding Gather (reading an initializer with the `input_ids` indices)."""
    inits = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == WORD_EMBEDDINGS_INPUT and node.input[0] in inits:
            return node
    raise ArtifactError("no float word-embedding Gather on 'input_ids' left to quantize to INT8")


def quantize_word_embeddings_int8(model: Any) -> dict[str, Any]:
    """Replace the word-embedding table of an ONNX ModelProto with INT8 rows and per-row scales, in place."""
    from onnx import helper, numpy_helper

    gather = embedding_gather(model)
    inits = {i.name: i for i in model.graph.initializer}
    table_init = inits[gather.input[0]]
    quantized, scales = quantize_rows(numpy_helper.to_array(table_init))
    base = table_init.name
    model.graph.initializer.remove(table_init)
    model.graph.initializer.extend(
        [numpy_helper.from_array(quantized, f"{base}_int8"), numpy_helper.from_array(scales, f"{base}_scale")]
    )
    output = gather.output[0]
    nodes = [
        helper.make_node("Gather", [f"{base}_int8", WORD_EMBEDDINGS_INPUT], [f"{output}_q"], name=f"{gather.name}_q"),
        helper.make_node("Gather", [f"{base}_scale", WORD_EMBEDDINGS_INPUT], [f"{output}_s"], name=f"{gather.name}_s"),
        helper.make_node("Cast", [f"{output}_q"], [f"{output}_f"], name=f"{gather.name}_cast", to=1),
        helper.make_node("Mul", [f"{output}_f", f"{output}_s"], [output], name=f"{gather.name}_dequant"),
    ]
    position = list(model.graph.node).index(gather)
    model.graph.node.remove(gather)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(position + offset, node)
    logger.info("word embeddings -> INT8 per row (%d x %d)", *quantized.shape)
    return {"embeddings": "int8", "scales": "per-row symmetric", "rows": int(quantized.shape[0])}


def position_rows(model: Any) -> int | None:
    """Rows of the position-embedding table: the longest input the model accepts (None: no such table)."""
    for init in model.graph.initializer:
        if init.name.endswith("position_embeddings.weight") and len(init.dims) == 2:
            return int(init.dims[0])
    return None


def trim_position_embeddings(model: Any, max_length: int) -> dict[str, Any]:
    """Keep only the first ``max_length`` rows of the position-embedding table, in place.

    The bundle's tokenizer truncates at ``max_length``, so no position beyond it is ever looked
    up; MiniLM's 512-row table at 64 tokens is 0.7 MB of rows no query can reach.
    """
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name.endswith("position_embeddings.weight") and len(init.dims) == 2 and init.dims[0] > max_length:
            rows = int(init.dims[0])
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init)[:max_length].copy(), init.name))
            logger.info("position embeddings trimmed %d -> %d rows", rows, max_length)
            return {"trimmed_from": rows, "rows": max_length}
    return {}
