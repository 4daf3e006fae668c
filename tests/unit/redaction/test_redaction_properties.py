"""Properties of redaction over generated inputs: what it was given does not come out, and it never breaks.

Values are generated in the formats the recognizers promise to catch (see test_recognizers.py for the
hand-picked cases) and spliced between generated filler words, one space on each side.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hybridroute.errors import ConfigError
from hybridroute.redaction import RedactionConfig, Redactor
from hybridroute.redaction.config import ENTITIES
from hybridroute.redaction.validators import iban_check_digits, iban_valid, luhn_check_digit, luhn_valid

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REDACTOR = Redactor(RedactionConfig())  # stateless after construction: safe to share between examples

# ---------------------------------------------------------------- strategies

LOWER_DIGITS = string.ascii_lowercase + string.digits


def words(alphabet: str = string.ascii_letters + string.digits + ",;!?'\"()-") -> st.SearchStrategy[str]:
    """Filler: a few words of ordinary characters, joined by single spaces."""
    word = st.text(alphabet, min_size=1, max_size=12)
    return st.lists(word, max_size=6).map(" ".join)


@st.composite
def emails(draw: st.DrawFn) -> str:
    """user.name+tag@sub.domain.tld, the shapes customers type (also _user, -user and o'brien)."""
    local_word = st.text(LOWER_DIGITS, min_size=1, max_size=10)
    local = draw(st.lists(local_word, min_size=1, max_size=3)).copy()
    separators = draw(st.lists(st.sampled_from("._+-'"), min_size=len(local) - 1, max_size=len(local) - 1))
    lead = draw(st.sampled_from(["", "", "_", "-"]))
    user = lead + local[0] + "".join(s + w for s, w in zip(separators, local[1:], strict=True))
    labels = draw(st.lists(st.text(LOWER_DIGITS, min_size=1, max_size=10), min_size=1, max_size=3))
    tld = draw(st.text(string.ascii_lowercase, min_size=2, max_size=6))
    address = f"{user}@{'.'.join(labels)}.{tld}"
    return address.upper() if draw(st.booleans()) and draw(st.booleans()) else address


def digit_string(n: int) -> st.SearchStrategy[str]:
    return st.text(string.digits, min_size=n, max_size=n)


@st.composite
def phones(draw: st.DrawFn) -> str:
    """North American, British and international numbers in their usual spellings (extensions, trunk 0s too)."""
    area = draw(st.sampled_from("23456789")) + draw(digit_string(2))
    exchange, line = draw(digit_string(3)), draw(digit_string(4))
    sep = draw(st.sampled_from(["-", ".", " "]))
    return draw(
        st.sampled_from(
            [
                f"({area}) {exchange}-{line}",
                f"{area}{sep}{exchange}{sep}{line}",
                f"+1 {area} {exchange} {line}",
                f"+1-{area}-{exchange}-{line}",
                f"{area}{exchange}{line}",
                f"020 {line} {draw(digit_string(4))}",
                f"07{draw(digit_string(3))} {draw(digit_string(6))}",
                f"+44 20 {line} {draw(digit_string(4))}",
                f"{area}/{exchange}-{line}",
                f"{area}-{exchange}-{line}x{draw(digit_string(2))}",
                f"+33 (0)6 {exchange[:2]} {line[:2]} {line[2:]} {draw(digit_string(2))}",
                f"0049 30 {line}{draw(digit_string(4))}",
                f"0044 20 {line} {draw(digit_string(4))}",
                f"00447{draw(digit_string(9))}",
                f"+44 20 {line} {draw(digit_string(4))} ext. {draw(digit_string(3))}",
                f"+44 20 {line} {draw(digit_string(4))}x{draw(digit_string(2))}",
                f"+1 {area} {exchange} {line} ext {draw(digit_string(1))}",
                f"{area} - {exchange} - {line}",
                f"({area}) {exchange} - {line}",
                f"+44 020 {line} {draw(digit_string(4))}",
                f"+33 0{area[0]} {exchange[:2]} {line[:2]} {line[2:]} {draw(digit_string(2))}",
                f"+49 030 {line}{draw(digit_string(4))}",
            ]
        )
    )


@st.composite
def cards(draw: st.DrawFn) -> str:
    """Luhn-valid 16-digit cards (issuer prefix 2-6), compact or grouped by a space, a dash or a dot of any kind."""
    partial = draw(st.sampled_from("23456")) + draw(digit_string(14))
    number = partial + luhn_check_digit(partial)
    sep = draw(st.sampled_from(["", " ", "-", ".", "\xa0", "\u202f", "\t", " - ", "\u2013", " \u2014 ", "\u2011"]))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def spliced(values: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    """(value, text holding the value between filler words)."""
    return st.tuples(words(), values, words()).map(lambda t: (t[1], " ".join(p for p in t if p)))


# ---------------------------------------------------------------- nothing given comes out


@SETTINGS
@given(spliced(emails()))
@example(("john.doe+bank@mail.example.co.uk", "mail john.doe+bank@mail.example.co.uk now"))
def test_an_email_never_survives_redaction(case: tuple[str, str]) -> None:
    email, text = case
    result = REDACTOR.redact(text)
    assert email not in result.text and email.lower() not in result.text.lower()
    assert result.counts.get("EMAIL", 0) >= 1


@SETTINGS
@given(spliced(phones()))
def test_a_phone_number_never_survives_redaction(case: tuple[str, str]) -> None:
    phone, text = case
    result = REDACTOR.redact(text)
    assert phone not in result.text
    assert sum(result.counts.values()) >= 1


@SETTINGS
@given(spliced(cards()))
def test_a_card_number_never_survives_redaction(case: tuple[str, str]) -> None:
    card, text = case
    result = REDACTOR.redact(text)
    assert card not in result.text
    digits = "".join(c for c in card if c.isdigit())
    moved = "".join(c for c in result.text if c.isalnum())
    assert digits not in moved  # not even with its separators moved


@SETTINGS
@given(st.lists(st.one_of(emails(), phones(), cards()), min_size=1, max_size=4), words())
def test_several_values_in_one_text_all_go(values: list[str], filler: str) -> None:
    text = f" {filler} ".join(values)
    result = REDACTOR.redact(text)
    for value in values:
        assert value not in result.text


# ---------------------------------------------------------------- it never breaks


@settings(SETTINGS, max_examples=60)
@given(st.text(max_size=300))
def test_any_text_redacts_to_consistent_spans(text: str) -> None:
    result = REDACTOR.redact(text)
    assert isinstance(result.text, str)
    spans = list(result.spans)
    assert spans == sorted(spans)
    assert all(0 <= s.start < s.end <= len(text) and s.entity in ENTITIES for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))  # no overlaps
    assert sum(result.counts.values()) == len(spans)
    kept = [text[(spans[i - 1].end if i else 0) : s.start] for i, s in enumerate(spans)]
    assert all(piece in result.text for piece in kept)  # only the spans changed


@SETTINGS
@given(st.sampled_from(["DE", "GB", "fr", "NL"]), st.text(min_size=2, max_size=2), st.text(min_size=10, max_size=40))
@example("DE", "89", "é" * 18)  # non-ASCII letters in an IBAN-shaped run once crashed the mod-97 check
@example("DE", "٨٩", "1" * 18)
def test_iban_shaped_text_of_any_characters_never_crashes(country: str, check: str, rest: str) -> None:
    for text in (country + check + rest, f"iban {country}{check} {rest}"):
        assert isinstance(REDACTOR.redact(text).text, str)


@SETTINGS
@given(st.text(string.ascii_lowercase + " \n\t,;!?'", max_size=300))
def test_text_without_digits_capitals_or_address_characters_is_unchanged(text: str) -> None:
    assert REDACTOR.redact(text).text == text


@SETTINGS
@given(st.text(max_size=200))
def test_disabled_redaction_is_the_identity(text: str) -> None:
    result = Redactor(RedactionConfig.disabled()).redact(text)
    assert result.text == text and result.counts == {} and result.spans == ()


@SETTINGS
@given(st.lists(st.sampled_from(ENTITIES), max_size=6), words())
def test_placeholders_are_never_redacted_again(entities: list[str], filler: str) -> None:
    text = " ".join([filler, *(f"<{e}>" for e in entities)])
    once = REDACTOR.redact(text).text
    assert REDACTOR.redact(once).text == once


# ---------------------------------------------------------------- config and checksums

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "enabled": JSON_VALUES,
            "entities": st.one_of(st.lists(st.sampled_from([*ENTITIES, "FAX", ""]), max_size=4), JSON_VALUES),
            "allow_list": st.one_of(st.lists(st.text(max_size=8), max_size=3), JSON_VALUES),
            "placeholder": st.one_of(
                st.sampled_from(["<{entity}>", "[{entity}]", "{0}", "{entity", "{x}"]), JSON_VALUES
            ),
        },
    )
)
def test_redaction_config_accepts_or_raises_config_error_only(values: dict[str, object]) -> None:
    from hybridroute.config import config_from_dict

    try:
        config = config_from_dict(RedactionConfig, values)
    except ConfigError as exc:
        assert "RedactionConfig" in str(exc) or "invalid" in str(exc)
        return
    assert isinstance(config.enabled, bool) and set(config.entities) <= set(ENTITIES)
    assert "X" in config.mark("X")


