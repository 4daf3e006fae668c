"""Recognizers: each finds the spans of one entity type in a text.

A recognizer is anything with ``entity``, ``priority`` and ``find(text) -> list[Span]``
(see :class:`Recognizer`); :func:`default_recognizers` builds the pure-Python set
this package ships. Patterns favour recall on customer-service formats and lean
on checksums (Luhn, IBAN mod 97) and cue words ("account", "order", "my name is")
for precision. The priority decides overlaps: a Luhn-valid card beats the phone
number its digits also resemble.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from hybridroute.redaction.validators import (
    IBAN_LENGTHS,
    IBAN_MAX_LENGTH,
    IBAN_MIN_LENGTH,
    digits_of,
    iban_valid,
    luhn_valid,
)

# Higher wins an overlap: checksummed and self-delimiting formats first, cue-based guesses last.
PRIORITY: dict[str, int] = {
    "EMAIL": 100,
    "URL": 90,
    "IBAN": 85,
    "CARD": 80,
    "SSN": 70,
    "ORDER": 65,
    "ACCOUNT": 60,
    "PHONE": 50,
    "HANDLE": 40,
    "PERSON": 30,
}

# Hyphen, non-breaking hyphen, figure, en and em dash, minus sign: the body of a character class (the
# hyphen escaped, so it never forms a range).
_DASHES = r"\-" + "\u2010\u2011\u2012\u2013\u2014\u2212"
# Any space but a line break: " ", tab, no-break "\xa0", narrow no-break "\u202f", thin "\u2009"...
_SPACE = r"[^\S\n]"
# Between the digit groups of a card, IBAN, SSN or phone number, the one definition they all share: a space,
# a dot, or a dash or a single line break with up to one space on each side ("4111\xa01111",
# "415 – 555 – 0132", "4111 1111 1111\n1111").
SEPARATOR = rf"(?:{_SPACE}?(?:[{_DASHES}]|\n){_SPACE}?|{_SPACE}|\.)"
# A space or a dash, spaced or not: the separators an SSN may mix between its groups ("123-45 6789").
_SPACE_OR_DASH = rf"(?:{_SPACE}?[{_DASHES}]{_SPACE}?|{_SPACE})"
# Not right after a digit and a dash-like separator: there a number would be the tail of another one.
_AFTER_DASHED_DIGIT = rf"(?<!\d{_SPACE}[{_DASHES}]{_SPACE})"


@dataclass(frozen=True, order=True)
class Span:
    """A found entity: characters ``start:end`` of the text hold an ``entity``.

    Holds no text on purpose, so a span can be logged without leaking what it covers.
    """

    start: int
    end: int
    entity: str

    def overlaps(self, other: Span) -> bool:
        """Whether the two spans share at least one character."""
        return self.start < other.end and other.start < self.end


class Recognizer(Protocol):
    """Finds one entity type; the redactor resolves overlaps and applies the allow-list."""

    @property
    def entity(self) -> str:
        """The entity type this recognizer finds, e.g. "EMAIL"."""
        ...

    @property
    def priority(self) -> int:
        """Wins overlaps against lower priorities."""
        ...

    def find(self, text: str) -> list[Span]:
        """Every span of ``self.entity`` in ``text``."""
        ...


@dataclass(frozen=True)
class PatternRecognizer:
    """A regular expression, an optional validator, and the group that holds the value.

    The group lets a cue stay in the text: ``account 12345678`` becomes ``account <ACCOUNT>``.
    """

    entity: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    group: str | int = 0
    priority: int = 0
    overlapping: bool = False  # also look for matches starting inside a valid one (chance checksum hits)

    def find(self, text: str) -> list[Span]:
        """Spans of every match whose value passes the validator."""
        spans, pos = [], 0
        while (match := self.pattern.search(text, pos)) is not None:
            start, end = match.span(self.group)
            if start >= 0 and (self.validate is None or self.validate(text[start:end])):
                spans.append(Span(start, end, self.entity))
                pos = match.start() + 1 if self.overlapping else match.end()
            else:  # a greedy match may hide a valid shorter one: search again one character on
                pos = match.start() + 1
        return spans


@dataclass(frozen=True)
class IbanRecognizer:
    """IBANs written compact or in groups (see :data:`SEPARATOR`): length and mod 97.

    Any two letters and two digits may start one: a country of :data:`IBAN_LENGTHS` needs its length,
    any other country 15-34 characters, the longest reading that passes the checksum.
    """

    entity: str = "IBAN"
    priority: int = PRIORITY["IBAN"]

    def find(self, text: str) -> list[Span]:
        """Spans of valid IBANs; a start that fails the checksum is skipped."""
        spans = []
        for start in _IBAN_START.finditer(text):
            length = IBAN_LENGTHS.get(start.group(1).upper())
            for end in _iban_ends(text, start.start(), length):
                if iban_valid(_IBAN_SEPARATOR.sub("", text[start.start() : end])):
                    spans.append(Span(start.start(), end, self.entity))
                    break
        return spans


_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})\d\d", re.IGNORECASE)


# Between two characters of an IBAN: a separator, or two spaces ("GB82  WEST ...", "GB82-WEST-...").
_IBAN_SEPARATOR = re.compile(rf"(?:{SEPARATOR}|\x20\x20)(?=[^\W_])")
# The bank code ("BMAG" in "BH67 BMAG 0000 ...") ends by then; a later group of letters only is a word.
_IBAN_BANK_CODE_END = 8


def _iban_ends(text: str, start: int, length: int | None) -> list[int]:
    """Where an IBAN starting at ``start`` may end (after a whole group), longest first.

    ``length`` characters (separators not counted) when the country's length is known, else any
    length from 15 to 34 that does not take in a later group of letters only (a word after it).

    Example: _iban_ends("GB82 WEST 1234 5698 7654 32 ok", 0, 22) -> [27]
    """
    lengths = range(IBAN_MIN_LENGTH, IBAN_MAX_LENGTH + 1) if length is None else (length,)
    count, i, ends = 0, start, []
    while i < len(text) and count < lengths[-1]:
        if text[i].isalnum():
            group_end = i
            while group_end < len(text) and text[group_end].isalnum():
                group_end += 1
            if length is None and count >= _IBAN_BANK_CODE_END and not any(c.isdecimal() for c in text[i:group_end]):
                break
            count, i = count + group_end - i, group_end
            if count in lengths:
                ends.append(i)
        elif (separator := _IBAN_SEPARATOR.match(text, i)) is not None:
            i = separator.end()
        else:
            break
    return ends[::-1]


# National significant number lengths of common country codes (ITU-T E.164 national plans);
# other codes accept 7-12 national digits. Lets "+33 1 23 45 67 89 10 min" stop before "10".
NATIONAL_LENGTHS: dict[str, frozenset[int]] = {
    "1": frozenset({10}), "7": frozenset({10}), "27": frozenset({9}), "31": frozenset({9}), "32": frozenset({8, 9}),
    "33": frozenset({9}), "34": frozenset({9}), "39": frozenset(range(6, 12)), "41": frozenset({9}),
    "43": frozenset(range(7, 14)), "44": frozenset({9, 10}), "45": frozenset({8}), "46": frozenset(range(7, 11)),
    "47": frozenset({8}), "48": frozenset({9}), "49": frozenset(range(6, 14)), "52": frozenset({10}),
    "55": frozenset({10, 11}), "61": frozenset({9}), "65": frozenset({8}), "81": frozenset({9, 10}),
    "86": frozenset({11}), "91": frozenset({10}), "351": frozenset({9}), "353": frozenset({7, 8, 9}),
    "971": frozenset({8, 9}),
}  # fmt: skip
# An extension written after a number: "x12" against it, or after a space " x12", " ext 7", ", ext. 123",
# " Ext: 5", " extension 45". Shared by every phone pattern; its digits do not count towards a number's length.
_EXTENSION = r"(?:\x20?[xX]|,?\x20?(?i:ext|extn|extension)[.:]?\x20?)\d{1,5}"
_EXTENSION_AT_END = re.compile(f"(?:{_EXTENSION})$")
# "+" or the international call prefix "00", the country code, an optional trunk "0" or "(0)" that is not
# dialled from abroad ("+33 (0)1 23 45 67 89", "+44 020 7946 0958"), the digit groups of the national
# number (the last group not a percentage: "+49 30 14136092 14% fee"), then an optional extension.
_INTERNATIONAL = re.compile(
    rf"""(?:(?<![\w+{_DASHES}])(?P<plus>\+)|(?<![\w+$\u20ac\u00a3\#{_DASHES}])(?<!\d[.,:/])00\x20?)
    (?P<country>[1-9]\d{{0,2}})(?P<trunk>{SEPARATOR}?(?:\(0\)|0))?(?P<national>(?:{SEPARATOR}?\(?\d{{1,5}}\)?){{2,7}})
    (?P<extension>{_EXTENSION})?(?![\w%{_DASHES}]|\.\d)""",
    re.VERBOSE,
)
_GROUP = re.compile(r"\(?\d+\)?")
# Words after which a number is a count or an amount ("10 min", "3 times", "120 EUR"), not a phone digit group.
_UNIT_WORDS = """sec secs second seconds min mins minute minutes h hr hrs hour hours day days week weeks month
    months year years times items pcs pieces people passengers pax bags seats tickets nights calls attempts
    transactions payments % percent eur euro euros usd dollars gbp pounds km miles kg"""
_UNIT_AFTER = re.compile(r"\x20+(?i:" + "|".join(re.escape(w) for w in _UNIT_WORDS.split()) + r")(?!\w)")


@dataclass(frozen=True)
class InternationalPhoneRecognizer:
    """Numbers written with a country code, trimmed to a length that country's numbers have.

    A greedy pattern would take the next number too ("+33 1 23 45 67 89 10 min"); trailing
    groups are dropped until the national part has a valid length. Shorter valid readings are
    offered as well, so the redactor's overlap resolution can leave a number written right after
    a variable-length one whole ("0049 30 91114476 (911) 755-7577"). A trunk "0" or "(0)" is not
    part of the national number. A last group of one to three digits with a unit word after it
    is a quantity, not part of the number ("+49 30 45925534 10 min": German numbers run 6-13
    digits, so length alone cannot tell). Numbers written with "00" instead of "+" need a country
    code of :data:`NATIONAL_LENGTHS`: "00" starts many numbers that are no phone numbers at all.
    """

    entity: str = "PHONE"
    priority: int = PRIORITY["PHONE"]

    def find(self, text: str) -> list[Span]:
        """Spans of international numbers with a plausible national length."""
        spans, pos = [], 0
        # Search again from where a trimmed number ends: the groups trimmed off may start the next
        # number ("+33 1 79 42 69 90 0033 6 76 09 33 25").
        while (match := _INTERNATIONAL.search(text, pos)) is not None:
            pos = match.start() + 1
            written = match.group("country")
            # Country codes are prefix-free: in "+4930 1234567" or "0049301234567" the code is "49".
            country = next((written[:k] for k in (1, 2, 3) if written[:k] in NATIONAL_LENGTHS), None)
            if country is None and match.group("plus") is None:
                continue
            country = country or written
            lengths = NATIONAL_LENGTHS.get(country, frozenset(range(7, 13)))
            carried = len(written) - len(country)  # national digits written together with the code
            ends = _international_ends(text, match, lengths, carried)
            spans += [Span(match.start(), end, self.entity) for end in ends]
            pos = ends[0] if ends else pos
        return spans


def _international_ends(text: str, match: re.Match[str], lengths: frozenset[int], carried: int) -> list[int]:
    """Where the number of an :data:`_INTERNATIONAL` match may end, longest first; empty if no length fits.

    The first reading with a valid length wins: without a trailing quantity before with it, and a bare
    "0" after the country code as a trunk before as the first national digit (Italian numbers keep it).
    An extension belongs to the number only when no group was trimmed off before it.

    Example: for "+49 30 45925534 10 min" -> [15] (the "10" is a quantity: "min" follows)
    """
    national_end = match.end("national")
    quantity = _quantity_start(text, match.start("national"), national_end)
    for stop in ([] if quantity is None else [quantity]) + [national_end]:
        for start in _national_starts(match):
            if ends := _phone_ends(text, start, stop, lengths, carried):
                if ends[0] == national_end and match.group("extension"):
                    ends[0] = match.end("extension")
                return ends
    return []


def _national_starts(match: re.Match[str]) -> list[int]:
    """Where the national number of an :data:`_INTERNATIONAL` match may start, most likely first.

    Example: for "+33 01 23 45 67 89" -> [5, 4] (after the trunk "0", then from it)
    """
    trunk = match.group("trunk")
    if trunk is None or trunk.endswith(")"):
        return [match.start("national")]
    return [match.start("national"), match.end("trunk") - 1]


def _quantity_start(text: str, start: int, end: int) -> int | None:
    """Where a trailing quantity of the digit groups ``text[start:end]`` starts, or None.

    A quantity is a last group of one to three digits after a space, with a unit word after ``end``.
    Its limit: a number whose own last group is that short loses it before a unit word
    ("+49 30 1234 56 hours"), and a quantity without a unit word stays in ("+49 30 45925534 10").

    Example: _quantity_start("+49 30 45925534 10 min", 3, 18) -> 16
    """
    groups = list(_GROUP.finditer(text, start, end))
    last = groups[-1] if len(groups) > 1 else None
    if last is None or not last.group().isdecimal() or len(last.group()) > 3 or not text[last.start() - 1].isspace():
        return None
    return last.start() if _UNIT_AFTER.match(text, end) else None


def _phone_ends(text: str, start: int, end: int, lengths: frozenset[int], carried: int = 0) -> list[int]:
    """The ends of the runs of whole digit groups of ``text[start:end]`` with a valid national length, longest first.

    ``carried`` national digits come before ``start`` (written without a gap after the country code).

    Example: _phone_ends("+33 1 23 45 67 89 10", 3, 20, NATIONAL_LENGTHS["33"]) -> [17]
    """
    groups = reversed(list(_GROUP.finditer(text, start, end)))
    return [g.end() for g in groups if carried + len(digits_of(text[start : g.end()])) in lengths]


def _phone_digit_count(low: int, high: int) -> Callable[[str], bool]:
    """A validator: the number holds between ``low`` and ``high`` digits, an extension after it not counted.

    Example: _phone_digit_count(10, 13)("020 7946 0958 ext 12") -> True
    """
    return lambda value: low <= len(digits_of(_EXTENSION_AT_END.sub("", value))) <= high


def _card_valid(value: str) -> bool:
    """13-19 digits, a known issuer prefix and a valid Luhn digit."""
    digits = digits_of(value)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


def _ssn_valid(value: str) -> bool:
    """US SSN rules: area not 000/666/9xx, group not 00, serial not 0000 (UK NINO passes as is)."""
    digits = digits_of(value)
    if len(digits) != 9:
        return True  # the national-insurance form, shaped by the pattern alone
    return digits[:3] not in {"000", "666"} and digits[0] != "9" and digits[3:5] != "00" and digits[5:] != "0000"


def _has_letter_and_digit_or_five_digits(value: str) -> bool:
    """An order or account value: five digits or more, or letters and digits mixed."""
    digits = len(digits_of(value))
    return digits >= 5 or (digits >= 2 and any(c.isalpha() for c in value) and len(value) >= 5)


# Capitalized words that follow the same cues without being names ("this is Ridiculous").
_NOT_NAMES_WORDS = """I I'm Im The A An And But So Not No Yes My Your Our It Its This That What Why How When Where Who
    Very Really Just Still Now Again Ridiculous Unacceptable Terrible Awful Great Amazing Horrible
    Insane Crazy Absurd Annoying Frustrating Ok Okay Please Thanks Thank Sorry Hi Hello Hey Dear Team
    Customer Service Support Sir Madam All Everyone Guys Again Today Tomorrow Yesterday Monday Tuesday
    Wednesday Thursday Friday Saturday Sunday United American Delta Southwest Jetblue JetBlue Virgin
    Airways Airlines Air Flight Bank Card Account Order Cancelled Late Platinum Gold Silver"""
NOT_NAMES: frozenset[str] = frozenset(_NOT_NAMES_WORDS.split())


# The scripts names are matched in: Basic Latin to Latin Extended-B, Greek and Cyrillic, Latin Extended Additional.
_NAME_SCRIPTS = ((0x41, 0x24F), (0x370, 0x52F), (0x1E00, 0x1EFF))


def _letter_class(is_case: Callable[[str], bool]) -> str:
    r"""The body of a character class holding the letters of :data:`_NAME_SCRIPTS` that pass ``is_case``.

    The stdlib ``re`` has no ``\p{Lu}``; this builds its equivalent for these scripts, as ranges.

    Example: _letter_class(str.isupper) starts with "\u0041-\u005a\u00c0-\u00d6"
    """
    chars = [c for low, high in _NAME_SCRIPTS for c in range(low, high + 1) if is_case(chr(c))]
    runs: list[list[int]] = []
    for c in chars:
        if runs and runs[-1][1] == c - 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in runs)


# An uppercase (or titlecase: "ǅ") letter, and what may follow it: lowercase letters and combining
# accents, so a name typed decomposed ("José" as "Jose" + U+0301) is matched whole.
_UPPER = f"[{_letter_class(lambda c: c.isupper() or c.istitle())}]"
_LOWER = f"[{_letter_class(str.islower)}\\u0300-\\u036f]"
_APOSTROPHE = "['\u2019]"
_PART = f"{_UPPER}{_LOWER}+"

# A capitalized word that is neither a title nor a common non-name; "O'Brien", "McDonald", "Smith-Jones",
# "José", "Łukasz", "Anna-Lena" pass. It ends where letters end, so "Renée" is not cut to "Ren".
# Excluding non-names inside the pattern lets "Mr Okafor This is" stop after "Okafor" instead of failing.
_NAME = (
    r"(?!(?:Mr|Mrs|Ms|Miss|Dr|Prof|" + "|".join(re.escape(w) for w in sorted(NOT_NAMES)) + r")\b)"
    rf"(?:{_UPPER}{_APOSTROPHE}{_PART}|{_PART}(?:{_PART}){{0,2}})(?:[-\u2010\u2011]{_PART}|{_APOSTROPHE}{_PART}){{0,2}}"
    r"(?![^\W\d_]|[\u0300-\u036f])"
)
# One to three capitalized words: "Ann", "Mary Ann", "Mary Ann Smith".
_NAMES = rf"{_NAME}(?:\s+{_NAME}){{0,2}}"


def _patterns() -> dict[str, list[PatternRecognizer]]:
    """The pattern recognizers, by entity type (built per call: nothing happens at import)."""
    flags = re.VERBOSE
    sep = SEPARATOR  # between the groups of a phone number: "-", " - ", " – ", " ", "\xa0", "."
    return {
        "EMAIL": [
            # The local part may start with "_" or "-" and hold an apostrophe ("o'brien@..."), as mail allows.
            _rx(
                "EMAIL",
                r"(?<![\w.+-])[A-Za-z0-9_-](?:[A-Za-z0-9._%+'-]*[A-Za-z0-9_])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])",
            )
        ],
        "URL": [
            _rx("URL", r"(?i:\b(?:https?|ftp)://[^\s<>\"']+[^\s<>\"'.,;:!?)\]])"),
            _rx(
                "URL",
                r"""(?i:(?<![\w@./-])(?:www\.)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+
                (?:com|org|net|io|co|uk|de|fr|es|it|nl|eu|info|biz|app|dev|me|us|ca|au|in|ly)
                (?![\w@-])(?:/[^\s<>\"']*[^\s<>\"'.,;:!?)\]])?)""",
                flags=flags,
            ),
        ],
        "CARD": [
            # 4-4-4-4 and Amex 4-6-5, each gap with or without a separator (a space of any kind, a dash, a dot,
            # a line break: see SEPARATOR), or 13-19 digits written together: a loose digit run would swallow
            # the next number ("4111... 10 min") and fail the Luhn check.
            _rx(
                "CARD",
                rf"""(?<![\d{_DASHES}])(?:\d{{4}}(?:{SEPARATOR}?\d{{4}}){{3}}|\d{{4}}{SEPARATOR}?\d{{6}}{SEPARATOR}?\d{{4,5}}
                |\d{{13,19}})(?!\d)""",
                _card_valid,
                flags=flags,
                overlapping=True,
            ),
        ],
        "SSN": [
            # One separator, the same in both gaps: "123-45-6789", "123 – 45 – 6789", "123\xa045\xa06789".
            _rx("SSN", rf"(?<![\d{_DASHES}])\d{{3}}({SEPARATOR})\d{{2}}\1\d{{4}}(?![\d{_DASHES}])", _ssn_valid),
            # Spaces and dashes mixed: "123-45 6789", "123 45-6789". A dot or a line break must be the same in
            # both gaps (above), so a price or a wrapped line next to a number is not read as an SSN.
            _rx(
                "SSN",
                rf"(?<![\d{_DASHES}])\d{{3}}{_SPACE_OR_DASH}\d{{2}}{_SPACE_OR_DASH}\d{{4}}(?![\d{_DASHES}])",
                _ssn_valid,
            ),
            _rx(
                "SSN",
                r"(?i:\b(?:ssn|social\s+security(?:\s+(?:no\.?|number))?)\s*(?:is|:|\#)?\s*)(?P<v>\d{9})\b",
                _ssn_valid,
                "v",
            ),
            # UK National Insurance number, grouped or compact.
            _rx("SSN", r"\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d\d ?\d\d ?\d\d ?[A-D]\b"),
        ],
        "ACCOUNT": [
            _rx(
                "ACCOUNT",
                r"""(?i:\b(?:account|acct|acc|a/c)\.?(?:\s*(?:no\.?|number|num|\#|id))?\s*(?:is\s+|:\s*|\#\s*)?)
                (?P<v>(?:[A-Z]{1,4}-?)?\d[\d-]*\d)(?![\w-])""",
                _has_letter_and_digit_or_five_digits,
                "v",
                flags,
            )
        ],
        "ORDER": [
            _rx("ORDER", r"(?<![\w-])(?i:ORD)-\d{4}-\d{4,8}(?![\w-])"),
            _rx(
                "ORDER",
                r"""(?i:\border\.?(?:\s*(?:no\.?|number|num|\#|id|ref))?\s*(?:is\s+|:\s*|\#\s*)?)
                (?P<v>(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9-]{2,18}[A-Z0-9]))(?![\w-])""",
                _has_letter_and_digit_or_five_digits,
                "v",
                flags,
            ),
        ],
        "PHONE": [
            # North American: (415) 555-0132, 415.555.0132, 415/555-0132, +1-415-555-0132, 4155550132,
            # 415 - 555 - 0132, with an extension after it (415-555-0132x12, 415-555-0132 ext. 12). A number may
            # not run on into ".digit": "0698 1701 231.416.5691" holds a US number, not a British one. A "1"
            # written against the area code but apart from the exchange ("1800 555 0199") needs a real exchange
            # (2-9 first), so "card ending 1719 020 6668 8396" leaves the British number whole. A number starts
            # neither after "-" nor after " - " behind a digit: there it would be the tail of another number.
            _rx(
                "PHONE",
                rf"""(?<![\w+{_DASHES}]){_AFTER_DASHED_DIGIT}(?:(?:\+1{sep}?|1{sep})?(?:\(\d{{3}}\){sep}?|\d{{3}}(?:{sep}|/)?)\d{{3}}
                |1(?:\d{{6}}|(?:\(\d{{3}}\){sep}?|\d{{3}}(?:{sep}|/))[2-9]\d\d))
                {sep}?\d{{4}}(?:{_EXTENSION})?(?![\w{_DASHES}]|\.\d)""",
                flags=flags,
            ),
            # British: 020 7946 0958, 07700 900123, +44 (0)20 7946 0958, +44 7700 900123, with an extension. Not
            # after " - " behind a digit either: in "(917) 867 - 0608 020 7478 3044" the "0608" ends a US number.
            _rx(
                "PHONE",
                rf"""(?<![\w+{_DASHES}]){_AFTER_DASHED_DIGIT}(?:\+44{sep}?(?:\(0\){sep}?)?|0)\d{{2,4}}{sep}?\d{{3,4}}{sep}?\d{{3,4}}
                (?:{_EXTENSION})?(?![\w{_DASHES}]|\.\d)""",
                _phone_digit_count(10, 13),
                flags=flags,
            ),
        ],
        "HANDLE": [_rx("HANDLE", r"(?<![\w@.+-])@[A-Za-z0-9_]{2,30}(?![\w@]|\.[A-Za-z]{2,}\b)")],
        "PERSON": [
            _rx(
                "PERSON",
                rf"""(?:(?i:\bmy\s+name\s+is|\bmy\s+name{_APOSTROPHE}s|\b(?:hi|hello|hey|dear\s+\w+)[,!]?\s+
                (?:this\s+is|i\s+am|i{_APOSTROPHE}m)|\bspeak\s+(?:to|with)|\bsigned)\s+)(?P<v>{_NAMES})""",
                None,
                "v",
                flags,
            ),
            _rx("PERSON", rf"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+(?P<v>{_NAMES})", None, "v"),
            _rx(
                "PERSON",
                rf"""(?i:\b(?:thanks|thank\s+you|regards|best|cheers|sincerely|yours)[,!]?)[ \t]*\n?[ \t]*
                (?:-\s*)?(?P<v>{_NAMES})(?=\s*(?:[.!]|$))""",
                None,
                "v",
                flags | re.MULTILINE,
            ),
        ],
    }


def _rx(
    entity: str,
    pattern: str,
    validate: Callable[[str], bool] | None = None,
    group: str | int = 0,
    flags: int = 0,
    overlapping: bool = False,
) -> PatternRecognizer:
    return PatternRecognizer(entity, re.compile(pattern, flags), validate, group, PRIORITY[entity], overlapping)


def default_recognizers(entities: Iterable[str] | None = None) -> list[Recognizer]:
    """The built-in recognizers for ``entities`` (all known types when None)."""
    wanted = set(PRIORITY if entities is None else entities)
    found: list[Recognizer] = [r for e, rs in _patterns().items() if e in wanted for r in rs]
    if "IBAN" in wanted:
        found.append(IbanRecognizer())
    if "PHONE" in wanted:
        found.append(InternationalPhoneRecognizer())
    return found
