"""Windows over recent traffic: statistics of a run of audit records.

A record is anything with :class:`hybridroute.monitoring.audit.AuditRecord`'s
attributes; ``text_length`` and ``unk_rate`` are read when present (the input
drift check needs them) and skipped otherwise.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hybridroute.monitoring.thresholds import MonitorConfig

# What a window of no queries has no value for: 0.0 would read as "the edge answered nothing" or "free".
NO_DATA_FIELDS = (
    "edge_share",
    "cloud_share",
    "fallback_rate",
    "estimated_accuracy",
    "cost_per_query",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)


class RecordLike(Protocol):
    """The attributes of an audit record the monitor reads (read-only, as on the frozen record)."""

    @property
    def time(self) -> float:
        """Unix seconds of the answer."""
        ...

    @property
    def label(self) -> str:
        """The answer."""
        ...

    @property
    def confidence(self) -> float:
        """Its calibrated probability."""
        ...

    @property
    def tier(self) -> str:
        """Where it was answered: "edge" or "cloud"."""
        ...

    @property
    def reason(self) -> str:
        """Why it went there."""
        ...

    @property
    def latency_ms(self) -> float:
        """Server time for the request."""
        ...

    @property
    def cost(self) -> float:
        """USD charged."""
        ...

    @property
    def edge_confidence(self) -> float:
        """The edge's confidence."""
        ...

    @property
    def fallback(self) -> bool:
        """The cloud failed and the edge answered."""
        ...

    @property
    def feedback_label(self) -> str | None:
        """The true label, once feedback arrives."""
        ...


