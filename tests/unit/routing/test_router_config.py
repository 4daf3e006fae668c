from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing.features import FEATURE_NAMES, FeatureConfig, make_signal
from hybridroute.routing.learned import LogisticModel
from hybridroute.routing.policies import (
    POLICIES,
    AlwaysCloud,
    AlwaysEdge,
    ConfidencePolicy,
    LearnedPolicy,
    RandomPolicy,
    TutorialPolicy,
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
from hybridroute.types import Tier

WIDTH = len(FEATURE_NAMES)


def model() -> LogisticModel:
    weights = np.linspace(-1.0, 1.0, WIDTH) / 3  # floats that do not print short: a real round-trip test
    return LogisticModel(weights, 0.1234567891234, np.full(WIDTH, 0.5), np.full(WIDTH, 2.0), FEATURE_NAMES)


def learned_router() -> RouterConfig:
    return RouterConfig(
        policy="learned",
        threshold=0.4218750001,
        target=RouterTarget.cloud_share(0.05),
        temperature=1.37,
        learned_model=model(),
        features=FeatureConfig(escalation_keywords=("refund", "lawyer"), weight_length=0.5),
        metrics=ValidationMetrics(
            n=500,
            edge_accuracy=0.91,
            expected_cloud_share=0.05,
            expected_hybrid_accuracy=0.94,
            cloud_accuracy=0.97,
        ),
    )


def write(tmp_path: Path, values: object) -> Path:
    path = tmp_path / ROUTER_FILE
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def test_round_trip(tmp_path: Path) -> None:
    router = learned_router()
    path = save_router(tmp_path / "router.json", router)
    loaded = load_router(path)
    assert loaded == router  # models compare by value
    assert loaded.to_dict() == router.to_dict()
    assert loaded.learned_model is not None and loaded.learned_model.bias == 0.1234567891234
    assert loaded.features.escalation_keywords == ("refund", "lawyer")


def test_file_is_plain_json_with_the_documented_keys(tmp_path: Path) -> None:
    values = json.loads(save_router(tmp_path / "r.json", learned_router()).read_text(encoding="utf-8"))
    assert set(values) == {
        "policy",
        "threshold",
        "target",
        "temperature",
        "learned_model",
        "features",
        "metrics",
        "edge_model_version",
    }
    assert values["target"] == {"cloud_share": 0.05}


def test_edge_model_version_round_trips_and_may_be_absent(tmp_path: Path) -> None:
    router = RouterConfig("confidence", threshold=0.8, temperature=0.8, edge_model_version="3c6fe4eeda14")
    assert load_router(save_router(tmp_path / "r.json", router)).edge_model_version == "3c6fe4eeda14"
    older = load_router(write(tmp_path, {"policy": "confidence", "threshold": 0.8}))
    assert older.edge_model_version is None
    with pytest.raises(RoutingError, match="edge_model_version must be a string or null, got 12"):
        load_router(write(tmp_path, {"policy": "confidence", "threshold": 0.8, "edge_model_version": 12}))


def test_save_and_load_through_a_folder(tmp_path: Path) -> None:
    router = RouterConfig("confidence", threshold=0.8, target=RouterTarget.accuracy(0.9))
    assert save_router(tmp_path, router) == tmp_path / ROUTER_FILE
    assert load_router(tmp_path) == router


def test_minimal_file_uses_defaults(tmp_path: Path) -> None:
    loaded = load_router(write(tmp_path, {"policy": "always-edge"}))
    assert loaded == RouterConfig("always-edge")
    assert loaded.features == FeatureConfig()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="does not exist"):
        load_router(tmp_path / "nope.json")


def test_bad_json(tmp_path: Path) -> None:
    path = tmp_path / ROUTER_FILE
    path.write_text("{policy: confidence", encoding="utf-8")
    with pytest.raises(RoutingError, match="not valid JSON"):
        load_router(path)
    with pytest.raises(RoutingError, match="JSON object"):
        load_router(write(tmp_path, ["confidence"]))


