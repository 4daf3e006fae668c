import re

import pytest

from hybridroute.bench.redaction import markdown_table, score_corpus
from hybridroute.errors import ConfigError, DataError
from hybridroute.redaction import ENTITIES, RedactionConfig, Redactor
from hybridroute.redaction.corpus import COMPANY_ALLOW_LIST, generate_pii_corpus, load_labelled_texts, usable_base

BASE = [
    "I am still waiting on my card?",
    "@united my flight 1701 was cancelled and nobody called",
    "How do I top up with a cheque",
    "What is the exchange rate for a transfer to Spain?",
    "@JetBlue thanks for the quick rebooking, great crew",
]


def test_corpus_is_deterministic_per_seed() -> None:
    a = generate_pii_corpus(BASE, 30, seed=3)
    assert a == generate_pii_corpus(BASE, 30, seed=3)
    assert a != generate_pii_corpus(BASE, 30, seed=4)


def test_corpus_spans_point_at_inserted_values_and_keep_the_source() -> None:
    for example in generate_pii_corpus(BASE, 50, seed=0, labels=[str(i) for i in range(len(BASE))]):
        assert 1 <= len(example.spans) <= 3
        assert example.source in BASE and example.label == str(BASE.index(example.source))
        for span in example.spans:
            value = example.text[span.start : span.end]
            assert value and value == value.strip() and span.entity in ENTITIES
        assert set(example.source.split()) <= set(example.text.split())


def test_corpus_covers_every_entity_type() -> None:
    corpus = generate_pii_corpus(BASE, 200, seed=1)
    assert {s.entity for e in corpus for s in e.spans} == set(ENTITIES)
    assert sum(len(e.negatives) for e in corpus) > 100


def test_corpus_holds_the_reviewed_formats_and_the_recognizers_catch_them() -> None:
    corpus = generate_pii_corpus(BASE, 1500, seed=5, entities=["PHONE", "EMAIL", "CARD", "IBAN"])
    values = [e.text[s.start : s.end] for e in corpus for s in e.spans]
    shapes = (r"^\+\d+ \(0\)", r"^00\d", r"^\d{3}/\d{3}-", r"\dx\d+$", r"^[_-]\w*.*@", r"^\w'\w+@")
    # Shapes of the second review: extensions after international numbers, spaced hyphens, a bare trunk 0.
    shapes += (r"^\+44 .* ext\. \d+$", r"^\+44 .*\dx\d+$", r"^\+1 .* ext \d$", r"^\d{3} - \d{3} - \d{4}$")
    shapes += (r"^\(\d{3}\) \d{3} - \d{4}$", r"^\+44 020 ", r"^\+33 0[1-9] ", r"^\+49 030 ")
    for shape in shapes:
        assert any(re.search(shape, v) for v in values), shape
    assert any(re.fullmatch(r"\d{4}\.\d{4}\.\d{4}\.\d{4}", v) for v in values)
    assert any(re.fullmatch(r"[A-Z]{2}\d\d(-[A-Z0-9]{1,4})+", v) for v in values)
    assert any("  " in v for v in values)
    scores = score_corpus(corpus, Redactor(RedactionConfig(allow_list=COMPANY_ALLOW_LIST)))
    assert all(s["leaked"] == 0 for s in scores["per_type"].values())
    assert scores["negative_controls"]["touched"] <= 0.01 * scores["negative_controls"]["total"]


def test_corpus_mixes_ssn_separators_and_the_recognizers_catch_them() -> None:
    corpus = generate_pii_corpus(BASE, 400, seed=5, entities=["SSN"])
    values = [e.text[s.start : s.end] for e in corpus for s in e.spans]
    assert any(re.fullmatch(r"\d{3}-\d{2} \d{4}", v) for v in values)
    assert any(re.fullmatch(r"\d{3} \d{2}-\d{4}", v) for v in values)
    assert any(re.fullmatch(r"\d{3}-\d{2}-\d{4}", v) for v in values)
    scores = score_corpus(corpus, Redactor(RedactionConfig(allow_list=COMPANY_ALLOW_LIST)))
    assert scores["per_type"]["SSN"]["leaked"] == 0


