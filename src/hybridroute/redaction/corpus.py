"""A labelled PII corpus: fake personal data of many formats spliced into real texts.

:func:`generate_pii_corpus` takes real customer messages (banking77, airline tweets),
inserts 1-3 pieces of fake personal data and 0-2 *negative controls* (numbers that
are not personal data: amounts, dates, times, flight numbers, card last-4, quantities,
the company's own allow-listed address) at random word boundaries, and records the
true span of every inserted entity. One phone number in six has a quantity right after
it ("+49 30 45925534 10 min"), a negative control as well. The values are generated here; none is real.

Decisions the benchmark's numbers rest on:

* a card's last four digits ("card ending 1234") are not redacted: alone they do not
  identify anyone and PCI DSS lets them be shown; they are a negative control;
* only the identifying value is an entity, not its cue: in "account 12345678" the
  span is the digits, and the redacted text reads "account <ACCOUNT>";
* base texts that may already hold unlabelled personal data (URLs, handles other than
  the airlines' own, e-mail signs, runs of seven or more digits) are left out by
  :func:`usable_base`, which is independent of the recognizers, so precision is not
  charged for real but unlabelled PII; how many were left out is reported.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybridroute.config import DataConfig
from hybridroute.data import LabelledTexts, load_labelled
from hybridroute.errors import ConfigError
from hybridroute.redaction.config import ENTITIES
from hybridroute.redaction.recognizers import Span
from hybridroute.redaction.validators import IBAN_LENGTHS, iban_check_digits, luhn_check_digit

# The company's own identifiers and the airlines' handles: public, never redacted (see the benchmark config).
COMPANY_ALLOW_LIST: tuple[str, ...] = (
    "support@acme-bank.com",
    "@acme_help",
    "@united",
    "@USAirways",
    "@AmericanAir",
    "@SouthwestAir",
    "@JetBlue",
    "@VirginAmerica",
    "@Delta",
    "@DeltaAssist",
    "@AmericanAirlines",
    "@virginatlantic",
)

FIRST = (
    "John", "Mary", "Ahmed", "Priya", "Wei", "Olga", "Carlos", "Fatima", "James", "Aisha", "Tom", "Sofia",
    "Liam", "Chloe", "Mohammed", "Hannah", "Kenji", "Grace", "Daniel", "Zoe", "Lucas", "Amara", "Ivan", "Nora",
)  # fmt: skip
LAST = (
    "Smith", "Nguyen", "Patel", "O'Brien", "McDonald", "Smith-Jones", "Kowalski", "Okafor", "Garcia", "Muller",
    "Johansson", "Rossi", "Tanaka", "Brown", "Haddad", "Fischer", "Novak", "Walsh", "Kim", "Silva",
)  # fmt: skip
_DOMAINS = (
    "gmail.com", "mail.example.co.uk", "corp.acme-bank.de", "yahoo.fr", "outlook.com", "student.uni-example.edu",
    "proton.me", "example.org",
)  # fmt: skip


@dataclass(frozen=True)
class PiiExample:
    """One corpus text with the true spans of the personal data spliced into it.

    Attributes:
        text: The real text with fake personal data and negative controls inserted.
        spans: True entity spans in ``text``, sorted.
        negatives: Spans of the inserted negative controls (must stay untouched).
        source: The real text it was built from.
        label: The real text's label, when the source had one.
    """

    text: str
    spans: tuple[Span, ...]
    negatives: tuple[tuple[int, int], ...]
    source: str
    label: str | None = None


# A fragment: its text and the (start, end, entity) spans inside it; entity "" marks a negative control.
Fragment = tuple[str, list[tuple[int, int, str]]]


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return str(items[int(rng.integers(len(items)))])


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(int(d)) for d in rng.integers(0, 10, n))


def _alnum(rng: np.random.Generator, n: int) -> str:
    """Upper-case letters and digits with at least two digits, e.g. "A1B2C3D4"."""
    chars = [_pick(rng, "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(n)]
    chars[1], chars[-1] = str(int(rng.integers(10))), str(int(rng.integers(10)))
    return "".join(chars)


def _cue(template: str, value: str, entity: str) -> Fragment:
    """A fragment with ``value`` at the ``{}`` of ``template`` and the span it fills.

    Example: ("mail {} now", "a@b.io", "EMAIL") -> ("mail a@b.io now", [(5, 11, "EMAIL")])
    """
    start = template.index("{}")
    return template.replace("{}", value, 1), [(start, start + len(value), entity)]


def _email(rng: np.random.Generator) -> str:
    first, last = _pick(rng, FIRST).lower(), _pick(rng, LAST).lower().replace("'", "")
    local = _pick(
        rng,
        (
            f"{first}.{last}", f"{first}{_digits(rng, 2)}", f"{first}+bank", f"{first[0]}_{last}",
            f"_{first}.{last}", f"-{first}", f"{_pick(rng, ('o', 'd'))}'{last}",
        ),
    )  # fmt: skip
    email = f"{local}@{_pick(rng, _DOMAINS)}"
    return email.upper() if rng.random() < 0.05 else email


def _phone(rng: np.random.Generator) -> str:
    a, b, c = _digits(rng, 3), _digits(rng, 3), _digits(rng, 4)
    a = str(int(rng.integers(2, 10))) + a[1:]
    formats = (
        f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"+1-{a}-{b}-{c}", f"{a}{b}{c}",
        f"020 {_digits(rng, 4)} {_digits(rng, 4)}", f"07{_digits(rng, 3)} {_digits(rng, 6)}",
        f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}", f"+44 7{_digits(rng, 3)} {_digits(rng, 6)}",
        f"+49 30 {_digits(rng, 8)}", f"+33 1 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
        f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}", f"+61 2 {_digits(rng, 4)} {_digits(rng, 4)}",
        f"{a}/{b}-{c}", f"{a}-{b}-{c}x{_digits(rng, 2)}",
        f"+33 (0)6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
        f"+31 (0)20 {_digits(rng, 3)} {_digits(rng, 4)}",
        f"+41 (0)44 {_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 2)}",
        f"0049 30 {_digits(rng, 8)}", f"0033 6 {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
        f"0044 20 {_digits(rng, 4)} {_digits(rng, 4)}", f"00447{_digits(rng, 9)}",
        f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)} ext. {_digits(rng, 3)}",
        f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}x{_digits(rng, 2)}", f"+1 {a} {b} {c} ext {_digits(rng, 1)}",
        f"{a} - {b} - {c}", f"({a}) {b} - {c}",
        f"+44 020 {_digits(rng, 4)} {_digits(rng, 4)}", f"+49 030 {_digits(rng, 8)}",
        f"+33 0{int(rng.integers(1, 10))} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)} {_digits(rng, 2)}",
    )  # fmt: skip
    return _pick(rng, formats)


_PHONE_CUES = ("call me on {}", "my number is {}", "tel: {}", "{}", "phone {}")


def _phone_fragment(rng: np.random.Generator, controls: bool = True) -> Fragment:
    """A phone number behind a cue; with ``controls``, one in six has a quantity after it, a negative control.

    The quantity ("+49 30 45925534 10 min") tests that a number after a complete phone number,
    with a unit word after it, stays.
    """
    text, spans = _cue(_pick(rng, _PHONE_CUES), _phone(rng), "PHONE")
    if controls and rng.random() < 1 / 6:
        quantity = f"{int(rng.integers(1, 60))} {_pick(rng, ('min', 'minutes', 'hours', 'days', 'times'))}"
        spans.append((len(text) + 1, len(text) + 1 + len(quantity), ""))
        text = f"{text} {quantity}"
    return text, spans


def _card(rng: np.random.Generator) -> str:
    issuer = _pick(rng, ("visa", "mastercard", "mastercard2", "amex"))
    prefix = {"visa": "4", "mastercard": f"5{int(rng.integers(1, 6))}", "mastercard2": "2221", "amex": "37"}[issuer]
    length = 15 if issuer == "amex" else 16
    body = prefix + _digits(rng, length - len(prefix) - 1)
    number = body + luhn_check_digit(body)
    cuts = (0, 4, 10, 15) if issuer == "amex" else (0, 4, 8, 12, 16)
    groups = [number[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    return _pick(rng, (" ".join(groups), "-".join(groups), ".".join(groups), number))


# Country: a function making the BBAN (letters where the country's format has them).
_BBANS: dict[str, Callable[[np.random.Generator], str]] = {
    "GB": lambda r: "".join(_pick(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + _digits(r, 14),
    "DE": lambda r: _digits(r, 18),
    "FR": lambda r: _digits(r, 23),
    "ES": lambda r: _digits(r, 20),
    "NL": lambda r: "".join(_pick(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + _digits(r, 10),
    "IT": lambda r: _pick(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + _digits(r, 22),
    "CH": lambda r: _digits(r, 17),
    "BE": lambda r: _digits(r, 12),
}


def _iban(rng: np.random.Generator) -> str:
    country = _pick(rng, tuple(_BBANS))
    bban = _BBANS[country](rng)
    iban = country + iban_check_digits(country, bban) + bban
    assert len(iban) == IBAN_LENGTHS[country]  # the BBAN makers above follow the length table
    groups = [iban[i : i + 4] for i in range(0, len(iban), 4)]
    style = rng.random()
    if style < 0.35:
        return " ".join(groups)
    if style < 0.45:
        return "-".join(groups)
    if style < 0.5:
        return groups[0] + "  " + " ".join(groups[1:])  # a double space, as typed after the country part
    return iban


def _ssn(rng: np.random.Generator) -> Fragment:
    area = int(rng.integers(1, 900))
    area = 667 if area == 666 else area
    ssn = (f"{area:03d}", f"{int(rng.integers(1, 100)):02d}", f"{int(rng.integers(1, 10000)):04d}")
    nino = _pick(rng, "ABCEHJKLMPRSTWY") + _pick(rng, "ABCEHJKLMPRSTWY") + _digits(rng, 6) + _pick(rng, "ABCD")
    choice = int(rng.integers(5))
    if choice == 0:
        return _cue("my SSN is {}", "".join(ssn), "SSN")
    if choice == 1:
        return _cue("social security number {}", " ".join(ssn), "SSN")
    if choice == 2:
        spaced = f"{nino[:2]} {nino[2:4]} {nino[4:6]} {nino[6:8]} {nino[8]}"
        return _cue("NI number {}", _pick(rng, (nino, spaced)), "SSN")
    gaps = _pick(rng, ("--", "--", "  ", "- ", " -"))  # the same separator twice, or a dash and a space mixed
    value = f"{ssn[0]}{gaps[0]}{ssn[1]}{gaps[1]}{ssn[2]}"
    return _cue(_pick(rng, ("SSN: {}", "ssn {}", "{} is my social")), value, "SSN")


def _account(rng: np.random.Generator) -> Fragment:
    templates = (
        ("account {}", _digits(rng, 8)),
        ("acct #{}", f"AC-{_digits(rng, 5)}"),
        ("a/c no. {}", _digits(rng, 8)),
        ("account number: {}", f"{_digits(rng, 4)}-{_digits(rng, 4)}-{_digits(rng, 2)}"),
        ("Account No {}", _digits(rng, 10)),
        ("my account is {}", f"{_digits(rng, 2)}-{_digits(rng, 6)}"),
        ("acc {}", _digits(rng, 9)),
    )
    return _cue(*templates[int(rng.integers(len(templates)))], "ACCOUNT")


def _order(rng: np.random.Generator) -> Fragment:
    year = str(int(rng.integers(2019, 2027)))
    templates = (
        ("order #{}", _alnum(rng, 8)),
        ("{}", f"ORD-{year}-{_digits(rng, 6)}"),
        ("order number {}", _digits(rng, 5)),
        ("order no. {}", _digits(rng, 8)),
        ("Order ID: {}", _alnum(rng, 10)),
        ("my order {}", f"{_digits(rng, 3)}-{_digits(rng, 7)}"),
    )
    return _cue(*templates[int(rng.integers(len(templates)))], "ORDER")


def _url(rng: np.random.Generator) -> str:
    path = f"{_pick(rng, ('orders', 'account', 'reset', 'p'))}/{_digits(rng, 5)}"
    return _pick(
        rng,
        (
            f"https://www.example.com/{path}",
            f"http://shop.example.co.uk/{path}?ref={_digits(rng, 4)}",
            f"https://my-bank-login.net/{path}",
            f"www.my-site.org/{path}",
            "www.janes-blog.io",
            f"example.io/{path}",
            f"https://bit.ly/{_alnum(rng, 6).lower()}",
        ),
    )


def _handle(rng: np.random.Generator) -> str:
    first, last = _pick(rng, FIRST), _pick(rng, LAST).replace("'", "").replace("-", "")
    return "@" + _pick(rng, (f"{first}{last}", f"{first.lower()}_{_digits(rng, 2)}", f"{first[0]}{last}_", last))


def _person(rng: np.random.Generator) -> tuple[Fragment, bool]:
    """A name behind a cue; True when the fragment is a signature that belongs at the end."""
    first, last = _pick(rng, FIRST), _pick(rng, LAST)
    full = f"{first} {last}"
    options = (
        (("my name is {}", full), False),
        (("Hi, this is {}", first), False),
        (("Mr {}", last), False),
        (("Ms. {}", last), False),
        (("Dr {}", full), False),
        (("Hello, I'm {}", first), False),
        (("Thanks, {}", first), True),
        (("Regards, {}", full), True),
        (("Cheers, {}", first), True),
    )
    (template, value), is_signature = options[int(rng.integers(len(options)))]
    return _cue(template, value, "PERSON"), is_signature


def _negative(rng: np.random.Generator) -> str:
    """A negative control: numbers and words that look like personal data but are not."""
    n = lambda low, high: int(rng.integers(low, high))  # noqa: E731
    year = f"20{n(19, 27)}"
    return _pick(
        rng,
        (
            f"I paid ${n(1, 9)},{_digits(rng, 3)}.{_digits(rng, 2)}",
            f"it was €{n(5, 999)}",
            f"on {n(1, 13):02d}/{n(1, 29):02d}/{year}",
            f"on {year}-{n(1, 13):02d}-{n(1, 29):02d}",
            f"at {n(1, 13)}:{n(0, 60):02d}",
            f"flight UA {_digits(rng, 4)}",
            f"flight {_digits(rng, 4)}",
            f"card ending {_digits(rng, 4)}",
            f"order of {n(2, 20)} items",
            f"seat {n(1, 40)}C",
            f"gate B{_digits(rng, 2)}",
            f"version {n(1, 9)}.{n(0, 9)}.{n(0, 9)}",
            f"{n(2, 99)}% fee",
            f"in {year}",
            f"zip {_digits(rng, 5)}",
            "support@acme-bank.com",
            "@acme_help",
            "This is Ridiculous",
            "my account balance",
            "10 min",
            f"room {n(100, 1000)}/{n(100, 1000)} upstairs",
            f"code 00{_digits(rng, 2)} sent",
            f"build {n(1, 9)}.{_digits(rng, 4)}.{_digits(rng, 4)}",
        ),
    )


def _pii_fragment(rng: np.random.Generator, entity: str, controls: bool = True) -> tuple[Fragment, bool]:
    """One fragment of ``entity`` (negative controls in it only with ``controls``) and whether it goes at the end."""
    plain: dict[str, tuple[Callable[[np.random.Generator], str], tuple[str, ...]]] = {
        "EMAIL": (_email, ("my email is {}", "mail me at {}", "contact: {}", "({})", "{}")),
        "CARD": (_card, ("my card {}", "card number {}", "{}", "charged to {}")),
        "IBAN": (_iban, ("IBAN {}", "to {}", "transfer from {}", "{}")),
        "URL": (_url, ("see {}", "link: {}", "{}", "on {} it says")),
        "HANDLE": (_handle, ("{}", "cc {}", "ask {}", "my friend {}")),
    }
    if entity in plain:
        make, templates = plain[entity]
        return _cue(_pick(rng, templates), make(rng), entity), False
    if entity == "PERSON":
        return _person(rng)
    if entity == "PHONE":
        return _phone_fragment(rng, controls), False
    return {"SSN": _ssn, "ACCOUNT": _account, "ORDER": _order}[entity](rng), False


# After these words a bare number reads as that thing ("my account 415-555-0132" is an account number),
# so a fragment is not inserted right behind them: the true label would be wrong, not the redactor.
_CUE_WORDS = frozenset(
    {"account", "acct", "acc", "a/c", "order", "ssn", "number", "no", "no.", "#", "is", "mr", "ms", "dr"}
)


def _insertion_point(words: list[Fragment], rng: np.random.Generator) -> int:
    """A random word boundary that does not follow a cue word (the last draw wins after ten tries)."""
    position = 0
    for _ in range(10):
        position = int(rng.integers(len(words) + 1))
        before = words[position - 1][0].lower().strip(",.:;!?") if position else ""
        if before not in _CUE_WORDS:
            break
    return position


def _splice(
    base: str, inserts: list[tuple[Fragment, bool]], rng: np.random.Generator
) -> tuple[str, list[Span], list[tuple[int, int]]]:
    """Insert fragments between words of ``base`` (signatures last); return text, entity spans, negatives."""
    words: list[Fragment] = [(w, []) for w in base.split()]
    for fragment, at_end in inserts:
        words.insert(len(words) if at_end else _insertion_point(words, rng), fragment)
    text, spans, negatives = "", list[Span](), list[tuple[int, int]]()
    for piece, inner in words:
        offset = len(text) + (1 if text else 0)
        text = f"{text} {piece}" if text else piece
        for start, end, entity in inner:
            if entity:
                spans.append(Span(offset + start, offset + end, entity))
            else:
                negatives.append((offset + start, offset + end))
    return text, sorted(spans), negatives


def generate_pii_corpus(
    texts: Sequence[str],
    n: int,
    seed: int,
    labels: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    *,
    each: bool = False,
    controls: bool = True,
) -> list[PiiExample]:
    """``n`` texts drawn from ``texts`` with 1-3 PII fragments and 0-2 negative controls each.

    The same arguments give the same corpus. Entity types are drawn uniformly, so each
    type gets about ``2n / len(entities)`` true spans.

    Args:
        texts: Real texts to splice into.
        n: Corpus size.
        seed: Seed of the generator.
        labels: The texts' labels, carried over to the examples.
        entities: Entity types to insert (all of :data:`ENTITIES` by default).
        each: Use ``texts[i % len(texts)]`` for example ``i`` instead of a random draw, so that
            example ``i`` pairs with text ``i`` (for raw-versus-spliced comparisons).
        controls: Insert negative controls too.
    """
    if n < 1 or not texts:
        raise ConfigError(f"generate_pii_corpus needs n >= 1 and some texts, got n={n} and {len(texts)} texts")
    kinds = tuple(entities or ENTITIES)
    rng = np.random.default_rng(seed)
    corpus: list[PiiExample] = []
    for _ in range(n):
        k = len(corpus) % len(texts) if each else int(rng.integers(len(texts)))
        inserts = [_pii_fragment(rng, _pick(rng, kinds), controls) for _ in range(int(rng.integers(1, 4)))]
        signatures = [f for f in inserts if f[1]][:1]  # one sign-off per message, after everything else
        decoys = [_negative(rng) for _ in range(int(rng.integers(0, 3)))] if controls else []
        inserts += [((decoy, [(0, len(decoy), "")]), False) for decoy in decoys]
        inserts = [f for f in inserts if not f[1]]
        order = rng.permutation(len(inserts))
        text, spans, negatives = _splice(texts[k], [inserts[i] for i in order] + signatures, rng)
        corpus.append(PiiExample(text, tuple(spans), tuple(negatives), texts[k], labels[k] if labels else None))
    return corpus


_UNSAFE_BASE = re.compile(r"https?:|www\.|\S@\S|\d(?:[\s().-]?\d){6,}", re.IGNORECASE)
_HANDLE = re.compile(r"@\w+")


def usable_base(text: str, allow_list: Sequence[str] = COMPANY_ALLOW_LIST) -> bool:
    """Whether a real text is free of signs of unlabelled personal data (see the module docstring).

    Example: usable_base("@united lost my bag") -> True; usable_base("@jane_doe lost my bag") -> False
    """
    allowed = {a.casefold() for a in allow_list}
    if _UNSAFE_BASE.search(text):
        return False
    return all(h.casefold() in allowed for h in _HANDLE.findall(text))


def _first_columns(path: Path) -> list[str]:
    """The header of a CSV file or the keys of a JSONL file's first object; [] when unreadable (the loader says why).

    Example: _first_columns(Path("test.csv")) with header ``text,category`` -> ["text", "category"]
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if path.suffix.lower() == ".csv":
                return next(csv.reader(handle), [])
            row = json.loads(next((line for line in handle if line.strip()), "{}"))
    except (OSError, ValueError, RecursionError, csv.Error):  # undecodable bytes and bad JSON are ValueErrors
        return []
    return list(row) if isinstance(row, dict) else []


def label_column(path: Path) -> str:
    """The label column to read when none is named: ``label``, or ``category`` in a file that has no ``label``.

    Example: label_column(Path("banking77/test.csv")) -> "category" (its header is ``text,category``)
    """
    columns = _first_columns(Path(path))
    return "category" if "label" not in columns and "category" in columns else "label"


def load_labelled_texts(path: str | Path, text_col: str = "text", label_col: str | None = None) -> LabelledTexts:
    """A labelled CSV or JSONL file, read as training data is (:func:`~hybridroute.data.load_labelled`).

    ``label_col`` None: :func:`label_column`. Blank texts are dropped; a missing file, undecodable bytes, a
    missing or repeated column and a row without a label are a ``DataError`` naming the file.
    """
    path = Path(path)
    return load_labelled(DataConfig(path, text_col, label_col or label_column(path)))