def test_unknown_policy_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(RoutingError) as info:
        load_router(write(tmp_path, {"policy": "smart", "threshold": 0.5}))
    assert "'smart'" in str(info.value)
    assert all(name in str(info.value) for name in POLICIES)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"policy": "confidence", "thresold": 0.5}, "unknown router keys"),
        ({"threshold": 0.5}, "no 'policy'"),
        ({"policy": "confidence"}, "needs a threshold"),
        ({"policy": "confidence", "threshold": "high"}, "wrong type"),
        ({"policy": "confidence", "threshold": 1.5}, "threshold must be in"),
        ({"policy": "always-edge", "threshold": 0.5}, "only used by"),
        ({"policy": "learned", "threshold": 0.5}, "needs a learned_model"),
        ({"policy": "confidence", "threshold": 0.5, "target": {"share": 0.1}}, "target kind"),
        (
            {"policy": "confidence", "threshold": 0.5, "target": {"cloud_share": 0.1, "accuracy": 0.9}},
            "target",
        ),
        ({"policy": "confidence", "threshold": 0.5, "features": {"colour": 1}}, "unknown FeatureConfig keys"),
        ({"policy": "confidence", "threshold": 0.5, "features": [1]}, "expected an object"),
        (
            {
                "policy": "confidence",
                "threshold": 0.5,
                "metrics": {"n": 0, "edge_accuracy": 0.9, "expected_cloud_share": 0.1},
            },
            "n must be in",
        ),
        ({"policy": "learned", "threshold": 0.5, "learned_model": {"weights": [1.0]}}, "missing keys"),
        ({"policy": "confidence", "threshold": 0.5, "temperature": 0}, "temperature"),
        (
            {"policy": "confidence", "threshold": 0.5, "target": {"cloud_share": "0.05"}},
            r"target cloud_share has the wrong type: it must be a number, got '0\.05' \(str\)",
        ),
        (
            {"policy": "confidence", "threshold": 0.5, "target": {"accuracy": None}},
            r"target accuracy has the wrong type: it must be a number, got None",
        ),
        ({"policy": "confidence", "threshold": True}, r"threshold has the wrong type: .*got True \(bool\)"),
        ({"policy": "confidence", "threshold": 0.5, "temperature": "1"}, r"temperature has the wrong type: .*'1'"),
        (
            {"policy": "confidence", "threshold": 0.5, "features": {"escalation_keywords": "refund"}},
            r"escalation_keywords must be a list of strings, got 'refund' \(str\)",
        ),
    ],
)
def test_malformed_router_files(tmp_path: Path, values: dict, match: str) -> None:
    with pytest.raises(RoutingError, match=match):
        load_router(write(tmp_path, values))


def test_learned_model_width_must_match_the_features() -> None:
    narrow = LogisticModel(np.ones(3), 0.0, np.zeros(3), np.ones(3))
    with pytest.raises(ConfigError, match="3 features"):
        RouterConfig("learned", threshold=0.5, learned_model=narrow)
    with pytest.raises(ConfigError, match="only used by policy 'learned'"):
        RouterConfig("confidence", threshold=0.5, learned_model=model())


def test_target_parsing() -> None:
    assert RouterTarget.from_dict({"accuracy": 0.9}) == RouterTarget.accuracy(0.9)
    assert RouterTarget.cloud_share(0.05).to_dict() == {"cloud_share": 0.05}
    with pytest.raises(ConfigError, match="target cloud_share"):
        RouterTarget.cloud_share(1.5)
    with pytest.raises(ConfigError, match="target cloud_share has the wrong type"):
        RouterTarget.from_dict({"cloud_share": "0.05"})
    budget = RouterTarget.max_cloud_share(0.05, 0.95)
    assert budget.to_dict() == {"max_cloud_share": 0.05, "confidence": 0.95}
    assert RouterTarget.from_dict(budget.to_dict()) == budget
    assert RouterTarget.from_dict({"max_cloud_share": 0.05}).confidence == 0.9
    with pytest.raises(ConfigError, match=r"target confidence must be in \[0.5, 0.999\], got 1.0"):
        RouterTarget.max_cloud_share(0.05, 1.0)
    with pytest.raises(ConfigError, match="'confidence': c"):
        RouterTarget.from_dict({"cloud_share": 0.05, "confidence": 0.9})


def test_the_cli_default_budget_confidence_is_the_router_default() -> None:
    from hybridroute.cli import DEFAULT_SHARE_CONFIDENCE
    from hybridroute.routing.router_config import BUDGET_CONFIDENCE

    assert DEFAULT_SHARE_CONFIDENCE == BUDGET_CONFIDENCE


def test_build_policy_for_every_registered_name() -> None:
    rng = np.random.default_rng(0)
    configs = {
        "always-edge": RouterConfig("always-edge"),
        "always-cloud": RouterConfig("always-cloud"),
        "random": RouterConfig("random", threshold=0.25),
        "confidence": RouterConfig("confidence", threshold=0.8),
        "learned": RouterConfig("learned", threshold=0.5, learned_model=model()),
        "tutorial": RouterConfig("tutorial"),
    }
    assert set(configs) == set(POLICIES)
    built = {name: build_policy(config, rng) for name, config in configs.items()}
    expected = {
        "always-edge": AlwaysEdge,
        "always-cloud": AlwaysCloud,
        "random": RandomPolicy,
        "confidence": ConfidencePolicy,
        "learned": LearnedPolicy,
        "tutorial": TutorialPolicy,
    }
    for name, policy in built.items():
        assert isinstance(policy, expected[name]) and policy.name == name
    random_policy = built["random"]
    assert isinstance(random_policy, RandomPolicy) and random_policy.cloud_share == 0.25
    query = make_signal("where is my card", [0.7, 0.3], ["a", "b"])
    assert built["confidence"].choose_tier(query).tier is Tier.CLOUD
