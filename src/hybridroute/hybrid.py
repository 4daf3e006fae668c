"""Open a ready-to-use hybrid classifier from a run folder.

Edge bundle + calibrated router (``router.json``) + cloud tier (over HTTP when
a URL is given, else the run's cloud bundle in process, else none) + ledger.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.data import some_labels
from hybridroute.errors import ArtifactError, RoutingError
from hybridroute.redaction import RedactionConfig, Redactor
from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.ledger import CostLedger, PriceConfig
from hybridroute.routing.policies import POLICIES
from hybridroute.routing.router_config import THRESHOLD_MEANING, RouterConfig, build_policy, load_router
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
        return RouterConfig(
            policy=policy,
            features=router.features,
            temperature=router.temperature,
            edge_model_version=router.edge_model_version,
        )
    if policy not in POLICIES:
        raise RoutingError(f"unknown routing policy {policy!r}; available: {', '.join(sorted(POLICIES))}")
    raise RoutingError(
        f"policy {policy!r} needs calibration: run `hybridroute calibrate --run {layout.root} --policy {policy}`; "
        f"this run's router.json holds {router.policy!r}"
    )


def stale_router_message(
    router: RouterConfig, edge: EdgeClassifier, layout: RunLayout, bundle: Path | None = None
) -> str | None:
    """Why ``router.json`` does not fit the edge model in use, loaded from ``bundle``; None: it fits.

    ``compress --auto`` refits the temperature and retraining replaces the model; the threshold still works,
    but no longer means what it was tuned for. Policies without a tuned threshold (always-edge, always-cloud,
    tutorial) have nothing to go stale. ``bundle`` defaults to the run's edge folder.

    Example: a router calibrated for model "aaa" at temperature 1.5, edge model "bbb" at 1.2
        -> "RUN/router.json was calibrated for edge model aaa at temperature 1.5, but RUN/edge is model bbb ..."
    """
    if router.policy not in THRESHOLD_MEANING:
        return None
    recorded = router.edge_model_version
    other_model = recorded is not None and recorded != edge.model_version
    other_temperature = not math.isclose(router.temperature, edge.temperature, rel_tol=1e-6)
    if not (other_model or other_temperature):
        return None
    return (
        f"{layout.router} was calibrated for edge model {recorded or '(not recorded)'} at temperature "
        f"{router.temperature:.6g}, but {bundle or layout.edge} is model {edge.model_version} at temperature "
        f"{edge.temperature:.6g}: its threshold no longer fits; run `hybridroute calibrate --run {layout.root}`"
    )


def warn_if_router_is_stale(router: RouterConfig, edge: EdgeClassifier, layout: RunLayout) -> None:
    """Warn when ``router.json`` was calibrated on another edge model or temperature than the bundle in use.

    Serving goes on: this only logs (see :func:`stale_router_message`).
    """
    message = stale_router_message(router, edge, layout)
    if message is not None:
        logger.warning("%s", message)


def check_cloud_labels(cloud: Sequence[str], edge: Sequence[str], cloud_dir: Path, edge_dir: Path) -> None:
    """Refuse a cloud bundle whose label set differs from the edge's: its answers would name unknown classes.

    Example: check_cloud_labels(("a", "x"), ("a", "b"), ...) -> ArtifactError("... only the cloud has ['x'] ...")
    """
    if set(cloud) == set(edge):
        return
    raise ArtifactError(
        f"the cloud bundle {cloud_dir} predicts {some_labels(sorted(cloud))}, the edge bundle {edge_dir} predicts "
        f"{some_labels(sorted(edge))} (only the cloud has {some_labels(sorted(set(cloud) - set(edge)))}, "
        f"only the edge has {some_labels(sorted(set(edge) - set(cloud)))}); the cloud tier is stale: retrain it "
        f"with `hybridroute train --tier cloud --data FILE --out {cloud_dir.parent}`"
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

        cloud = EdgeClassifier.from_dir(layout.cloud, threads=settings.threads)
        check_cloud_labels(cloud.labels, labels, layout.cloud, layout.edge)
        return InProcessCloud(cloud)
    logger.warning("no cloud tier: %s has no cloud bundle and no --cloud-url was given", layout.root)
    return None


def open_hybrid(settings: HybridSettings) -> HybridClassifier:
    """Load edge, router and cloud for a run folder."""
    layout = RunLayout.open(Path(settings.run))
    edge = EdgeClassifier.from_dir(layout.require(layout.edge, "train"), threads=settings.threads)
    router = router_for(layout, settings.policy)
    if layout.router.is_file():
        warn_if_router_is_stale(router, edge, layout)
    policy = build_policy(router, np.random.default_rng(settings.seed))
    cloud = open_cloud(layout, settings, edge.labels)
    redactor = Redactor(settings.redaction) if settings.redaction.enabled else None
    if redactor is None:
        logger.warning("PII redaction is OFF (RedactionConfig.enabled=False): escalated texts reach the cloud as typed")
    return HybridClassifier(edge, policy, cloud, CostLedger(settings.prices), router.features, redactor=redactor)
