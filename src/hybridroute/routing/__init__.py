"""Routing: decide per query whether the edge answer stands or the cloud is asked.

Pure and numpy-only: features of the edge answer, policies, threshold
calibration, cascade curves and the cost ledger. No I/O beyond reading and
writing ``router.json``.
"""

from hybridroute.routing.calibrate import (
    calibrate_router,
    confidence_threshold_for_cloud_share,
    threshold_for_accuracy,
    threshold_for_cloud_share,
)
from hybridroute.routing.curve import apgr, cascade_curve, cpt
from hybridroute.routing.features import (
    ESCALATION_KEYWORDS,
    FEATURE_NAMES,
    UNCERTAINTY_WORDS,
    EdgeSignal,
    FeatureConfig,
    complexity_score,
    feature_matrix,
    feature_vector,
    make_signal,
)
from hybridroute.routing.learned import LogisticModel, fit_logistic
from hybridroute.routing.ledger import CostLedger, LedgerSummary, PriceConfig
from hybridroute.routing.policies import (
    POLICIES,
    AlwaysCloud,
    AlwaysEdge,
    ConfidencePolicy,
    Decision,
    LearnedPolicy,
    RandomPolicy,
    RoutingPolicy,
    TutorialPolicy,
    make_policy,
)
from hybridroute.routing.router_config import (
    ROUTER_FILE,
    RouterConfig,
    RouterTarget,
    ValidationMetrics,
    build_policy,
    load_router,
    save_router,
)

__all__ = [
    "ESCALATION_KEYWORDS",
    "FEATURE_NAMES",
    "POLICIES",
    "ROUTER_FILE",
    "UNCERTAINTY_WORDS",
    "AlwaysCloud",
    "AlwaysEdge",
    "ConfidencePolicy",
    "CostLedger",
    "Decision",
    "EdgeSignal",
    "FeatureConfig",
    "LearnedPolicy",
    "LedgerSummary",
    "LogisticModel",
    "PriceConfig",
    "RandomPolicy",
    "RouterConfig",
    "RouterTarget",
    "RoutingPolicy",
    "TutorialPolicy",
    "ValidationMetrics",
    "apgr",
    "build_policy",
    "calibrate_router",
    "cascade_curve",
    "complexity_score",
    "confidence_threshold_for_cloud_share",
    "cpt",
    "feature_matrix",
    "feature_vector",
    "fit_logistic",
    "load_router",
    "make_policy",
    "make_signal",
    "save_router",
    "threshold_for_accuracy",
    "threshold_for_cloud_share",
]
