"""What the router knows about one query: the edge model's answer plus cheap text signals.

Everything here is pure and fast (a few regular expressions and a handful of
numpy operations per query), because it runs on the edge for every request.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from hybridroute.config import check_positive, check_probability
from hybridroute.errors import ConfigError, RoutingError

# Customer-service words that tend to mark a hard or sensitive case (legal threats,
# money disputes, account security, demands for a human). Matched case-insensitively
# on word boundaries, so inflections are listed explicitly ("cancelled" is not "cancel").
ESCALATION_KEYWORDS: tuple[str, ...] = (
    "lawyer", "attorney", "legal", "lawsuit", "sue",
    "complaint", "complain", "ombudsman", "regulator",
    "cancel", "cancelled", "canceled", "cancellation",
    "fraud", "fraudulent", "scam", "unauthorized", "unauthorised", "stolen", "hacked",
    "escalate", "manager", "supervisor",
    "chargeback", "dispute", "refund", "compensation",
    "urgent", "unacceptable",
)  # fmt: skip

# Hedges that mark a customer who is unsure what they are asking (multi-word phrases
# allowed). Question marks are counted separately, see FeatureConfig.count_question_marks.
UNCERTAINTY_WORDS: tuple[str, ...] = (
    "maybe", "perhaps", "possibly", "not sure", "unsure",
    "confused", "confusing", "unclear", "somehow",
    "i think", "i guess", "no idea", "don't understand", "dont understand",
)  # fmt: skip

FEATURE_NAMES: tuple[str, ...] = (
    "confidence",
    "margin",
    "entropy",
    "log1p_length_chars",
    "words_per_sentence_scaled",
    "keyword_hits",
    "uncertainty_hits",
    "complexity",
)

_WORD = re.compile(r"\w+(?:'\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+")
_QUESTION_RUN = re.compile(r"\?+")
_PROBABILITY_SUM_TOLERANCE = 1e-3  # float32 softmax outputs sum to 1 only approximately


@dataclass(frozen=True)
class FeatureConfig:
    """Word lists, saturation points and weights of the text signals.

    The complexity weights need not sum to 1: they are divided by their sum, so
    the complexity score always lies in [0, 1].
    """

    escalation_keywords: tuple[str, ...] = ESCALATION_KEYWORDS
    uncertainty_words: tuple[str, ...] = UNCERTAINTY_WORDS
    count_question_marks: bool = True  # "?" (a run of them counts once) is a hedge too
    length_saturation_words: float = 60.0  # longer messages add no further complexity
    wps_saturation: float = 30.0  # 30 words in one sentence is already a run-on
    keyword_saturation: float = 2.0  # two escalation words are as alarming as ten
    uncertainty_saturation: float = 2.0
    weight_length: float = 0.3  # the tutorial's weights: length .3, wps .2, keywords .3, hedges .2
    weight_wps: float = 0.2
    weight_keywords: float = 0.3
    weight_uncertainty: float = 0.2

    def __post_init__(self) -> None:
        for name in ("escalation_keywords", "uncertainty_words"):
            check_not_one_string(name, getattr(self, name))
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_word_list("escalation_keywords", self.escalation_keywords)
        check_word_list("uncertainty_words", self.uncertainty_words)
        for name in ("length_saturation_words", "wps_saturation", "keyword_saturation"):
            check_positive(name, getattr(self, name))
        check_positive("uncertainty_saturation", self.uncertainty_saturation)
        for name in self.weight_names():
            check_probability(name, getattr(self, name))
        if sum(self.weights()) <= 0:
            raise ConfigError(f"complexity weights {self.weight_names()} must not all be 0")

    @staticmethod
    def weight_names() -> tuple[str, str, str, str]:
        """Names of the four complexity weights, in the order of :meth:`weights`."""
        return ("weight_length", "weight_wps", "weight_keywords", "weight_uncertainty")

    def weights(self) -> tuple[float, float, float, float]:
        """The four complexity weights: length, words per sentence, keywords, uncertainty."""
        return (self.weight_length, self.weight_wps, self.weight_keywords, self.weight_uncertainty)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (word tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def check_not_one_string(name: str, words: object) -> None:
    """Raise for a bare string, which would otherwise become a tuple of its letters.

    Example: check_not_one_string("escalation_keywords", "refund") -> ConfigError("... got one string 'refund' ...")
    """
    if isinstance(words, (str, bytes)):
        raise ConfigError(f"{name} must be a list of words, got one string {words!r:.60}; write [{words!r:.60}]")


def check_word_list(name: str, words: Sequence[str]) -> None:
    """Raise unless ``words`` is a sequence of non-blank strings.

    Example: check_word_list("uncertainty_words", ("maybe", " ")) -> ConfigError
    """
    bad = [w for w in words if not isinstance(w, str) or not w.strip()]
    if bad:
        raise ConfigError(f"{name} must hold non-blank strings, got {bad!r}")


# Immutable, so it can be shared: each signal then skips re-validating the word lists.
DEFAULT_FEATURE_CONFIG = FeatureConfig()


# ---------------------------------------------------------------- pure text helpers


@lru_cache(maxsize=64)
def phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    r"""One case-insensitive regex matching any phrase on word boundaries.

    Example: phrase_pattern(("not sure",)).pattern -> r"(?<!\w)(?:not\s+sure)(?!\w)"
    """
    parts = sorted((r"\s+".join(re.escape(w) for w in p.split()) for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)", re.IGNORECASE)


def count_phrases(text: str, phrases: tuple[str, ...]) -> int:
    """Occurrences of any phrase in ``text``, case-insensitive, on word boundaries.

    Example: count_phrases("Refund! REFUND. refunds", ("refund",)) -> 2
    """
    return len(phrase_pattern(phrases).findall(text)) if phrases else 0


def count_words(text: str) -> int:
    """Number of words (runs of letters/digits, apostrophes kept inside a word).

    Example: count_words("I don't know, 2 times.") -> 5
    """
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Number of sentences: pieces between ., ! or ? that hold at least one word.

    Example: count_sentences("Hi. Where is my card?? Thanks") -> 3
    """
    return sum(1 for piece in _SENTENCE_END.split(text) if _WORD.search(piece))


