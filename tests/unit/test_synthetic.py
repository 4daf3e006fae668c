from __future__ import annotations

import csv
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from hybridroute.errors import ConfigError
from hybridroute.synthetic import (
    INTENTS,
    SENTIMENTS,
    SyntheticConfig,
    SyntheticExample,
    _Clause,
    _dominant_sentiment,
    generate,
    write_csv,
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"\+1 555-\d{3}-\d{4}|\(555\) \d{3} \d{4}|07700 900\d{3}|555\.\d{3}\.\d{4}|\+44 7700 900\d{3}")
ACCOUNT = re.compile(r"\b\d{8}\b|#AC-\d{5}\b")
ORDER = re.compile(r"#(?:[A-Z]\d){4}\b|\bORD-\d{4}-\d{6}\b")
CARD = re.compile(r"\b\d{4} \d{4} \d{4} \d{4}\b")
PII_PATTERNS = {"email": EMAIL, "phone": PHONE, "account": ACCOUNT, "order": ORDER, "card": CARD}


def has_pii(text: str) -> bool:
    return any(p.search(text) for p in PII_PATTERNS.values())


def is_protected(token: str) -> bool:
    return "@" in token or any(ch.isdigit() for ch in token)


def plain_words(examples: list[SyntheticExample]) -> list[str]:
    """Lower-cased words outside PII/number tokens."""
    words: list[str] = []
    for example in examples:
        for token in example.text.split():
            if not is_protected(token):
                words += re.findall(r"[a-z']+", token.lower())
    return words


@pytest.fixture(scope="module")
def default_set() -> list[SyntheticExample]:
    return generate(SyntheticConfig())


@pytest.fixture(scope="module")
def clean_set() -> list[SyntheticExample]:
    return generate(SyntheticConfig(typo_rate=0.0))


# --------------------------------------------------------------------------- config


def test_label_constants_are_sane() -> None:
    assert SENTIMENTS == ("negative", "neutral", "positive")
    assert 8 <= len(INTENTS) <= 10
    assert len(set(INTENTS)) == len(INTENTS)
    assert all(re.fullmatch(r"[a-z_]+", intent) for intent in INTENTS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 0),
        ("n", -5),
        ("n", 2.5),
        ("n", True),
        ("seed", -1),
        ("seed", "0"),
        ("typo_rate", -0.01),
        ("typo_rate", 1.5),
        ("pii_rate", math.nan),
        ("pii_rate", "0.3"),
        ("mixed_rate", 2),
        ("long_rate", -1.0),
    ],
)
def test_bad_config_raises_config_error_naming_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"SyntheticConfig\.{field} .*{re.escape(repr(value))}"):
        SyntheticConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [0.0, 1.0, 0.5])
def test_rate_bounds_are_inclusive(rate: float) -> None:
    config = SyntheticConfig(n=1, typo_rate=rate, pii_rate=rate, mixed_rate=rate, long_rate=rate)
    assert len(generate(config)) == 1


def test_config_is_frozen() -> None:
    config = SyntheticConfig()
    with pytest.raises(AttributeError):
        config.n = 5  # type: ignore[misc]


# --------------------------------------------------------------------------- determinism


def test_same_config_gives_identical_output() -> None:
    config = SyntheticConfig(n=300, seed=11)
    assert generate(config) == generate(config)


def test_different_seeds_give_different_texts(default_set: list[SyntheticExample]) -> None:
    other = generate(SyntheticConfig(n=500, seed=1))
    overlap = {e.text for e in other} & {e.text for e in default_set}
    assert len(overlap) <= 5
    assert [e.text for e in other[:20]] != [e.text for e in default_set[:20]]


@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_exactly_n_examples(n: int) -> None:
    examples = generate(SyntheticConfig(n=n, seed=4))
    assert len(examples) == n
    assert all(isinstance(e, SyntheticExample) and e.text.strip() for e in examples)