@dataclass(frozen=True)
class Window:
    """Statistics of one window of answered queries.

    Attributes:
        queries: answers in the window.
        start, end: times of its first and last answer (unix seconds).
        edge_share: share answered on the edge (fallbacks included: the edge answered them).
        fallback_rate: share where the cloud was wanted but failed.
        estimated_accuracy: mean calibrated confidence of the served answers (needs no labels).
        feedback_count: answers with a true label from feedback.
        feedback_accuracy: accuracy on those (None without feedback).
        estimated_on_feedback: mean confidence on the same answers, to compare like with like.
        cost_per_query, total_cost: USD.
        latency_p50_ms, latency_p95_ms, latency_p99_ms: server latency percentiles.
        escalation_reasons: reason counts of answers that went (or tried to go) to the cloud.
        text_length, unk_rate, edge_confidence: per-answer samples for the drift check.
    """

    queries: int
    start: float
    end: float
    edge_share: float
    fallback_rate: float
    estimated_accuracy: float
    feedback_count: int
    feedback_accuracy: float | None
    estimated_on_feedback: float | None
    cost_per_query: float
    total_cost: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    escalation_reasons: dict[str, int] = field(default_factory=dict)
    text_length: tuple[float, ...] = field(default=(), repr=False)
    unk_rate: tuple[float, ...] = field(default=(), repr=False)
    edge_confidence: tuple[float, ...] = field(default=(), repr=False)

    @property
    def cloud_share(self) -> float:
        """Share answered by the cloud."""
        return 1.0 - self.edge_share if self.queries else 0.0

    @property
    def mid(self) -> float:
        """The window's middle time, where trends place it."""
        return (self.start + self.end) / 2.0

    def accuracy(self, min_feedback: int) -> tuple[float, str]:
        """Measured accuracy when at least ``min_feedback`` labels exist, else the estimate; and which.

        Example: 40 labels, min 30 -> (feedback_accuracy, "feedback"); 5 labels -> (estimated, "estimated")
        """
        if self.feedback_accuracy is not None and self.feedback_count >= min_feedback:
            return self.feedback_accuracy, "feedback"
        return self.estimated_accuracy, "estimated"

    @property
    def estimate_gap(self) -> float | None:
        """Estimated minus measured accuracy on the answers that have feedback (None without feedback)."""
        if self.feedback_accuracy is None or self.estimated_on_feedback is None:
            return None
        return self.estimated_on_feedback - self.feedback_accuracy

    def drift_samples(self) -> dict[str, Sequence[float]]:
        """The per-answer samples the drift check compares with the reference."""
        return {"text_length": self.text_length, "unk_rate": self.unk_rate, "confidence": self.edge_confidence}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the samples).

        A window of no queries has None (no data) for its shares, rates, accuracy estimate, cost per query and
        latencies, not 0.
        """
        found = {
            "queries": self.queries,
            "start": self.start,
            "end": self.end,
            "edge_share": self.edge_share,
            "cloud_share": self.cloud_share,
            "fallback_rate": self.fallback_rate,
            "estimated_accuracy": self.estimated_accuracy,
            "feedback_count": self.feedback_count,
            "feedback_accuracy": self.feedback_accuracy,
            "estimated_on_feedback": self.estimated_on_feedback,
            "estimate_gap": self.estimate_gap,
            "cost_per_query": self.cost_per_query,
            "total_cost": self.total_cost,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "escalation_reasons": dict(self.escalation_reasons),
        }
        return found if self.queries else found | dict.fromkeys(NO_DATA_FIELDS)


def _optional_samples(records: Sequence[Any], name: str) -> tuple[float, ...]:
    values = (getattr(r, name, None) for r in records)
    return tuple(float(v) for v in values if v is not None and not math.isnan(v))


def window_stats(records: Sequence[RecordLike]) -> Window:
    """Statistics of ``records`` (any order); an empty sequence gives an all-zero window.

    Example: 3 edge answers at confidence 0.9 and 1 cloud answer at 0.7 -> edge_share 0.75, estimated 0.85
    """
    if not records:
        return Window(0, math.nan, math.nan, 0.0, 0.0, math.nan, 0, None, None, 0.0, 0.0, math.nan, math.nan, math.nan)
    latency = np.array([r.latency_ms for r in records], dtype=float)
    cost = float(sum(r.cost for r in records))
    labelled = [r for r in records if r.feedback_label is not None]
    escalated = Counter(r.reason for r in records if r.tier != "edge" or r.fallback)
    p50, p95, p99 = (float(v) for v in np.percentile(latency, [50, 95, 99]))
    return Window(
        queries=len(records),
        start=float(min(r.time for r in records)),
        end=float(max(r.time for r in records)),
        edge_share=sum(r.tier == "edge" for r in records) / len(records),
        fallback_rate=sum(bool(r.fallback) for r in records) / len(records),
        estimated_accuracy=float(np.mean([r.confidence for r in records])),
        feedback_count=len(labelled),
        feedback_accuracy=float(np.mean([r.label == r.feedback_label for r in labelled])) if labelled else None,
        estimated_on_feedback=float(np.mean([r.confidence for r in labelled])) if labelled else None,
        cost_per_query=cost / len(records),
        total_cost=cost,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        latency_p99_ms=p99,
        escalation_reasons=dict(escalated.most_common()),
        text_length=_optional_samples(records, "text_length"),
        unk_rate=_optional_samples(records, "unk_rate"),
        edge_confidence=tuple(float(r.edge_confidence) for r in records),
    )


def split_windows(records: Sequence[RecordLike], config: MonitorConfig, count: int | None = None) -> list[list[Any]]:
    """Cut time-ordered records into consecutive windows, newest last; at most ``count`` (None: all).

    Count windows are taken back from the newest record, so the current window
    is always full and only the oldest may be short; time windows are spans of
    ``window_seconds`` ending at the newest record (empty spans are skipped).

    Example: 2500 records, window_size 1000 -> windows of 500, 1000, 1000
    """
    ordered = sorted(records, key=lambda r: r.time)
    if not ordered:
        return []
    if config.window_seconds is None:
        size = config.window_size
        bounds = list(range(len(ordered), 0, -size))
        windows = [ordered[max(0, end - size) : end] for end in bounds]
    else:
        last = ordered[-1].time
        buckets: dict[int, list[Any]] = {}
        for record in ordered:
            buckets.setdefault(int((last - record.time) // config.window_seconds), []).append(record)
        windows = [buckets[k] for k in sorted(buckets)]
    windows.reverse()
    return windows if count is None else windows[-count:]
