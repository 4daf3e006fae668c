"""The edge service's Prometheus metrics, on a registry the caller owns (so each app and test starts at zero).

Names follow Prometheus conventions (``_total`` counters, ``_seconds``
histograms, base units). One answered text counts as one request in
``hybridroute_requests_total``; one HTTP request counts once in
``hybridroute_http_requests_total`` by route and status class (the error-rate
alert divides its 5xx by it); HTTP-level failures count in
``hybridroute_errors_total`` by error type.

The gauges that judge recent traffic (edge share, feedback accuracy, drift PSI)
are absent until the live monitor would judge it too: a share of three answers
would fire the shipped alert rules on an almost idle service.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hybridroute.monitoring.thresholds import MonitorThresholds
from hybridroute.monitoring.window import Window

# Edge answers take a few ms, cloud calls tens to hundreds: buckets cover 0.5 ms to 5 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OTHER_ROUTE = "other"  # the route label of a path the app does not serve: raw paths would be unbounded labels


def status_class(status: int) -> str:
    """The class of an HTTP status code, the status label of ``hybridroute_http_requests_total``.

    Example: status_class(503) -> "5xx"; status_class(200) -> "2xx"
    """
    return f"{status // 100}xx"


def published_feedback_accuracy(window: Window, thresholds: MonitorThresholds) -> float | None:
    """The feedback accuracy to export: only where the live monitor would judge it, else None (absent).

    The monitor judges a window of at least ``min_window`` queries, and measures accuracy from feedback only
    with at least ``min_feedback`` labels; one wrong label of one answer is not an accuracy of 0.

    Example: 60 queries, 40 labels, accuracy 0.9, defaults (50, 30) -> 0.9; 60 queries, 1 label -> None
    """
    if window.queries < thresholds.min_window or window.feedback_count < thresholds.min_feedback:
        return None
    return window.feedback_accuracy


def _replace_series(gauge: Gauge, published: set[str], values: dict[str, float]) -> set[str]:
    """Set ``gauge`` to ``values`` by feature, removing the features ``published`` before that have none now.

    Returns the features published now.
    """
    for feature in published - values.keys():
        gauge.remove(feature)
    for feature, value in values.items():
        gauge.labels(feature).set(value)
    return set(values)


class SlidingShare:
    """The share of ``True`` among the last ``window`` observations (thread-safe).

    Example: window 2, observe True, False, False -> share 0.0
    """

    def __init__(self, window: int) -> None:
        self._values: deque[bool] = deque(maxlen=window)
        self._hits = 0
        self._lock = threading.Lock()

    def observe(self, hit: bool) -> tuple[float, int]:
        """Add one observation; return the new share and how many observations it is over."""
        with self._lock:
            if len(self._values) == self._values.maxlen and self._values[0]:
                self._hits -= 1
            self._values.append(hit)
            self._hits += hit
            return self._hits / len(self._values), len(self._values)


class OptionalGauge(Collector):
    """A gauge without labels that is absent from the exposition until it is set (a plain ``Gauge`` reads 0).

    A 0 that means "no data yet" would read as the worst value and fire alerts on a quiet service.

    Example: OptionalGauge("x", "...", registry) exports nothing; after .set(0.9) it exports ``x 0.9``
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self._value: float | None = None
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, value: float) -> None:
        """Publish ``value``."""
        with self._lock:
            self._value = float(value)

    def clear(self) -> None:
        """Stop publishing (the metric is absent again)."""
        with self._lock:
            self._value = None

    def describe(self) -> list[GaugeMetricFamily]:
        """The metric's name and help, for the registry's duplicate check."""
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The gauge, only once a value is set."""
        value = self._value
        if value is not None:
            yield GaugeMetricFamily(self.name, self.documentation, value=value)


class EdgeMetrics:
    """Every metric the edge service exports.

    Args:
        registry: where the metrics live; one per app.
        edge_share_window: answers over which ``hybridroute_edge_share`` is computed.
        edge_share_min: answers needed before ``hybridroute_edge_share`` is published (the monitor's
            ``min_window``; at most ``edge_share_window``, which it could not reach otherwise).
    """

    def __init__(self, registry: CollectorRegistry, edge_share_window: int = 1000, edge_share_min: int = 1) -> None:
        self.registry = registry
        self.requests = Counter(
            "hybridroute_requests", "Answered texts.", ("tier", "reason", "label"), registry=registry
        )
        self.http_requests = Counter(
            "hybridroute_http_requests",
            "HTTP requests by route (other: a path the service does not serve) and status class (2xx, 4xx, 5xx).",
            ("route", "status"),
            registry=registry,
        )
        self.errors = Counter("hybridroute_errors", "Failed HTTP requests by error type.", ("type",), registry=registry)
        self.request_latency = Histogram(
            "hybridroute_request_latency_seconds",
            "Server time per answered text until its answer was ready (queueing and batching included; the "
            "audit-commit wait is in hybridroute_audit_ack_seconds), as latency_ms in the answer and the audit log.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.audit_ack = Histogram(
            "hybridroute_audit_ack_seconds",
            "Time a classify request waited for its audit records to be committed before it was answered.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.edge_latency = Histogram(
            "hybridroute_edge_latency_seconds",
            "Edge model time per text (its share of the batch).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cloud_latency = Histogram(
            "hybridroute_cloud_latency_seconds",
            "Cloud call time for texts the cloud was asked about.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cost = Counter(
            "hybridroute_cost_usd",
            "Cost charged by the ledger, USD, by the tier that cost it (an escalated answer pays both).",
            ("tier",),
            registry=registry,
        )
        self.confidence = Histogram(
            "hybridroute_confidence", "Confidence of the answers.", buckets=CONFIDENCE_BUCKETS, registry=registry
        )
        self.edge_share = OptionalGauge(
            "hybridroute_edge_share",
            "Share of the recent answers given by the edge (absent until the monitor's min_window answers).",
            registry,
        )
        self.batch_size = Histogram(
            "hybridroute_batch_size",
            "Texts per model batch (micro-batching).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.audit_dropped = Counter(
            "hybridroute_audit_dropped", "Audit records dropped because the queue was full.", registry=registry
        )
        self.audit_failed = Counter(
            "hybridroute_audit_failed",
            "Audit records lost: the service stopped while the audit database still refused them (failed "
            "transactions are retried; see hybridroute_audit_failing).",
            registry=registry,
        )
        self.audit_ack_timeouts = Counter(
            "hybridroute_audit_ack_timeouts",
            "Requests answered before their audit record was committed (the wait timed out).",
            registry=registry,
        )
        self.reloads = Counter("hybridroute_reloads", "Model reload attempts.", ("outcome",), registry=registry)
        self.redactions = Counter(
            "hybridroute_redactions",
            "Personal data replaced before escalation, by entity type.",
            ("entity",),
            registry=registry,
        )
        self.model = Info("hybridroute_model", "The edge model being served.", registry=registry)
        self.monitor_health = Gauge(
            "hybridroute_monitor_health_score",
            "Health score 0-100 of the recent traffic, from the live monitor (100 while it has too little data).",
            registry=registry,
        )
        self.monitor_feedback_accuracy = OptionalGauge(
            "hybridroute_monitor_feedback_accuracy",
            "Accuracy of the recent answers that received feedback labels (absent while the monitor's window holds "
            "fewer than min_window answers or min_feedback labels).",
            registry,
        )
        self.monitor_drift_psi = Gauge(
            "hybridroute_monitor_drift_psi",
            "PSI of recent text lengths, unknown-token rates and confidences against the validation reference.",
            ("feature",),
            registry=registry,
        )
        self.monitor_drift_psi_noise = Gauge(
            "hybridroute_monitor_drift_psi_noise",
            "The PSI that sampling alone passes in 1% of windows of the current size (the monitor alerts on drift "
            "only above it and above the PSI threshold).",
            ("feature",),
            registry=registry,
        )
        self._share = SlidingShare(edge_share_window)
        self._share_min = min(edge_share_min, edge_share_window)
        self._drift_features: set[str] = set()
        self._noise_features: set[str] = set()
        self._drift_lock = threading.Lock()

    def observe_answer(
        self,
        tier: str,
        reason: str,
        label: str,
        confidence: float,
        cost: tuple[float, float],
        latency_s: float,
        edge_latency_s: float | None,
        cloud_latency_s: float | None,
    ) -> None:
        """Record one answered text.

        ``cost`` is (edge USD, cloud USD): each goes to its own tier's counter, whichever tier answered. A
        latency of None is unknown or, for the cloud, not incurred.
        """
        edge_cost, cloud_cost = cost
        self.requests.labels(tier, reason, label).inc()
        self.cost.labels("edge").inc(edge_cost)
        if cloud_cost > 0:  # no cloud series on a service that never paid the cloud
            self.cost.labels("cloud").inc(cloud_cost)
        self.confidence.observe(confidence)
        self.request_latency.observe(latency_s)
        if edge_latency_s is not None:
            self.edge_latency.observe(edge_latency_s)
        if cloud_latency_s is not None:
            self.cloud_latency.observe(cloud_latency_s)
        share, answers = self._share.observe(tier == "edge")
        if answers >= self._share_min:
            self.edge_share.set(share)

    def observe_monitor(
        self,
        health_score: float,
        feedback_accuracy: float | None,
        drift: dict[str, float],
        drift_noise: dict[str, float] | None = None,
    ) -> None:
        """Publish the live monitor's latest analysis.

        An unknown health score (NaN) leaves the last one. An unknown feedback accuracy (None, NaN: too few
        queries or labels, see :func:`published_feedback_accuracy`) is removed from the exposition, and so is a
        drift feature without a finite score (too few queries, no reference) or noise limit, so a stale value
        never keeps an alert firing.
        """
        if math.isfinite(health_score):
            self.monitor_health.set(health_score)
        if feedback_accuracy is not None and math.isfinite(feedback_accuracy):
            self.monitor_feedback_accuracy.set(feedback_accuracy)
        else:
            self.monitor_feedback_accuracy.clear()
        scores = {feature: value for feature, value in drift.items() if math.isfinite(value)}
        limits = {f: v for f, v in (drift_noise or {}).items() if f in scores and math.isfinite(v)}
        with self._drift_lock:
            self._drift_features = _replace_series(self.monitor_drift_psi, self._drift_features, scores)
            self._noise_features = _replace_series(self.monitor_drift_psi_noise, self._noise_features, limits)

    def observe_redactions(self, counts: dict[str, int]) -> None:
        """Count the entities redacted from one escalated text."""
        for entity, n in counts.items():
            self.redactions.labels(entity).inc(n)