def test_texts_are_distinct(default_set: list[SyntheticExample]) -> None:
    assert len({e.text for e in default_set}) / len(default_set) >= 0.9


# --------------------------------------------------------------------------- labels


def test_labels_come_from_the_declared_sets(default_set: list[SyntheticExample]) -> None:
    assert {e.sentiment for e in default_set} == set(SENTIMENTS)
    assert {e.intent for e in default_set} == set(INTENTS)


def test_sentiment_balance_is_about_40_30_30(default_set: list[SyntheticExample]) -> None:
    shares = Counter(e.sentiment for e in default_set)
    n = len(default_set)
    assert shares["negative"] / n == pytest.approx(0.4, abs=0.02)
    assert shares["neutral"] / n == pytest.approx(0.3, abs=0.02)
    assert shares["positive"] / n == pytest.approx(0.3, abs=0.02)


def test_intents_are_balanced(default_set: list[SyntheticExample]) -> None:
    counts = Counter(e.intent for e in default_set)
    assert max(counts.values()) - min(counts.values()) <= 0.02 * len(default_set)


def test_every_intent_sentiment_pair_is_well_represented(default_set: list[SyntheticExample]) -> None:
    pairs = Counter((e.intent, e.sentiment) for e in default_set)
    assert set(pairs) == {(i, s) for i in INTENTS for s in SENTIMENTS}
    assert min(pairs.values()) >= 30


def test_neutral_messages_ask_something_without_emojis(default_set: list[SyntheticExample]) -> None:
    neutral = [e.text for e in default_set if e.sentiment == "neutral"]
    assert all("?" in text for text in neutral)
    assert not any(ord(ch) >= 0x1F300 for text in neutral for ch in text)


def test_emojis_are_rare_but_present(default_set: list[SyntheticExample]) -> None:
    with_emoji = sum(any(ord(ch) >= 0x1F300 for ch in e.text) for e in default_set) / len(default_set)
    assert 0.005 < with_emoji < 0.1


def test_sentiment_is_not_one_keyword_per_class(default_set: list[SyntheticExample]) -> None:
    # Praise words show up in negative texts (sarcasm, negation) and vice versa.
    negative = " ".join(e.text.lower() for e in default_set if e.sentiment == "negative")
    positive = " ".join(e.text.lower() for e in default_set if e.sentiment == "positive")
    assert "great" in negative and "not" in positive
    assert "not happy" in negative or "not pleased" in negative


# --------------------------------------------------------------------------- mixed


@pytest.mark.parametrize(
    ("clauses", "expected"),
    [
        ([("positive", 2), ("negative", 2)], "negative"),  # tie: the later clause wins
        ([("negative", 1), ("positive", 1)], "positive"),
        ([("negative", 1), ("positive", 3)], "positive"),
        ([("positive", 3), ("negative", 2)], "positive"),  # stronger earlier clause wins
    ],
)
def test_dominant_clause_rule(clauses: list[tuple[str, int]], expected: str) -> None:
    assert _dominant_sentiment([_Clause("x", s, i) for s, i in clauses]) == expected


def test_mixed_rate_controls_contrast_messages() -> None:
    contrast = re.compile(r"\b(however|that said),", re.IGNORECASE)
    none = generate(SyntheticConfig(n=600, seed=2, mixed_rate=0.0))
    many = generate(SyntheticConfig(n=600, seed=2, mixed_rate=0.5))
    assert not any(contrast.search(e.text) for e in none)
    mixed = [e for e in many if contrast.search(e.text)]
    assert len(mixed) > 60
    assert {e.sentiment for e in mixed} == {"negative", "positive"}


# --------------------------------------------------------------------------- long messages


