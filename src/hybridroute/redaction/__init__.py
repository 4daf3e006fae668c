"""PII redaction before escalation: no text leaves the edge with personal data in it.

Example:
    >>> Redactor().redact("mail jo@example.com or call 415-555-0132").text
    'mail <EMAIL> or call <PHONE>'
"""

from hybridroute.redaction.config import ENTITIES, RedactionConfig
from hybridroute.redaction.recognizers import PatternRecognizer, Recognizer, Span, default_recognizers
from hybridroute.redaction.redactor import Redaction, Redactor, total_counts
from hybridroute.redaction.validators import iban_valid, luhn_valid

__all__ = [
    "ENTITIES",
    "PatternRecognizer",
    "Recognizer",
    "Redaction",
    "RedactionConfig",
    "Redactor",
    "Span",
    "default_recognizers",
    "iban_valid",
    "luhn_valid",
    "total_counts",
]
