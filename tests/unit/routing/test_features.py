from __future__ import annotations

import math

import numpy as np
import pytest

from hybridroute.errors import ConfigError, RoutingError
from hybridroute.routing.features import (
    ESCALATION_KEYWORDS,
    FEATURE_NAMES,
    UNCERTAINTY_WORDS,
    FeatureConfig,
    complexity_score,
    count_phrases,
    count_sentences,
    count_words,
    feature_matrix,
    feature_vector,
    make_signal,
    normalized_entropy,
    top_two,
    uncertainty_hits,
    words_per_sentence,
)

ANGRY = (
    "This is completely UNACCEPTABLE. Someone made an unauthorized charge on my card and I think it was "
    "stolen, I am not sure how. I filed a complaint last week and nobody answered, so now I want a full "
    "refund and I have already spoken to my lawyer about legal action and a chargeback, get me your manager "
    "immediately because this is urgent and I am honestly confused about why nobody will help me??"
)


def test_default_word_lists_hold_the_brief_words() -> None:
    for word in (
        "lawyer",
        "legal",
        "complaint",
        "cancel",
        "fraud",
        "unauthorized",
        "stolen",
        "escalate",
        "manager",
        "chargeback",
        "dispute",
        "urgent",
        "refund",
    ):
        assert word in ESCALATION_KEYWORDS
    for word in ("maybe", "not sure", "confused", "unclear", "somehow"):
        assert word in UNCERTAINTY_WORDS


def test_keywords_match_case_insensitively_on_word_boundaries() -> None:
    assert count_phrases("Refund! REFUND. refund", ("refund",)) == 3
    assert count_phrases("refunds refunded prerefund", ("refund",)) == 0
    assert count_phrases("I am NOT   sure, not\nsure", ("not sure",)) == 2
    assert count_phrases("anything", ()) == 0


def test_question_mark_runs_count_once_each_and_can_be_switched_off() -> None:
    assert uncertainty_hits("Maybe? not sure??", FeatureConfig()) == 4
    assert uncertainty_hits("Maybe? not sure??", FeatureConfig(count_question_marks=False)) == 2


def test_word_and_sentence_counts() -> None:
    assert count_words("I don't know, 2 times.") == 5
    assert count_sentences("Hi. Where is my card?? Thanks") == 3
    assert count_sentences("...") == 0
    assert words_per_sentence("One two. Three four five six.") == 3.0
    assert words_per_sentence("") == 0.0


def test_complexity_score_hand_worked() -> None:
    config = FeatureConfig()
    assert complexity_score(60, 30.0, 2, 2, config) == pytest.approx(1.0)
    assert complexity_score(600, 300.0, 20, 20, config) == pytest.approx(1.0)  # saturates
    assert complexity_score(30, 15.0, 1, 0, config) == pytest.approx(0.3 * 0.5 + 0.2 * 0.5 + 0.3 * 0.5)
    assert complexity_score(0, 0.0, 0, 0, config) == 0.0


def test_complexity_weights_are_normalised_by_their_sum() -> None:
    doubled = FeatureConfig(weight_length=0.6, weight_wps=0.4, weight_keywords=0.6, weight_uncertainty=0.4)
    assert complexity_score(30, 15.0, 1, 0, doubled) == pytest.approx(complexity_score(30, 15.0, 1, 0, FeatureConfig()))
    only_keywords = FeatureConfig(weight_length=0, weight_wps=0, weight_keywords=1, weight_uncertainty=0)
    assert complexity_score(60, 30.0, 1, 2, only_keywords) == pytest.approx(0.5)


def test_angry_legal_complaint_is_more_complex_than_hi() -> None:
    angry = make_signal(ANGRY, [0.5, 0.5], ["a", "b"])
    hi = make_signal("hi", [0.5, 0.5], ["a", "b"])
    assert 0.0 <= hi.complexity < 0.05
    assert 0.0 <= angry.complexity <= 1.0
    assert angry.complexity > 0.75 > hi.complexity
    assert angry.keyword_hits >= 8
    assert angry.uncertainty_hits >= 3


