"""Optional: Microsoft Presidio's pattern recognizers behind this package's Recognizer interface.

Presidio's predefined recognizers for e-mail, phone (via ``phonenumbers``), payment card
(Luhn), IBAN (mod 97), US SSN and URL run offline when called directly with
``nlp_artifacts=None``: no spaCy model is loaded, so no context words raise or lower
scores. Two things need care on an offline machine, both handled here:

* ``EmailRecognizer.validate_result`` calls ``tldextract.extract``, which tries to fetch
  the public-suffix list from the internet on first use (and logs a failure before falling
  back to its bundled snapshot); :class:`_OfflineEmailRecognizer` uses an extractor
  that reads only the snapshot;
* ``AnalyzerEngine`` builds a spaCy NLP engine and wants ``en_core_web_lg``, which cannot be
  downloaded here, so it is not used. Presidio has no offline recognizer for account or
  order numbers, social handles or (without spaCy NER) person names; those stay with
  :mod:`hybridroute.redaction.recognizers`.

Install with the ``redact`` extra (``presidio-analyzer``; pulls spaCy, ~200 MB, no torch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hybridroute.errors import ConfigError
from hybridroute.redaction.recognizers import PRIORITY, Recognizer, Span, default_recognizers

# Our entity type -> Presidio's.
PRESIDIO_ENTITIES: dict[str, str] = {
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "CARD": "CREDIT_CARD",
    "IBAN": "IBAN_CODE",
    "SSN": "US_SSN",
    "URL": "URL",
}
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "CA")  # the regions a support desk hears from most


@dataclass(frozen=True)
class PresidioRecognizer:
    """One Presidio ``EntityRecognizer`` called without an NLP engine."""

    entity: str
    recognizer: Any
    priority: int
    min_score: float = 0.3  # Presidio scores bare phone matches 0.4 and URLs 0.5 without context words

    def find(self, text: str) -> list[Span]:
        """Spans of Presidio results at or above ``min_score``."""
        results = self.recognizer.analyze(text, [PRESIDIO_ENTITIES[self.entity]], nlp_artifacts=None)
        return [Span(r.start, r.end, self.entity) for r in results if r.score >= self.min_score]


def presidio_recognizers(entities: Iterable[str] | None = None) -> list[Recognizer]:
    """Presidio's recognizers for the types it covers offline, ours for the rest.

    Raises:
        ConfigError: presidio-analyzer is not installed (``pip install 'hybridroute[redact]'``).
    """
    try:
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            IbanRecognizer,
            PhoneRecognizer,
            UrlRecognizer,
            UsSsnRecognizer,
        )
    except ImportError as exc:
        raise ConfigError("presidio recognizers need presidio-analyzer: pip install 'hybridroute[redact]'") from exc
    wanted = list(PRIORITY if entities is None else entities)
    makers = {
        "EMAIL": _offline_email_recognizer,
        "PHONE": lambda: PhoneRecognizer(supported_regions=PHONE_REGIONS),
        "CARD": CreditCardRecognizer,
        "IBAN": IbanRecognizer,
        "SSN": UsSsnRecognizer,
        "URL": UrlRecognizer,
    }
    ours: list[Recognizer] = default_recognizers([e for e in wanted if e not in makers])
    theirs: list[Recognizer] = [PresidioRecognizer(e, makers[e](), PRIORITY[e]) for e in wanted if e in makers]
    return theirs + ours


def _offline_email_recognizer() -> Any:
    """Presidio's EmailRecognizer with a tldextract that never goes to the network."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    class _OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        _extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

        def validate_result(self, pattern_text: str) -> bool:
            return self._extract(pattern_text).fqdn != ""

    return _OfflineEmailRecognizer()
