"""How the edge service runs: one frozen, validated settings object."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hybridroute.config import check_positive, check_range
from hybridroute.errors import ConfigError
from hybridroute.hybrid import HybridSettings
from hybridroute.monitoring.thresholds import MonitorConfig, MonitorThresholds
from hybridroute.redaction import RedactionConfig
from hybridroute.routing.ledger import PriceConfig
from hybridroute.serving.schemas import default_body_limit

AUDIT_FILE = "audit.sqlite"
SALT_FILE = "audit.salt"


@dataclass(frozen=True)
class EdgeSettings:
    """Settings of the edge service.

    Attributes:
        run: run folder (edge bundle in RUN/edge, optional router.json and cloud bundle).
        cloud_url: cloud service URL; None uses the run's cloud bundle in process, if any.
        policy: overrides router.json's policy (always-edge, always-cloud, tutorial).
        max_batch: most texts per model call (micro-batching).
        max_wait_ms: longest a request waits for others to share its batch.
        workers: model batches that may run at once, each on its own thread (see ``threads``).
        max_chars: most characters per text (413 beyond); the tokenizer truncates for the model.
        max_texts: most texts per request (413 beyond).
        max_body_bytes: most bytes in a classify body (413 beyond, before the body is read when its
            Content-Length says so); None: room for ``max_texts`` texts of ``max_chars`` characters, each counted
            as twelve JSON bytes, an escaped emoji (see :func:`~hybridroute.serving.schemas.default_body_limit` and
            :attr:`body_limit`).
        audit_db: file path, ``sqlite:///PATH`` or ``postgresql://...``; None: RUN/audit.sqlite.
        store_raw_text: keep raw texts in the audit log (off: only a salted hash).
        hash_salt: secret for text hashes; None: read or create RUN/audit.salt.
        audit_queue: most audit records waiting to be written; overflow is dropped and counted.
        audit_batch: most records per audit transaction.
        audit_ack_timeout_s: longest a response waits for its audit commit before answering anyway.
        admin_token: bearer token for POST /admin/reload; None disables reloading.
        watch: reload when RUN/edge/manifest.json changes.
        watch_interval_s: how often the watched manifest is checked.
        warmup_rounds: model calls before the service reports ready.
        edge_share_window: answers over which the edge-share gauge is computed.
        threads: ONNX Runtime intra-op threads per batch (0: its default, one per core).
        prices: what each tier costs.
        redaction: what is replaced in texts before they go to the cloud.
        monitor_thresholds: the live monitor's alert limits (``GET /v1/monitor``).
        monitor_config: how the live monitor windows recent traffic (it keeps ``window_size × trend_windows``).
        monitor_reference: compare live inputs and confidences with the run's validation reference (drift);
            it is read from RUN/monitor_reference.json, or built there once at startup.
    """

    run: Path
    cloud_url: str | None = None
    policy: str | None = None
    max_batch: int = 32  # one ONNX call for 32 short texts costs little more than for a few
    max_wait_ms: float = 2.0  # small against the 50 ms p99 target; batches form mostly while a batch runs
    workers: int = 1
    max_chars: int = 10_000  # far above any customer message; bounds work and memory per request
    max_texts: int = 64
    max_body_bytes: int | None = None
    audit_db: str | None = None
    store_raw_text: bool = False  # raw customer text is personal data: opt in
    hash_salt: str | None = None
    audit_queue: int = 10_000  # seconds of traffic at the target rate: absorbs a slow disk, bounds memory
    audit_batch: int = 512
    audit_ack_timeout_s: float = 1.0
    admin_token: str | None = None
    watch: bool = False
    watch_interval_s: float = 2.0
    warmup_rounds: int = 3
    edge_share_window: int = 1000
    threads: int = 0
    prices: PriceConfig = field(default_factory=PriceConfig)
    redaction: RedactionConfig = field(default_factory=RedactionConfig)  # on; off only when configured off
    monitor_thresholds: MonitorThresholds = field(default_factory=MonitorThresholds)
    monitor_config: MonitorConfig = field(default_factory=MonitorConfig)
    monitor_reference: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        check_range("max_batch", self.max_batch, 1, 4096)
        check_range("max_wait_ms", self.max_wait_ms, 0.0, 1000.0)
        check_range("workers", self.workers, 1, 256)
        check_range("max_chars", self.max_chars, 1, 10_000_000)
        check_range("max_texts", self.max_texts, 1, 4096)
        if self.max_body_bytes is not None:
            check_range("max_body_bytes", self.max_body_bytes, 1, 2**40)
        check_range("audit_queue", self.audit_queue, 1, 10_000_000)
        if self.audit_queue < self.max_texts:
            raise ConfigError(
                f"audit_queue (--audit-queue) is {self.audit_queue}, fewer than max_texts (--max-texts, "
                f"{self.max_texts}): the audit records of a request with more texts than the queue holds would "
                f"always be dropped; give an audit_queue of at least {self.max_texts}"
            )
        check_range("audit_batch", self.audit_batch, 1, 100_000)
        check_range("audit_ack_timeout_s", self.audit_ack_timeout_s, 0.0, 60.0)
        check_positive("watch_interval_s", self.watch_interval_s)
        check_range("warmup_rounds", self.warmup_rounds, 0, 100)
        check_range("edge_share_window", self.edge_share_window, 1, 10_000_000)
        check_range("threads", self.threads, 0, 1024)
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise ConfigError(f"admin_token must hold at least 16 characters, got {len(self.admin_token)}")
        if self.hash_salt is not None and not self.hash_salt:
            raise ConfigError("hash_salt must not be empty (leave it unset to use RUN/audit.salt)")
        window, least = self.monitor_config.window_size, self.monitor_thresholds.min_window
        if self.monitor_config.window_seconds is None and window < least:
            raise ConfigError(
                f"the live monitor's windows hold {window} answers, fewer than min_window ({least}): they would "
                f"never get a verdict; lower min_window to {window} or less, or make the windows larger"
            )

    @property
    def body_limit(self) -> int:
        """Most bytes in a classify body: ``max_body_bytes``, or what the text limits need."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return default_body_limit(self.max_texts, self.max_chars)

    @property
    def audit_url(self) -> str:
        """Where the audit log lives."""
        return self.audit_db if self.audit_db is not None else str(self.run / AUDIT_FILE)

    @property
    def edge_dir(self) -> Path:
        """The edge bundle folder that reloads read and the watcher watches."""
        return self.run / "edge"

    def hybrid_settings(self) -> HybridSettings:
        """The settings :func:`hybridroute.hybrid.open_hybrid` needs."""
        return HybridSettings(
            self.run, self.cloud_url, self.policy, self.prices, threads=self.threads, redaction=self.redaction
        )
