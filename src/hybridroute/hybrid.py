"""Open a ready-to-use hybrid classifier from a run folder.

Edge bundle + calibrated router (``router.json``) + cloud tier (over HTTP when
a URL is given, else the run's cloud bundle in process, else none) + ledger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.errors import RoutingError
from hybridroute.redaction import RedactionConfig, Redactor
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.ledger import CostLedger, PriceConfig
from hybridroute.routing.policies import POLICIES
from hybridroute.routing.router_config import RouterConfig, build_policy, load_router
from hybridroute.runs import RunLayout
from hybridroute.runtime.classifier import EdgeClassifier

logger = logging.getLogger(__name__)

DEFAULT_ROUTER = RouterConfig(policy="confidence", threshold=0.5)  # escalate answers the edge is unsure of


@dataclass(frozen=True)
class HybridSettings:
    """Where the parts of a hybrid classifier come from."""

    run: Path
    cloud_url: str | None = None  # None: the run's cloud bundle in process, if there is one
    policy: str | None = None  # overrides router.json's policy (its calibrated threshold is kept if it fits)
    prices: PriceConfig = field(default_factory=PriceConfig)
    cloud_timeout_s: float = 1.0
    cloud_budget_s: float = 2.0
    cloud_max_texts: int = 64  # per request to cloud_url: at most the cloud service's --max-batch
    threads: int = 0
    seed: int = 0
    redaction: RedactionConfig = field(default_factory=RedactionConfig)  # on unless configured off


def router_for(layout: RunLayout, policy: str | None) -> RouterConfig:
    """The run's calibrated router, the default one, or a named reference policy."""
    router = load_router(layout.router) if layout.router.is_file() else DEFAULT_ROUTER
    if policy is None or policy == router.policy:
        return router
    if policy in {"always-edge", "always-cloud", "tutorial"}:
        return RouterConfig(policy=policy, features=router.features, temperature=router.temperature)
    if policy not in POLICIES:
        raise RoutingError(f"unknown routing policy {policy!r}; available: {', '.join(sorted(POLICIES))}")
    raise RoutingError(
        f"policy {policy!r} needs calibration: run `hybridroute calibrate --run {layout.root} --policy {policy}`; "
        f"this run's router.json holds {router.policy!r}"
    )


def open_cloud(layout: RunLayout, settings: HybridSettings, labels: tuple[str, ...]) -> Any:
    """An HTTP client for ``cloud_url``, the in-process cloud bundle, or None when neither exists."""
    if settings.cloud_url:
        from hybridroute.serving.cloud_client import ClientConfig, CloudClient

        config = ClientConfig(
            settings.cloud_url,
            timeout_s=settings.cloud_timeout_s,
            budget_s=settings.cloud_budget_s,
            max_texts=settings.cloud_max_texts,
        )
        return CloudClient(config, expected_labels=labels)
    if layout.cloud.is_dir():
        from hybridroute.serving.cloud_client import InProcessCloud

        return InProcessCloud(EdgeClassifier.from_dir(layout.cloud, threads=settings.threads))
    logger.warning("no cloud tier: %s has no cloud bundle and no --cloud-url was given", layout.root)
    return None


def open_hybrid(settings: HybridSettings) -> HybridClassifier:
    """Load edge, router and cloud for a run folder."""
    layout = RunLayout(Path(settings.run))
    edge = EdgeClassifier.from_dir(layout.require(layout.edge, "train"), threads=settings.threads)
    router = router_for(layout, settings.policy)
    policy = build_policy(router, np.random.default_rng(settings.seed))
    cloud = open_cloud(layout, settings, edge.labels)
    redactor = Redactor(settings.redaction) if settings.redaction.enabled else None
    if redactor is None:
        logger.warning("PII redaction is OFF (RedactionConfig.enabled=False): escalated texts reach the cloud as typed")
    return HybridClassifier(edge, policy, cloud, CostLedger(settings.prices), router.features, redactor=redactor)
