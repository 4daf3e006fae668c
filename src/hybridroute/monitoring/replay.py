"""Synthetic audit traffic in phases (healthy, then degraded, ...), to exercise the monitor end to end.

Each phase fixes the true accuracy, the edge share, the latencies and the
inputs; confidences are drawn so that they are calibrated (an answer with
confidence c is right with probability c), as the edge's temperature-scaled
confidences are meant to be. Records carry ``text_length`` and ``unk_rate``
like an audit log that stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from hybridroute.config import check_positive, check_probability
from hybridroute.monitoring.audit import AuditRecord

PROFILE = ("text_length", "unk_rate")


@dataclass(frozen=True)
class ProfiledRecord(AuditRecord):
    """An audit record with the per-request input profile the drift check reads."""

    text_length: int | None = None
    unk_rate: float | None = None

    def plain(self) -> AuditRecord:
        """The same record as an audit log without the input profile holds it (profile fields None or absent)."""
        values = {f.name: getattr(self, f.name) for f in fields(AuditRecord)}
        values.update({name: None for name in PROFILE if name in values})
        return AuditRecord(**values)


@dataclass(frozen=True)
class Phase:
    """One stretch of traffic.

    Attributes:
        queries: how many answers.
        accuracy: expected accuracy (the mean confidence; answers are right with their confidence).
        edge_share: share answered on the edge.
        edge_latency_ms, cloud_latency_ms: median latencies (log-normal, sigma 0.3).
        mean_length: mean text length in characters.
        unk_rate: mean unknown-token rate.
        feedback_share: share of answers that get a true label.
        fallback_share: share of cloud-bound answers whose cloud call failed.
    """

    queries: int
    accuracy: float = 0.92
    edge_share: float = 0.95  # with the default prices: 0.00168 USD per query, under the 0.002 limit
    edge_latency_ms: float = 8.0
    cloud_latency_ms: float = 90.0
    mean_length: float = 60.0
    unk_rate: float = 0.01
    feedback_share: float = 0.2
    fallback_share: float = 0.0
    edge_price: float = 0.001
    cloud_price: float = 0.0136

    def __post_init__(self) -> None:
        check_positive("queries", self.queries)
        for name in ("accuracy", "edge_share", "unk_rate", "feedback_share", "fallback_share"):
            check_probability(name, getattr(self, name))


def _confidences(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    # Beta with concentration 8 around the mean: spread like real top-class confidences.
    concentration = 8.0
    return np.clip(rng.beta(mean * concentration, (1 - mean) * concentration, n), 1e-3, 1.0)


def _phase_records(phase: Phase, rng: np.random.Generator, start: float, gap_s: float, offset: int) -> list:
    n = phase.queries
    confidence = _confidences(rng, phase.accuracy, n)
    correct = rng.random(n) < confidence
    edge = rng.random(n) < phase.edge_share
    fallback = ~edge & (rng.random(n) < phase.fallback_share)
    labelled = rng.random(n) < phase.feedback_share
    edge_ms = rng.lognormal(np.log(phase.edge_latency_ms), 0.3, n)
    cloud_ms = rng.lognormal(np.log(phase.cloud_latency_ms), 0.3, n)
    lengths = np.maximum(1, rng.poisson(phase.mean_length, n))
    unk = rng.binomial(30, phase.unk_rate, n) / 30.0
    records = []
    for i in range(n):
        on_edge = bool(edge[i] or fallback[i])
        latency = float(edge_ms[i] + (0.0 if edge[i] else cloud_ms[i]))
        reason = "confident" if edge[i] else ("fallback:timeout" if fallback[i] else "low_confidence")
        records.append(
            ProfiledRecord(
                time=start + (offset + i) * gap_s,
                request_id=f"r{offset + i}",
                text_hash=f"h{offset + i}",
                text=None,
                label="right" if correct[i] else "wrong",
                confidence=float(confidence[i]),
                tier="edge" if on_edge else "cloud",
                reason=reason,
                latency_ms=latency,
                edge_latency_ms=float(edge_ms[i]),
                cloud_latency_ms=None if edge[i] else float(cloud_ms[i]),
                cost=phase.edge_price + (0.0 if edge[i] else phase.cloud_price),
                model_version="cloud-v1" if not on_edge else "edge-v1",
                edge_model_version="edge-v1",
                edge_label="right" if correct[i] else "wrong",
                edge_confidence=float(confidence[i]),
                fallback=bool(fallback[i]),
                feedback_label="right" if labelled[i] else None,
                feedback_time=start + (offset + i) * gap_s + 60.0 if labelled[i] else None,
                text_length=int(lengths[i]),
                unk_rate=float(unk[i]),
            )
        )
    return records


def replay(
    phases: Sequence[Phase], rng: np.random.Generator, start: float = 1_700_000_000.0, gap_s: float = 1.0
) -> list[ProfiledRecord]:
    """Records for the phases in order, one every ``gap_s`` seconds from ``start``.

    Example: replay([Phase(500), Phase(500, accuracy=0.7, edge_share=0.5)], np.random.default_rng(0)) -> 1000 records
    """
    check_positive("gap_s", gap_s)
    records: list[ProfiledRecord] = []
    for phase in phases:
        records.extend(_phase_records(phase, rng, start, gap_s, len(records)))
    return records