def test_custom_keywords_override_the_defaults() -> None:
    config = FeatureConfig(escalation_keywords=("boarding pass",), uncertainty_words=["hmm"])
    signal = make_signal("Hmm, my Boarding  Pass and a refund", [1.0], ["x"], config)
    assert signal.keyword_hits == 1
    assert signal.uncertainty_hits == 1
    assert config.uncertainty_words == ("hmm",)  # lists become tuples: the config stays hashable


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"weight_length": -0.1}, "weight_length"),
        ({"weight_wps": 1.5}, "weight_wps"),
        ({"wps_saturation": 0}, "wps_saturation"),
        ({"uncertainty_saturation": -1}, "uncertainty_saturation"),
        ({"escalation_keywords": ("ok", " ")}, "escalation_keywords"),
        ({"weight_length": 0, "weight_wps": 0, "weight_keywords": 0, "weight_uncertainty": 0}, "weights"),
    ],
)
def test_feature_config_rejects_bad_values_by_name(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize("field", ["escalation_keywords", "uncertainty_words"])
def test_feature_config_refuses_one_string_instead_of_a_word_list(field: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"{field} must be a list of words, got one string 'refund'; write \['refund'\]"
    ):
        FeatureConfig(**{field: "refund"})


def test_probability_summaries() -> None:
    assert top_two(np.array([0.2, 0.7, 0.1])) == (0.7, 0.2)
    assert top_two(np.array([1.0])) == (1.0, 0.0)
    assert normalized_entropy(np.array([0.25] * 4)) == pytest.approx(1.0)
    assert normalized_entropy(np.array([1.0, 0.0, 0.0])) == 0.0
    assert normalized_entropy(np.array([1.0])) == 0.0


def test_signal_fields() -> None:
    signal = make_signal("Where is my card? It has not arrived.", [0.1, 0.7, 0.2], ["a", "b", "c"])
    assert signal.label == "b"
    assert signal.confidence == pytest.approx(0.7)
    assert signal.margin == pytest.approx(0.5)
    expected_entropy = -sum(p * math.log(p) for p in (0.1, 0.7, 0.2)) / math.log(3)
    assert signal.entropy == pytest.approx(expected_entropy)
    assert signal.length_chars == 37
    assert signal.words == 8
    assert signal.words_per_sentence == 4.0
    assert signal.uncertainty_hits == 1  # the question mark
    assert signal.cloud_confidence is None


def test_signal_probabilities_are_a_read_only_copy() -> None:
    source = np.array([0.6, 0.4])
    signal = make_signal("hi", source, ["a", "b"])
    source[0] = 0.0
    assert signal.probabilities[0] == 0.6
    with pytest.raises(ValueError):
        signal.probabilities[0] = 0.1


@pytest.mark.parametrize("probabilities", [[0.6, 0.6], [1.2, -0.2], [float("nan"), 1.0]])
def test_signal_rejects_non_distributions(probabilities: list[float]) -> None:
    with pytest.raises(RoutingError):
        make_signal("hi", probabilities, ["a", "b"])


def test_make_signal_rejects_label_count_mismatch() -> None:
    with pytest.raises(RoutingError, match="3 probabilities"):
        make_signal("hi", [0.2, 0.3, 0.5], ["a", "b"])


def test_with_cloud_confidence_copies_and_validates() -> None:
    signal = make_signal("refund please", [0.9, 0.1], ["a", "b"])
    with_cloud = signal.with_cloud_confidence(0.95)
    assert with_cloud.cloud_confidence == 0.95
    assert signal.cloud_confidence is None
    assert with_cloud.keyword_hits == signal.keyword_hits == 1
    with pytest.raises(ConfigError, match="cloud_confidence"):
        signal.with_cloud_confidence(1.5)


def test_feature_vector_order_matches_names() -> None:
    signal = make_signal(ANGRY, [0.1, 0.7, 0.2], ["a", "b", "c"])
    vector = feature_vector(signal)
    assert vector.shape == (len(FEATURE_NAMES),)
    named = dict(zip(FEATURE_NAMES, vector, strict=True))
    assert named["confidence"] == pytest.approx(0.7)
    assert named["margin"] == pytest.approx(0.5)
    assert named["entropy"] == pytest.approx(signal.entropy)
    assert named["log1p_length_chars"] == pytest.approx(math.log1p(len(ANGRY)))
    assert named["words_per_sentence_scaled"] == pytest.approx(min(signal.words_per_sentence / 30, 1.0))
    assert named["keyword_hits"] == signal.keyword_hits
    assert named["uncertainty_hits"] == signal.uncertainty_hits
    assert named["complexity"] == pytest.approx(signal.complexity)


def test_feature_matrix_shapes() -> None:
    signals = [make_signal("hi", [0.5, 0.5], ["a", "b"]), make_signal("refund", [0.9, 0.1], ["a", "b"])]
    assert feature_matrix(signals).shape == (2, len(FEATURE_NAMES))
    assert feature_matrix([]).shape == (0, len(FEATURE_NAMES))
