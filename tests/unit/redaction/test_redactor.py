import pytest

from hybridroute.errors import ConfigError
from hybridroute.redaction import ENTITIES, PatternRecognizer, RedactionConfig, Redactor, Span, total_counts
from hybridroute.redaction.redactor import resolve_overlaps

TEXT = "I'm locked out, mail jane@example.com or call 415-555-0132; card 4111 1111 1111 1111"


def test_redact_replaces_with_typed_placeholders_and_counts() -> None:
    result = Redactor().redact(TEXT)
    assert result.text == "I'm locked out, mail <EMAIL> or call <PHONE>; card <CARD>"
    assert result.counts == {"EMAIL": 1, "PHONE": 1, "CARD": 1}
    assert [s.entity for s in result.spans] == ["EMAIL", "PHONE", "CARD"]
    assert TEXT[result.spans[0].start : result.spans[0].end] == "jane@example.com"


def test_text_without_personal_data_is_unchanged() -> None:
    result = Redactor().redact("How do I top up by card? It was $20.00 on 3/4/2024.")
    assert result.text == "How do I top up by card? It was $20.00 on 3/4/2024."
    assert result.counts == {} and result.spans == ()


def test_allow_list_keeps_company_identifiers_case_insensitively() -> None:
    redactor = Redactor(RedactionConfig(allow_list=("support@acme-bank.com", "@United")))
    result = redactor.redact("@united ask support@acme-bank.com or me, jo@x.io")
    assert result.text == "@united ask support@acme-bank.com or me, <EMAIL>"


def test_allow_listed_email_is_not_redacted_as_a_url_either() -> None:
    redactor = Redactor(RedactionConfig(allow_list=("support@acme-bank.co.uk",)))
    assert redactor.redact("write support@acme-bank.co.uk").counts == {}


def test_disabled_config_returns_text_as_is() -> None:
    result = Redactor(RedactionConfig.disabled()).redact(TEXT)
    assert result.text == TEXT and result.counts == {}


def test_only_configured_entities_are_redacted() -> None:
    result = Redactor(RedactionConfig(entities=("EMAIL",))).redact(TEXT)
    assert result.counts == {"EMAIL": 1}
    assert "415-555-0132" in result.text


def test_custom_placeholder_format() -> None:
    redactor = Redactor(RedactionConfig(placeholder="[{entity}]"))
    assert redactor.redact("mail a@b.io").text == "mail [EMAIL]"


def test_pluggable_recognizers() -> None:
    import re

    ticket = PatternRecognizer("ORDER", re.compile(r"TKT-\d+"), priority=65)
    result = Redactor(recognizers=[ticket]).redact("ticket TKT-991 and a@b.io")
    assert result.text == "ticket <ORDER> and a@b.io"


def test_overlap_same_digits_prefers_higher_priority() -> None:
    spans = [Span(5, 24, "PHONE"), Span(5, 24, "CARD")]
    assert resolve_overlaps(spans, {"CARD": 80, "PHONE": 50}) == [Span(5, 24, "CARD")]


def test_overlap_prefers_covering_more_characters() -> None:
    spans = [Span(0, 30, "EMAIL"), Span(10, 30, "URL"), Span(0, 5, "HANDLE")]
    assert resolve_overlaps(spans, {"EMAIL": 100, "URL": 90, "HANDLE": 40}) == [Span(0, 30, "EMAIL")]


def test_overlap_keeps_two_spans_over_one_straddling_them() -> None:
    spans = [Span(0, 10, "SSN"), Span(6, 25, "CARD"), Span(11, 30, "CARD")]
    assert resolve_overlaps(spans, {"SSN": 70, "CARD": 80}) == [Span(0, 10, "SSN"), Span(11, 30, "CARD")]


def test_overlap_keeps_both_of_two_spans_that_only_touch() -> None:
    spans = [Span(0, 5, "EMAIL"), Span(5, 10, "PHONE")]  # the first ends where the second starts: no overlap
    assert resolve_overlaps(spans, {"EMAIL": 100, "PHONE": 50}) == spans
    assert resolve_overlaps(spans[::-1], {"EMAIL": 100, "PHONE": 50}) == spans


@pytest.mark.parametrize(
    ("text", "redacted", "entities"),
    [
        ("my name is Jane4111 1111 1111 1111 thanks", "my name is <PERSON><CARD> thanks", ["PERSON", "CARD"]),
        ("my name is Jane Doe123-45-6789", "my name is <PERSON><SSN>", ["PERSON", "SSN"]),
    ],
)
def test_two_entities_written_together_are_both_redacted(text: str, redacted: str, entities: list[str]) -> None:
    result = Redactor().redact(text)
    assert result.text == redacted and [s.entity for s in result.spans] == entities
    assert result.spans[0].end == result.spans[1].start  # they really touch
    assert "Jane" not in result.text


def test_total_counts_sums_over_texts() -> None:
    results = Redactor().redact_many(["a@b.io", "c@d.io and 415-555-0132", "nothing"])
    assert total_counts(results) == {"EMAIL": 2, "PHONE": 1}


def test_config_defaults_are_on_with_every_entity() -> None:
    config = RedactionConfig()
    assert config.enabled and config.entities == ENTITIES and config.mark("SSN") == "<SSN>"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entities": ("EMAIL", "FAX")}, "known types: EMAIL, PHONE"),
        ({"entities": ("EMAIL", "EMAIL")}, "repeats"),
        ({"allow_list": ("",)}, "allow_list"),
        ({"placeholder": "<ENTITY>"}, "placeholder"),
        ({"placeholder": "<{entity}{other}>"}, "placeholder"),
        ({"enabled": "false"}, "true or false"),
    ],
)
def test_config_errors_name_the_field_and_the_choices(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RedactionConfig(**kwargs)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        RedactionConfig().enabled = False  # type: ignore[misc]


def test_a_non_string_is_refused_with_its_type() -> None:
    with pytest.raises(TypeError, match="redaction takes a str, got a NoneType"):
        Redactor().redact(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got a bytes"):
        Redactor(RedactionConfig(enabled=False)).find(b"raw")  # type: ignore[arg-type]
