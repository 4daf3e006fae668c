"""What the edge app runs: model holder, micro-batcher, audit writer, metrics, and their start and stop.

:class:`EdgeService` lives on ``app.state.service`` (built by
:func:`hybridroute.serving.edge_app.create_app`, started and stopped by its
lifespan). Routes reach it through a dependency; nothing here is global.

What "acknowledged" means: a classify response is sent only after the audit
writer has committed the request's records, or has committed them into the
overflow counter because the queue was full (``X-Audit: committed`` or
``dropped``). So after ``kill -9`` every answered request is a row or is
counted in ``audit_meta.dropped``. The wait is bounded
(``audit_ack_timeout_s``): past it the response goes out with
``X-Audit: pending`` and ``hybridroute_audit_ack_timeouts_total`` counts it;
those few requests are the only ones a crash could lose uncounted. With
``audit_ack_timeout_s=0`` responses do not wait at all (``X-Audit: queued``).
The wait costs one group commit (WAL, ``synchronous=NORMAL``: no fsync per
commit), shared by every request answered meanwhile.

When the audit database fails (disk full, read-only) the service keeps
answering: the records stay queued and are retried (see
:class:`~hybridroute.monitoring.audit.AuditWriter`), responses say
``X-Audit: retrying`` without waiting, ``/readyz`` reports the database's error
under ``audit`` and ``hybridroute_audit_failing`` is 1 until a transaction
commits again. ``X-Audit: failed`` means the records were given up (only at
shutdown with the database still failing; counted in
``hybridroute_audit_failed_total``).

The live monitor (:class:`~hybridroute.monitoring.monitor.Monitor`) holds the
recent audit records in memory and analyzes them on ``GET /v1/monitor``. Each
record carries the text's length and unknown-token rate (computed on the batch
worker thread with the edge bundle's tokenizer, the one the drift reference
was built with), so input drift is checked on live traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, Gauge

from hybridroute.errors import ConfigError, HybridError
from hybridroute.monitoring.audit import (
    AuditRecord,
    AuditStore,
    AuditWriter,
    load_or_create_salt,
    open_audit_store,
    redact_url,
    text_hash,
)
from hybridroute.monitoring.drift import Reference, reference_for_run, text_profile
from hybridroute.monitoring.health import drift_noise
from hybridroute.monitoring.metrics import EdgeMetrics, published_feedback_accuracy
from hybridroute.monitoring.monitor import Monitor, MonitorReport
from hybridroute.routing.cascade import HybridClassifier, RoutedAnswer
from hybridroute.routing.ledger import PriceConfig, cloud_ran
from hybridroute.serving.batcher import MicroBatcher
from hybridroute.serving.cloud_app import ModelNotReady
from hybridroute.serving.edge_schemas import AuditUnavailable
from hybridroute.serving.edge_settings import SALT_FILE, EdgeSettings
from hybridroute.serving.reload import (
    BundleWatcher,
    ModelHolder,
    ReloadOutcome,
    ServedRouter,
    Stamp,
    check_longest_input,
    manifest_stamp,
    reload_edge,
    serves_bundle,
    warm_up,
)

logger = logging.getLogger(__name__)

QUEUED = "queued"  # X-Audit when responses do not wait for the commit
PENDING = "pending"  # X-Audit when the wait for the commit timed out
# The monitor's gauges are recomputed on a scrape at most this often: an analysis of the held records costs
# tens of ms, and Prometheus alert rules look at minutes anyway.
MONITOR_GAUGES_EVERY_S = 30.0


@dataclass(frozen=True)
class Answered:
    """One answer, the edge model that ran for it (a batch runs on one model) and its text's input profile.

    Attributes:
        answer: the routed answer.
        edge_model_version: the edge model that ran.
        text_length: characters in the text.
        unk_rate: share of its tokens the edge tokenizer could not place (None without a tokenizer).
        cloud_cost: the part of ``answer.cost`` the cloud charged (USD; 0 when the cloud did not run).
    """

    answer: RoutedAnswer
    edge_model_version: str
    text_length: int | None = None
    unk_rate: float | None = None
    cloud_cost: float = 0.0

    @property
    def cost_by_tier(self) -> tuple[float, float]:
        """(edge USD, cloud USD) of the answer's cost: an escalated answer paid both tiers.

        Example: cost 0.0146 of which the cloud charged 0.0136 -> (0.001, 0.0136)
        """
        return max(self.answer.cost - self.cloud_cost, 0.0), self.cloud_cost


def cloud_charge(answer: RoutedAnswer, prices: PriceConfig) -> float:
    """What the cloud charged for one answer: its price when it ran (escalated, or called anyway), else 0.

    The ledger's own rule (:func:`~hybridroute.routing.ledger.cloud_ran`), so edge and cloud parts add up to
    ``answer.cost``.

    Example: an escalation whose cloud call failed after running (a charged fallback) -> prices.cloud_per_query
    """
    return prices.cloud_per_query if cloud_ran(answer.tier, answer.cloud_called or None) else 0.0


def latency_split(answer: RoutedAnswer) -> tuple[float | None, float | None]:
    """(edge ms, cloud ms) for one answer; None where unknown or, for the cloud, not asked.

    Uses the cascade's own split when it reports one (``edge_latency_ms`` and
    ``cloud_latency_ms`` on :class:`RoutedAnswer`). Otherwise an answer the
    cloud did not touch is all edge time, and for one it touched the split is
    unknown (its whole latency then counts as cloud time, an upper bound).

    Example: an edge-only answer of 3 ms -> (3.0, None)
    """
    edge = getattr(answer, "edge_latency_ms", None)
    if edge is not None:
        cloud = getattr(answer, "cloud_latency_ms", None)
        return float(edge), (float(cloud) if cloud is not None else None)
    if not answer.cloud_called and answer.tier.value == "edge" and not answer.fallback:
        return answer.latency_ms, None
    return None, answer.latency_ms


def make_batch_classifier(holder: ModelHolder) -> Callable[[list[str]], list[Answered]]:
    """The batcher's model call: read the served classifier once, so the whole batch runs on one model."""

    def classify(texts: list[str]) -> list[Answered]:
        hybrid = holder.current
        if hybrid is None:
            raise ModelNotReady("the model is not loaded yet; retry when GET /readyz answers 200")
        version, prices = hybrid.edge.model_version, hybrid.ledger.prices
        answers = hybrid.classify(texts)
        # Here, on the worker thread, rather than on the event loop: the extra tokenization costs tens of µs a text.
        lengths, unk_rates = text_profile(texts, getattr(hybrid.edge, "tokenizer", None))
        return [
            Answered(answer, version, length, unk, cloud_charge(answer, prices))
            for answer, length, unk in zip(answers, lengths, unk_rates, strict=True)
        ]

    return classify


