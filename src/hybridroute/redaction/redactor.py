"""The redactor: find personal data, resolve overlaps, replace it with typed placeholders."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hybridroute.redaction.config import RedactionConfig
from hybridroute.redaction.recognizers import Recognizer, Span, default_recognizers


@dataclass(frozen=True)
class Redaction:
    """A redacted text, how many entities of each type it lost, and where they were.

    Attributes:
        text: The text with every found entity replaced by its placeholder.
        counts: Entities replaced, by type (only types with at least one).
        spans: Where the replaced entities sat in the *original* text, sorted by start.
    """

    text: str
    counts: dict[str, int] = field(default_factory=dict)
    spans: tuple[Span, ...] = ()


def resolve_overlaps(spans: Sequence[Span], priority: dict[str, int]) -> list[Span]:
    """The non-overlapping subset that covers the most characters; priority breaks ties.

    Covering the most characters is what keeps data from leaking: a chance Luhn-valid window
    across an SSN and the card after it ("789 34 [4968 4880 4495 8733] 1378") loses to the
    SSN plus the real card. Weighted interval scheduling, O(n log n).

    Example: a CARD and a PHONE over the same digits -> only the CARD (same length, priority 80 beats 50).
    """
    ranked = sorted(set(spans), key=lambda s: (s.end, s.start))
    ends = [s.end for s in ranked]
    best: list[tuple[int, list[Span]]] = [(0, [])]  # best[i]: (weight, chosen) using the first i spans
    for i, span in enumerate(ranked):
        weight = (span.end - span.start) * 1000 + priority.get(span.entity, 0)
        previous = bisect.bisect_right(ends, span.start, 0, i)  # spans ending at or before this start
        with_it = best[previous][0] + weight
        best.append((with_it, [*best[previous][1], span]) if with_it > best[i][0] else best[i])
    return sorted(best[-1][1])


def apply_placeholders(text: str, spans: Sequence[Span], config: RedactionConfig) -> str:
    """Replace non-overlapping, sorted ``spans`` of ``text`` with their placeholders.

    Example: apply_placeholders("mail a@b.io", [Span(5, 11, "EMAIL")], RedactionConfig()) -> "mail <EMAIL>"
    """
    pieces, cursor = [], 0
    for span in spans:
        pieces += [text[cursor : span.start], config.mark(span.entity)]
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)


@dataclass
class Redactor:
    """Recognizers + config: ``Redactor().redact(text)`` replaces personal data with placeholders.

    Build it with the default recognizers (``Redactor(config)``) or hand in any list of
    objects following :class:`~hybridroute.redaction.recognizers.Recognizer`, such as the
    Presidio adapters in :mod:`hybridroute.redaction.presidio`.
    """

    config: RedactionConfig = field(default_factory=RedactionConfig)
    recognizers: Sequence[Recognizer] | None = None

    def __post_init__(self) -> None:
        chosen = default_recognizers(self.config.entities) if self.recognizers is None else self.recognizers
        self.recognizers = [r for r in chosen if r.entity in self.config.entities]
        self._priority = {r.entity: r.priority for r in self.recognizers}
        self._allowed = frozenset(a.casefold() for a in self.config.allow_list)

    def find(self, text: str) -> list[Span]:
        """The spans that would be replaced: recognized, not allow-listed, overlaps resolved."""
        if not isinstance(text, str):
            raise TypeError(f"redaction takes a str, got a {type(text).__name__}")
        if not self.config.enabled or not text:
            return []
        assert self.recognizers is not None  # set in __post_init__
        found = [s for r in self.recognizers for s in r.find(text)]
        # Allow-listed strings shield their whole span, so a company address does not become a URL either.
        shielded = [s for s in found if text[s.start : s.end].casefold() in self._allowed]
        kept = [s for s in found if not any(s.overlaps(a) for a in shielded)]
        return resolve_overlaps(kept, self._priority)

    def redact(self, text: str) -> Redaction:
        """Replace every found entity in ``text`` with its typed placeholder."""
        spans = self.find(text)
        counts = dict(Counter(s.entity for s in spans))
        return Redaction(apply_placeholders(text, spans, self.config), counts, tuple(spans))

    def redact_many(self, texts: Sequence[str]) -> list[Redaction]:
        """:meth:`redact` for each text, in order."""
        return [self.redact(t) for t in texts]


def total_counts(redactions: Sequence[Redaction]) -> dict[str, int]:
    """Entity counts summed over many redactions.

    Example: total_counts([Redaction("", {"EMAIL": 1}), Redaction("", {"EMAIL": 2})]) -> {"EMAIL": 3}
    """
    total: Counter[str] = Counter()
    for r in redactions:
        total.update(r.counts)
    return dict(total)