def words_per_sentence(text: str) -> float:
    """Average sentence length in words; 0.0 for a text without words.

    Example: words_per_sentence("One two. Three four five six.") -> 3.0
    """
    sentences = count_sentences(text)
    return count_words(text) / sentences if sentences else 0.0


def uncertainty_hits(text: str, config: FeatureConfig) -> int:
    """Hedge phrases plus (if configured) runs of question marks.

    Example: uncertainty_hits("Maybe? not sure??", FeatureConfig()) -> 4
    """
    questions = len(_QUESTION_RUN.findall(text)) if config.count_question_marks else 0
    return count_phrases(text, config.uncertainty_words) + questions


# ---------------------------------------------------------------- pure score helpers


def complexity_score(words: int, wps: float, keyword_hits: int, uncertainty_hits: int, config: FeatureConfig) -> float:
    """The tutorial's complexity signal: a weighted mix of four saturating parts, in [0, 1].

    Parts: length ``min(words / 60, 1)``, run-on sentences ``min(wps / 30, 1)``,
    escalation keywords ``min(hits / 2, 1)`` and hedges ``min(hits / 2, 1)``
    (saturation points from ``config``), mixed with the config weights
    (default 0.3, 0.2, 0.3, 0.2) divided by their sum.

    Example: complexity_score(60, 30.0, 2, 2, FeatureConfig()) -> 1.0;
    complexity_score(30, 15.0, 1, 0, FeatureConfig()) -> 0.3*0.5 + 0.2*0.5 + 0.3*0.5 = 0.4
    """
    parts = (
        min(words / config.length_saturation_words, 1.0),
        min(wps / config.wps_saturation, 1.0),
        min(keyword_hits / config.keyword_saturation, 1.0),
        min(uncertainty_hits / config.uncertainty_saturation, 1.0),
    )
    weights = config.weights()
    return float(sum(w * p for w, p in zip(weights, parts, strict=True)) / sum(weights))


def top_two(probabilities: np.ndarray) -> tuple[float, float]:
    """The largest and second-largest probability (second is 0.0 for one class).

    Example: top_two(np.array([0.2, 0.7, 0.1])) -> (0.7, 0.2)
    """
    if probabilities.size == 1:
        return float(probabilities[0]), 0.0
    second, first = np.partition(probabilities, -2)[-2:]
    return float(first), float(second)


def normalized_entropy(probabilities: np.ndarray) -> float:
    """Shannon entropy divided by log(k): 0 for a certain answer, 1 for a uniform one.

    Example: normalized_entropy(np.array([0.5, 0.5])) -> 1.0; normalized_entropy(np.array([1.0, 0.0])) -> 0.0
    """
    k = probabilities.size
    if k < 2:
        return 0.0
    p = probabilities[probabilities > 0]
    return float(np.clip(-(p * np.log(p)).sum() / math.log(k), 0.0, 1.0))


def check_probabilities(probabilities: np.ndarray) -> None:
    """Raise RoutingError unless ``probabilities`` is a finite, non-negative 1-D distribution.

    Example: check_probabilities(np.array([0.6, 0.6])) -> RoutingError (sums to 1.2)
    """
    if probabilities.ndim != 1 or probabilities.size == 0:
        raise RoutingError(f"probabilities must be a non-empty 1-D array, got shape {probabilities.shape}")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise RoutingError(f"probabilities must be finite and >= 0, got {probabilities.tolist()}")
    total = float(probabilities.sum())
    if abs(total - 1.0) > _PROBABILITY_SUM_TOLERANCE:
        raise RoutingError(f"probabilities must sum to 1 (±{_PROBABILITY_SUM_TOLERANCE}), got {total}")


# ---------------------------------------------------------------- the signal