def open_hybrid_for(settings: EdgeSettings) -> HybridClassifier:
    """Load edge, router and cloud from the run folder (the default loader).

    Raises:
        ArtifactError: among others, the edge model cannot take a text of its bundle's ``max_length`` tokens.
    """
    from hybridroute.hybrid import open_hybrid

    hybrid = open_hybrid(settings.hybrid_settings())
    try:
        check_longest_input(hybrid.edge)
    except BaseException:
        close = getattr(hybrid.cloud, "close", None)
        if callable(close):
            close()
        raise
    return hybrid


def audit_salt(settings: EdgeSettings) -> bytes:
    """The salt for text hashes: ``settings.hash_salt``, else the run's salt file (created on first use)."""
    if settings.hash_salt is not None:
        return settings.hash_salt.encode("utf-8")
    return load_or_create_salt(settings.run / SALT_FILE)


def open_edge_audit(settings: EdgeSettings) -> AuditStore:
    """Open the audit store and check the hashing salt before serving, so a bad ``--audit-db`` fails fast.

    The caller closes the store (pass it to :func:`~hybridroute.serving.edge_app.create_app`).

    Raises:
        ConfigError: the database cannot be opened (unknown scheme, unopenable path) or the salt is unusable.
        OSError: the salt file cannot be read or created.
    """
    url = settings.audit_url
    try:
        store = open_audit_store(url)
    except OSError as exc:  # e.g. its folder is a regular file
        raise ConfigError(
            f"cannot open the audit database {redact_url(url)}: {exc.strerror or exc}; "
            "give a writable file path, sqlite:///PATH or postgresql://..."
        ) from exc
    try:
        audit_salt(settings)
    except BaseException:
        store.close()
        raise
    return store


