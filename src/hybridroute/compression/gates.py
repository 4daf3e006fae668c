"""Gates a compressed model must pass before it may become an edge bundle."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hybridroute.errors import ArtifactError


@dataclass(frozen=True)
class ParityReport:
    """How closely the ONNX graph reproduces PyTorch."""

    samples: int
    agreement: float  # share of texts with the same top-1 label
    max_logit_diff: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def parity(reference: np.ndarray, candidate: np.ndarray) -> ParityReport:
    """Compare two logit matrices of the same texts.

    Example: parity([[1, 0]], [[0.9, 0.1]]) -> ParityReport(samples=1, agreement=1.0, max_logit_diff=0.1)
    """
    if reference.shape != candidate.shape:
        raise ArtifactError(f"logit shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    agreement = float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean())
    return ParityReport(len(reference), agreement, float(np.abs(reference - candidate).max()))


def check_parity(report: ParityReport, min_agreement: float, max_logit_diff: float) -> None:
    """Fail loudly when the exported graph does not compute what PyTorch computes."""
    # Written as "not (ok)" so a NaN difference fails instead of slipping through.
    if not (report.agreement >= min_agreement and report.max_logit_diff <= max_logit_diff):
        raise ArtifactError(
            f"ONNX parity check failed on {report.samples} texts: top-1 agreement {report.agreement:.4f} "
            f"(needs >= {min_agreement}), largest logit difference {report.max_logit_diff:.2e} "
            f"(needs <= {max_logit_diff:.0e}); the export is wrong, do not ship it"
        )


def check_accuracy_drop(reference: float, candidate: float, max_drop: float, what: str = "INT8") -> None:
    """Refuse a compressed model that loses more than ``max_drop`` accuracy (absolute, 0.01 = 1 point)."""
    if reference - candidate > max_drop + 1e-12:
        raise ArtifactError(
            f"{what} accuracy gate failed: validation accuracy {candidate:.4f} vs FP32 {reference:.4f} "
            f"(drop {100 * (reference - candidate):.2f} points, allowed {100 * max_drop:.2f}); no edge bundle written"
        )