@dataclass(frozen=True, eq=False)
class EdgeSignal:
    """The edge model's calibrated answer to one query and the text signals derived from it.

    Build it with :func:`make_signal`. Only ``text``, ``probabilities``, ``label``,
    ``config`` and ``cloud_confidence`` are given; every other field is computed in
    ``__post_init__``, so a signal is always self-consistent.

    ``cloud_confidence`` stays ``None`` on the normal, edge-first path. Only a
    cloud-first baseline policy (``needs_cloud_first = True``, the tutorial rule)
    reads it; the caller then runs the cloud first and passes
    ``signal.with_cloud_confidence(c)``.

    Attributes:
        text: The query text.
        probabilities: Calibrated class probabilities (read-only copy, float64).
        label: The edge model's top label.
        config: Word lists and weights used for the text signals.
        cloud_confidence: The cloud model's top probability, if the cloud already ran.
        confidence: Top probability.
        margin: Top probability minus the second one.
        entropy: Entropy normalised by log(k), in [0, 1].
        length_chars: Number of characters of the text.
        words: Number of words.
        words_per_sentence: Average words per sentence.
        keyword_hits: Occurrences of escalation keywords.
        uncertainty_hits: Occurrences of hedges (and question-mark runs).
        complexity: The tutorial complexity score, in [0, 1].
    """

    text: str
    probabilities: np.ndarray
    label: str
    config: FeatureConfig = field(default=DEFAULT_FEATURE_CONFIG, repr=False)
    cloud_confidence: float | None = None
    confidence: float = field(init=False)
    margin: float = field(init=False)
    entropy: float = field(init=False)
    length_chars: int = field(init=False)
    words: int = field(init=False)
    words_per_sentence: float = field(init=False)
    keyword_hits: int = field(init=False)
    uncertainty_hits: int = field(init=False)
    complexity: float = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise RoutingError(f"text must be a string, got {type(self.text).__name__}")
        probabilities = np.array(self.probabilities, dtype=np.float64)
        check_probabilities(probabilities)
        probabilities.setflags(write=False)
        if self.cloud_confidence is not None:
            check_probability("cloud_confidence", self.cloud_confidence)
        first, second = top_two(probabilities)
        computed = {
            "probabilities": probabilities,
            "confidence": first,
            "margin": first - second,
            "entropy": normalized_entropy(probabilities),
        }
        computed |= text_signals(self.text, self.config)
        for name, value in computed.items():
            object.__setattr__(self, name, value)

    def with_cloud_confidence(self, cloud_confidence: float) -> EdgeSignal:
        """A copy of this signal that also carries the cloud model's top probability."""
        return dataclasses.replace(self, cloud_confidence=cloud_confidence)


def text_signals(text: str, config: FeatureConfig) -> dict[str, float | int]:
    """The text-only fields of an :class:`EdgeSignal`.

    Example: text_signals("hi", FeatureConfig()) -> {"length_chars": 2, "words": 1,
    "words_per_sentence": 1.0, "keyword_hits": 0, "uncertainty_hits": 0, "complexity": ~0.012}
    """
    words, wps = count_words(text), words_per_sentence(text)
    keywords, hedges = count_phrases(text, config.escalation_keywords), uncertainty_hits(text, config)
    return {
        "length_chars": len(text),
        "words": words,
        "words_per_sentence": wps,
        "keyword_hits": keywords,
        "uncertainty_hits": hedges,
        "complexity": complexity_score(words, wps, keywords, hedges, config),
    }


def make_signal(
    text: str,
    probabilities: np.ndarray | Sequence[float],
    labels: Sequence[str],
    config: FeatureConfig | None = None,
) -> EdgeSignal:
    """Build the router's view of one query from the edge model's calibrated probabilities.

    Args:
        text: The query text.
        probabilities: Calibrated class probabilities, one per label.
        labels: Label names in the model's output order.
        config: Text-signal settings; defaults to :class:`FeatureConfig`.

    Returns:
        The signal, with the top label picked from ``labels``.

    Raises:
        RoutingError: If the probabilities are not a distribution over ``labels``.

    Example: make_signal("hi", [0.9, 0.1], ["greet", "other"]).label -> "greet"
    """
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 1 or array.size != len(labels):
        raise RoutingError(f"got {array.size} probabilities (shape {array.shape}) for {len(labels)} labels")
    label = labels[int(np.argmax(array))]
    return EdgeSignal(text=text, probabilities=array, label=label, config=config or DEFAULT_FEATURE_CONFIG)


def feature_vector(signal: EdgeSignal) -> np.ndarray:
    """The signal as numbers, in the order of :data:`FEATURE_NAMES` (float64, shape (8,)).

    Example: a signal with confidence 0.9 -> array([0.9, margin, entropy, log1p(len), ...])
    """
    wps_scaled = min(signal.words_per_sentence / signal.config.wps_saturation, 1.0)
    return np.array(
        [
            signal.confidence,
            signal.margin,
            signal.entropy,
            math.log1p(signal.length_chars),
            wps_scaled,
            signal.keyword_hits,
            signal.uncertainty_hits,
            signal.complexity,
        ],
        dtype=np.float64,
    )


def feature_matrix(signals: Sequence[EdgeSignal]) -> np.ndarray:
    """Stack :func:`feature_vector` rows; shape (len(signals), len(FEATURE_NAMES))."""
    if not signals:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    return np.stack([feature_vector(s) for s in signals])