class EdgeService:
    """The running parts of one edge app.

    Args:
        settings: limits, batching, audit and reload settings.
        hybrid: a ready classifier; None loads one with ``load`` in the background at startup.
        registry: the Prometheus registry for this app.
        audit: an audit store to use (the caller closes it); None opens ``settings.audit_url``.
        load: builds the classifier from settings (tests pass a slow or failing one).
        new_id: makes request ids.
        wall_clock: unix seconds, for audit times.
        clock: monotonic seconds, for latencies.
    """

    def __init__(
        self,
        settings: EdgeSettings,
        hybrid: HybridClassifier | None,
        registry: CollectorRegistry,
        audit: AuditStore | None,
        load: Callable[[EdgeSettings], HybridClassifier],
        new_id: Callable[[], str],
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.settings, self.registry, self.load = settings, registry, load
        self.new_id, self.wall_clock, self.clock = new_id, wall_clock, clock
        self.holder = ModelHolder(hybrid)
        self.metrics = EdgeMetrics(registry, settings.edge_share_window, settings.monitor_thresholds.min_window)
        self.store: AuditStore | None = audit
        self._owns_store = audit is None
        self.writer: AuditWriter | None = None
        self.batcher: MicroBatcher[Answered] | None = None
        self.watcher: BundleWatcher | None = None
        self.monitor = Monitor(settings.monitor_thresholds, settings.monitor_config)
        self.salt = b""
        self.ready = False
        self.state = "starting"  # starting, loading, warming, ready, failed: ..., draining
        self._loader: asyncio.Task[None] | None = None
        self._reference_refresh: asyncio.Task[None] | None = None
        self._served_bundle = settings.edge_dir  # the bundle the served edge model came from (reloads change it)
        self._router: ServedRouter | None = None  # the router read at startup: reloads are checked against it
        self._reloads = 0  # successful reloads so far: a drift reference built for an earlier model is dropped
        self._gauges_at: float | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the audit log, start writer and batcher, and load and warm the model in the background."""
        if self.store is None:
            self.store = await run_in_threadpool(open_audit_store, self.settings.audit_url)
        self.salt = await run_in_threadpool(audit_salt, self.settings)
        self.writer = AuditWriter(
            self.store,
            self.settings.audit_queue,
            self.settings.audit_batch,
            on_dropped=self.metrics.audit_dropped.inc,
            on_failed=self.metrics.audit_failed.inc,
        )
        self.writer.start()
        self._export_queue_depths()
        self.batcher = MicroBatcher(
            make_batch_classifier(self.holder),
            self.settings.max_batch,
            self.settings.max_wait_ms,
            on_batch=lambda size, _seconds: self.metrics.batch_size.observe(size),
            clock=self.clock,
            workers=self.settings.workers,
        )
        self.batcher.start()
        self._loader = asyncio.get_running_loop().create_task(self._load_and_warm(), name="model-loader")

    async def stop(self) -> None:
        """Drain: answer what is queued, commit every audit record, release the model and the store."""
        self.ready, self.state = False, "draining"
        for task in (self._loader, self._reference_refresh):
            if task is not None and not task.done():
                task.cancel()
        # Each step runs whatever failed before it: queued requests are answered, audit records committed.
        async with contextlib.AsyncExitStack() as steps:  # the callbacks run last pushed, first
            steps.callback(self._close_cloud)
            if self.store is not None and self._owns_store:
                steps.push_async_callback(run_in_threadpool, self.store.close)
            if self.writer is not None:
                steps.push_async_callback(run_in_threadpool, self.writer.close)
            if self.batcher is not None:
                steps.push_async_callback(self.batcher.close)
            if self.watcher is not None:
                await self.watcher.stop()

    def _export_queue_depths(self) -> None:
        depth = Gauge("hybridroute_audit_queue_depth", "Audit records waiting to be written.", registry=self.registry)
        depth.set_function(lambda: self.writer.queued if self.writer else 0)
        pending = Gauge("hybridroute_batcher_pending", "Requests waiting for a model batch.", registry=self.registry)
        pending.set_function(lambda: self.batcher.pending if self.batcher else 0)
        failing = Gauge(
            "hybridroute_audit_failing",
            "1 while the audit database refuses transactions (records are kept and retried), else 0.",
            registry=self.registry,
        )
        failing.set_function(lambda: float(self.writer.failing) if self.writer else 0.0)

    async def _load_and_warm(self) -> None:
        try:
            # Before loading: a bundle renamed into place while the model loads and warms up is then a change.
            baseline = await run_in_threadpool(manifest_stamp, self.settings.edge_dir)
            if self.holder.current is None:
                self.state = "loading"
                self.holder.set(await run_in_threadpool(self.load, self.settings))
            self._router = await run_in_threadpool(ServedRouter.of_run, self.settings.run, self.settings.policy)
            self.state = "warming"
            hybrid = self.holder.current
            if hybrid is not None:
                await run_in_threadpool(warm_up, hybrid.edge, self.settings.warmup_rounds)
            current = self.holder.current  # not ``hybrid``: an admin reload may have finished during the warm-up
            if current is not None:
                self.metrics.model.info({"model_version": current.edge.model_version})
            self.state = "loading the drift reference"
            await self._load_reference()
        except Exception as exc:  # the service stays up, unready, and says why on /readyz
            logger.exception("the edge model could not be loaded")
            self.state = f"failed: {type(exc).__name__}: {exc}"
            return
        await self._start_watcher(baseline)
        self.ready, self.state = True, "ready"
        logger.info(
            "edge service ready (model %s)", self.holder.current.edge.model_version if self.holder.current else "?"
        )

    def _drift_reference(self, bundle: Path) -> Reference | None:
        """The validation reference of the run scored by ``bundle`` for the drift check; None (logged) if none."""
        if not self.settings.monitor_reference:
            return None
        try:  # one thread: built once per model, beside serving
            return reference_for_run(self.settings.run, threads=1, bundle=bundle)
        except (HybridError, OSError) as exc:
            logger.warning("monitoring without a drift reference: %s", exc)
            return None
        except Exception as exc:  # a malformed reference file must not leave a loaded model unready
            logger.warning("monitoring without a drift reference (%s: %s)", type(exc).__name__, exc)
            return None

    async def _load_reference(self) -> None:
        """Give the monitor the reference of the bundle served now, unless a reload replaced it meanwhile."""
        reloads, bundle = self._reloads, self._served_bundle
        reference = await run_in_threadpool(self._drift_reference, bundle)
        if reloads == self._reloads:
            self.monitor.reference = reference

    async def _start_watcher(self, baseline: Stamp | None) -> None:
        """Watch the run's edge bundle, taking ``baseline`` (stamped before loading) as the served manifest."""
        if not self.settings.watch:
            return
        hybrid = self.holder.current
        edge_dir = self.settings.edge_dir
        if hybrid is not None and not await run_in_threadpool(serves_bundle, hybrid.edge, edge_dir):
            logger.info("the bundle in %s is not the one loaded at startup; the watcher reloads it", edge_dir)
            baseline = None  # the first check reloads whatever manifest is there
        self.watcher = BundleWatcher(edge_dir, self.reload, self.settings.watch_interval_s, seen=baseline)
        self.watcher.start()

    def _close_cloud(self) -> None:
        hybrid = self.holder.current
        close = getattr(hybrid.cloud, "close", None) if hybrid is not None else None
        if callable(close):
            close()

    # ------------------------------------------------------------ requests

    def labels(self) -> tuple[str, ...]:
        """The labels answers can carry."""
        hybrid = self.holder.current
        if hybrid is None:
            raise ModelNotReady("the model is not loaded yet; retry when GET /readyz answers 200")
        return tuple(hybrid.edge.labels)

    async def classify(self, texts: Sequence[str]) -> list[Answered]:
        """Answer texts through the micro-batcher."""
        if self.batcher is None or not self.ready:
            raise ModelNotReady(f"the service is not ready ({self.state}); retry when GET /readyz answers 200")
        return await self.batcher.submit(texts)

    def records(
        self, texts: Sequence[str], answered: Sequence[Answered], ids: Sequence[str], latency_ms: float
    ) -> list[AuditRecord]:
        """Audit records for one request's answers."""
        now = self.wall_clock()
        records = []
        for text, item, request_id in zip(texts, answered, ids, strict=True):
            a = item.answer
            edge_ms, cloud_ms = latency_split(a)
            records.append(
                AuditRecord(
                    now,
                    request_id,
                    text_hash(text, self.salt),
                    text if self.settings.store_raw_text else None,
                    a.label,
                    a.confidence,
                    a.tier.value,
                    a.reason,
                    latency_ms,
                    edge_ms,
                    cloud_ms,
                    a.cost,
                    a.model_version,
                    item.edge_model_version,
                    a.edge_label,
                    a.edge_confidence,
                    a.fallback,
                    redactions=json.dumps(a.redactions, sort_keys=True) if a.redactions else None,
                    text_length=item.text_length,
                    unk_rate=item.unk_rate,
                )
            )
        return records

    async def audit(self, records: Sequence[AuditRecord]) -> str:
        """Hand records to the writer and wait (bounded) until they are durable; return the X-Audit status."""
        if self.writer is None:
            raise ModelNotReady("the audit log is not open yet")
        if self.settings.audit_ack_timeout_s == 0:
            self.writer.submit(records)
            return QUEUED
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def done(status: str) -> None:
            loop.call_soon_threadsafe(_resolve, future, status)

        self.writer.submit(records, done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.settings.audit_ack_timeout_s)
        except asyncio.TimeoutError:
            self.metrics.audit_ack_timeouts.inc()
            return PENDING

    def observe(self, answered: Sequence[Answered], latency_s: float) -> None:
        """Metrics for one request's answers; ``latency_s`` is the one their records carry (``latency_ms``)."""
        for item in answered:
            a = item.answer
            edge_ms, cloud_ms = latency_split(a)
            self.metrics.observe_answer(
                a.tier.value,
                a.reason,
                a.label,
                a.confidence,
                item.cost_by_tier,
                latency_s,
                None if edge_ms is None else edge_ms / 1000.0,
                None if cloud_ms is None else cloud_ms / 1000.0,
            )
            self.metrics.observe_redactions(a.redactions)

    async def refresh_monitor_gauges(self) -> None:
        """Publish the live monitor's health, feedback accuracy and drift as gauges (at most every 30 s).

        Each is published only where the monitor judges it (see :meth:`EdgeMetrics.observe_monitor`), with the
        drift's sampling-noise limits beside the PSI, so the shipped rules alert when the monitor does.
        """
        now = self.clock()
        if self._gauges_at is not None and now - self._gauges_at < MONITOR_GAUGES_EVERY_S:
            return
        self._gauges_at = now
        report, noise = await run_in_threadpool(self._monitor_analysis)
        accuracy = published_feedback_accuracy(report.window, self.monitor.thresholds)
        self.metrics.observe_monitor(report.health.score, accuracy, report.drift, noise)

    def _monitor_analysis(self) -> tuple[MonitorReport, dict[str, float]]:
        """The monitor's report and, per drift feature it scored, the PSI sampling alone reaches."""
        report, reference = self.monitor.report(), self.monitor.reference
        if reference is None or not report.drift:
            return report, {}
        limits = drift_noise(report.window, reference, self.monitor.config.drift_bins)
        return report, {feature: limit for feature, (limit, _values) in limits.items() if feature in report.drift}

    async def add_feedback(self, request_id: str, label: str) -> bool:
        """Store the true label of an answered text (audit log and live monitor); False when the id is unknown.

        Raises:
            AuditUnavailable: the audit database refused the write (read-only, full, unreachable).
        """
        at = self.wall_clock()
        found = await self._store_feedback(request_id, label, at)
        if not found and self.writer is not None:
            # The id may be one just answered whose record is not committed yet (X-Audit: queued or pending):
            # wait for what is queued now to be committed (one group commit), then look again.
            await self._audit_flushed(self.settings.audit_ack_timeout_s or 1.0)
            found = await self._store_feedback(request_id, label, at)
        if found:
            self.monitor.add_feedback(request_id, label, at)
        return found

    async def _audit_flushed(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until the audit records queued now are committed or given up."""
        if self.writer is None:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()

        def done(status: str) -> None:
            loop.call_soon_threadsafe(_resolve, future, status)

        self.writer.submit([], done)  # answered once everything queued before it is committed
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout_s)

    async def _store_feedback(self, request_id: str, label: str, at: float) -> bool:
        """Write feedback to the audit store; False when the id is not in it."""
        if self.store is None:
            raise ModelNotReady("the audit log is not open yet")
        try:
            return await run_in_threadpool(self.store.add_feedback, request_id, label, at)
        except self.store.database_errors as exc:  # anything else is a bug: the app answers 500 and logs it
            logger.warning(
                "feedback for %s not stored: the audit database refused it (%s: %s)",
                request_id,
                type(exc).__name__,
                exc,
            )
            raise AuditUnavailable(
                f"the audit database refuses writes, so the feedback was not stored ({type(exc).__name__}: {exc}); "
                "retry once it accepts writes again"
            ) from exc

    async def reload(self, bundle: Path | None = None) -> ReloadOutcome:
        """Swap in a verified edge bundle (the run's edge folder by default); count the outcome."""
        try:
            outcome = await run_in_threadpool(
                functools.partial(reload_edge, router=self._router),
                self.holder,
                bundle or self.settings.edge_dir,
                self.settings.threads,
            )
        except HybridError:
            self.metrics.reloads.labels("refused").inc()
            raise
        self.metrics.reloads.labels("ok").inc()
        self.metrics.model.info({"model_version": outcome.model_version})
        # The confidence reference belongs to a model: rebuild it for the bundle just loaded, in the background.
        self._served_bundle, self._reloads = outcome.bundle, self._reloads + 1
        if self._reference_refresh is not None and not self._reference_refresh.done():
            self._reference_refresh.cancel()  # it was for the model just replaced
        self._reference_refresh = asyncio.get_running_loop().create_task(
            self._load_reference(), name="monitor-reference"
        )
        return outcome

    def describe(self) -> dict[str, Any]:
        """Readiness details for /readyz."""
        hybrid = self.holder.current
        return {
            "status": "ready",
            "model_version": hybrid.edge.model_version if hybrid else None,
            "labels": list(hybrid.edge.labels) if hybrid else [],
            "cloud": hybrid is not None and hybrid.cloud is not None,
            "audit": self.writer.health() if self.writer else None,  # ready even while it fails: answers go on
        }


def _resolve(future: asyncio.Future[str], status: str) -> None:
    if not future.done():
        future.set_result(status)