def test_corpus_puts_quantities_right_after_some_phone_numbers() -> None:
    corpus = generate_pii_corpus(BASE, 600, seed=6, entities=["PHONE"])
    after = [
        (e.text[s.start : s.end], e.text[a:b])
        for e in corpus
        for s in e.spans
        for a, b in e.negatives
        if a == s.end + 1
    ]
    quantities = [(p, q) for p, q in after if re.fullmatch(r"\d+ (min|minutes|hours|days|times)", q)]
    assert len(quantities) > 50 and any(phone.startswith("+49") for phone, _ in quantities)
    scores = score_corpus(corpus, Redactor(RedactionConfig(allow_list=COMPANY_ALLOW_LIST)))
    assert scores["per_type"]["PHONE"]["leaked"] == 0
    assert scores["negative_controls"]["touched"] == 0
    plain = generate_pii_corpus(BASE, 600, seed=6, entities=["PHONE"], controls=False)
    assert all(e.negatives == () for e in plain)


def test_corpus_needs_texts_and_n() -> None:
    with pytest.raises(ConfigError):
        generate_pii_corpus([], 5, 0)


def test_usable_base_rejects_texts_with_possible_unlabelled_pii() -> None:
    assert usable_base("@united lost my bag", COMPANY_ALLOW_LIST)
    assert not usable_base("@jane_doe lost my bag", COMPANY_ALLOW_LIST)
    assert not usable_base("see http://t.co/xyz", COMPANY_ALLOW_LIST)
    assert not usable_base("call 1-800-433-7300", COMPANY_ALLOW_LIST)


def test_load_labelled_texts_reads_text_and_label_columns(tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,category\nhello,greet\nbye,leave\n", encoding="utf-8")
    labelled = load_labelled_texts(path)
    assert (list(labelled.texts), list(labelled.labels)) == (["hello", "bye"], ["greet", "leave"])
    with pytest.raises(DataError):
        load_labelled_texts(tmp_path / "missing.csv")


def test_small_corpus_meets_the_issue_targets() -> None:
    corpus = generate_pii_corpus(BASE, 600, seed=7)
    scores = score_corpus(corpus, Redactor(RedactionConfig(allow_list=COMPANY_ALLOW_LIST)))
    for entity, s in scores["per_type"].items():
        assert s["recall"] >= 0.99, (entity, s)
        assert s["precision"] >= 0.95, (entity, s)
        assert s["leaked"] == 0, (entity, s)
    assert scores["negative_controls"]["touched"] <= 0.01 * scores["negative_controls"]["total"]
    assert "| EMAIL |" in markdown_table(scores)


class DigitSpotter:
    """Answers "clean" unless a digit or an @ is left in the text."""

    def predict(self, texts):
        from hybridroute.types import Prediction

        return [Prediction("dirty" if any(c.isdigit() or c == "@" for c in t) else "clean", 1.0, {}) for t in texts]


def test_accuracy_effect_is_paired_and_redaction_removes_every_digit() -> None:
    from hybridroute.bench.redaction import accuracy_effect

    texts = ["where is my card", "how do I top up", "my transfer failed", "is there a fee"] * 10
    effect = accuracy_effect(DigitSpotter(), texts, ["clean"] * len(texts), Redactor(), seed=2)
    assert effect["n"] == 40 and effect["clean_texts_changed_by_redaction"] == 0
    assert effect["accuracy"]["raw"] == effect["accuracy"]["redacted"] == 1.0
    assert effect["accuracy"]["with_pii"] < 0.8
    assert effect["accuracy"]["with_pii_redacted"] == 1.0  # no digit or @ of the spliced data survives


def test_each_pairs_example_i_with_text_i() -> None:
    corpus = generate_pii_corpus(BASE, 10, seed=0, each=True, controls=False)
    assert [e.source for e in corpus] == BASE * 2
    assert all(e.negatives == () for e in corpus)


def test_f1_is_zero_when_nothing_found_and_undefined_only_without_data() -> None:
    from collections import Counter

    from hybridroute.bench.redaction import _rates

    missed_all = _rates(Counter(true=10, found=0, predicted=4, correct=4))
    assert (missed_all["recall"], missed_all["precision"], missed_all["f1"]) == (0.0, 1.0, 0.0)
    assert _rates(Counter(true=10, found=5, predicted=5, correct=5))["f1"] == pytest.approx(2 / 3)
    assert _rates(Counter(true=0, predicted=3, correct=0))["f1"] is None  # no true spans: recall undefined
