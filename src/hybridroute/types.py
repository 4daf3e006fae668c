"""Small value types shared by every part."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Tier(str, enum.Enum):
    """Where a query was answered."""

    EDGE = "edge"
    CLOUD = "cloud"


@dataclass(frozen=True)
class Prediction:
    """One classified text: the label, its calibrated probability and the full distribution."""

    label: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"label": self.label, "confidence": self.confidence, "probabilities": self.probabilities}