@SETTINGS
@given(st.text(string.digits, min_size=1, max_size=25))
def test_luhn_check_digit_always_completes_a_valid_number(partial: str) -> None:
    assert luhn_valid(partial + luhn_check_digit(partial))


@SETTINGS
@given(st.text(max_size=40))
def test_checksums_never_raise(text: str) -> None:
    assert isinstance(luhn_valid(text), bool) and isinstance(iban_valid(text), bool)


@SETTINGS
@given(st.sampled_from(["DE", "GB", "FR", "NL"]), st.data())
def test_iban_check_digits_make_a_valid_iban(country: str, data: st.DataObject) -> None:
    from hybridroute.redaction.validators import IBAN_LENGTHS

    bban = data.draw(st.text(string.digits + string.ascii_uppercase, min_size=1, max_size=1)) + data.draw(
        digit_string(IBAN_LENGTHS[country] - 5)
    )
    iban = country + iban_check_digits(country, bban) + bban
    assert iban_valid(iban)
    assert REDACTOR.redact(f"pay to {iban} today").text == "pay to <IBAN> today"


@pytest.mark.parametrize("entity", ENTITIES)
def test_every_entity_has_a_placeholder_the_redactor_leaves_alone(entity: str) -> None:
    assert REDACTOR.redact(f"<{entity}>").text == f"<{entity}>"