def sentence_count(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def test_long_multi_sentence_complaints_exist(default_set: list[SyntheticExample]) -> None:
    long_negative = [e for e in default_set if e.sentiment == "negative" and sentence_count(e.text) >= 5]
    assert len(long_negative) >= 0.03 * len(default_set)
    assert max(len(e.text.split()) for e in default_set) >= 60


def test_long_rate_controls_length() -> None:
    short = generate(SyntheticConfig(n=300, seed=5, long_rate=0.0))
    long = generate(SyntheticConfig(n=300, seed=5, long_rate=1.0))
    mean_words = [sum(len(e.text.split()) for e in s) / len(s) for s in (short, long)]
    assert mean_words[1] > 1.5 * mean_words[0]


# --------------------------------------------------------------------------- PII


def test_pii_share_follows_pii_rate(default_set: list[SyntheticExample]) -> None:
    share = sum(has_pii(e.text) for e in default_set) / len(default_set)
    assert share == pytest.approx(0.35, abs=0.04)


def test_all_pii_kinds_appear(default_set: list[SyntheticExample]) -> None:
    for kind, pattern in PII_PATTERNS.items():
        assert any(pattern.search(e.text) for e in default_set), kind


def test_pii_values_are_obviously_fake(default_set: list[SyntheticExample]) -> None:
    emails = [m.group() for e in default_set for m in EMAIL.finditer(e.text)]
    assert emails
    assert all(re.search(r"@example\.(com|org)$", email) for email in emails)
    cards = [m.group() for e in default_set for m in CARD.finditer(e.text)]
    assert all(card.startswith(("4111 1111 1111", "5555 5555 5555")) for card in cards)


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0.0), (1.0, 1.0)])
def test_pii_rate_extremes(rate: float, expected: float) -> None:
    examples = generate(SyntheticConfig(n=300, seed=6, pii_rate=rate))
    assert sum(has_pii(e.text) for e in examples) / len(examples) == expected


# --------------------------------------------------------------------------- typos


def test_typos_change_spelling_only(default_set: list[SyntheticExample], clean_set: list[SyntheticExample]) -> None:
    changed = total = 0
    for noisy, clean in zip(default_set, clean_set, strict=True):
        assert (noisy.sentiment, noisy.intent) == (clean.sentiment, clean.intent)
        noisy_tokens, clean_tokens = noisy.text.split(" "), clean.text.split(" ")
        assert len(noisy_tokens) == len(clean_tokens)
        for a, b in zip(noisy_tokens, clean_tokens, strict=True):
            total += 1
            if a != b:
                changed += 1
                assert not is_protected(b), f"typo inside protected token {b!r}"
                # one swap (same letters), one drop or one doubled letter
                assert sorted(a) == sorted(b) or abs(len(a) - len(b)) == 1
    assert 0.01 < changed / total < 0.05  # typo_rate 0.03 per eligible word


def test_no_typos_when_rate_is_zero(clean_set: list[SyntheticExample]) -> None:
    # With typos off the vocabulary is closed: another seed brings no unseen words.
    vocabulary = set(plain_words(clean_set))
    other_clean = plain_words(generate(SyntheticConfig(n=400, seed=9, typo_rate=0.0)))
    other_noisy = plain_words(generate(SyntheticConfig(n=400, seed=9, typo_rate=0.1)))
    unseen_clean = sum(w not in vocabulary for w in other_clean) / len(other_clean)
    unseen_noisy = sum(w not in vocabulary for w in other_noisy) / len(other_noisy)
    assert unseen_clean <= 0.002
    assert unseen_noisy > 0.03


# --------------------------------------------------------------------------- CSV


def test_write_csv_round_trip(tmp_path: Path) -> None:
    examples = generate(SyntheticConfig(n=200, seed=8, typo_rate=0.1))
    examples.append(SyntheticExample('Quote "this", comma, 😊 and ümlaut', "positive", "feedback"))
    path = write_csv(examples, tmp_path / "nested" / "data.csv")
    assert path == tmp_path / "nested" / "data.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["text", "sentiment", "intent"]
        rows = [SyntheticExample(r["text"], r["sentiment"], r["intent"]) for r in reader]
    assert rows == examples
