"""ONNX export of a fine-tuned classifier with dynamic batch and sequence axes."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from hybridroute.errors import ArtifactError
from hybridroute.training.models import SequenceClassifier

logger = logging.getLogger(__name__)

INPUT_NAMES = ["input_ids", "attention_mask"]
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "sequence"},
    "attention_mask": {0: "batch", 1: "sequence"},
    "logits": {0: "batch"},
}


def _trace_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    # Two rows of different real lengths, so padding is traced as data, not as a constant.
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    return ids, mask


def export_onnx(model: SequenceClassifier, path: Path, opset: int = 17) -> Path:
    """Export ``model`` (loaded with eager attention) to ``path`` as ONNX.

    Uses the TorchScript exporter: for BERT-style encoders with dynamic axes it
    gives a compact graph that ONNX Runtime fuses and quantizes well.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic are expected here
        try:
            torch.onnx.export(
                model,
                _trace_inputs(),
                str(path),
                input_names=INPUT_NAMES,
                output_names=["logits"],
                dynamic_axes=DYNAMIC_AXES,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # the exporter raises many unrelated types
            raise ArtifactError(f"ONNX export failed: {exc}") from exc
    logger.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
