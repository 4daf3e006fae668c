"""What the redactor removes and how it marks the holes."""

from __future__ import annotations

from dataclasses import dataclass

from hybridroute.errors import ConfigError

# Every entity type a recognizer in this package can find, in placeholder spelling.
ENTITIES: tuple[str, ...] = (
    "EMAIL",
    "PHONE",
    "CARD",
    "IBAN",
    "SSN",
    "ACCOUNT",
    "ORDER",
    "URL",
    "HANDLE",
    "PERSON",
)


@dataclass(frozen=True)
class RedactionConfig:
    """Which personal data is replaced before a text leaves the edge.

    Attributes:
        enabled: Redaction is on unless a deployment turns it off on purpose.
        entities: Entity types to redact, a subset of :data:`ENTITIES`.
        allow_list: Strings never redacted (compared case-insensitively with the whole match),
            e.g. the company's own support address or social handle.
        placeholder: Format of the replacement; ``{entity}`` becomes the type, e.g. ``<EMAIL>``.
    """

    enabled: bool = True
    entities: tuple[str, ...] = ENTITIES
    allow_list: tuple[str, ...] = ()
    placeholder: str = "<{entity}>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "entities", tuple(self.entities))
        object.__setattr__(self, "allow_list", tuple(self.allow_list))
        check_bool("enabled", self.enabled)
        check_entities(self.entities)
        check_allow_list(self.allow_list)
        check_placeholder(self.placeholder)

    @classmethod
    def disabled(cls) -> RedactionConfig:
        """Redaction off: texts go to the cloud as typed (only for data that holds no personal data)."""
        return cls(enabled=False)

    def mark(self, entity: str) -> str:
        """The placeholder for one entity type, e.g. ``mark("EMAIL") -> "<EMAIL>"``."""
        return self.placeholder.format(entity=entity)


def check_bool(name: str, value: object) -> None:
    """Raise unless ``value`` is a bool (so "false" from a config file is not silently true)."""
    if not isinstance(value, bool):
        raise ConfigError(f"RedactionConfig.{name} must be true or false, got {value!r}")


def check_entities(entities: tuple[str, ...]) -> None:
    """Raise unless every entity is known and none repeats.

    Example: check_entities(("EMAIL", "FAX")) -> ConfigError naming FAX and listing ENTITIES
    """
    unknown = [e for e in entities if e not in ENTITIES]
    if unknown:
        raise ConfigError(
            f"RedactionConfig.entities holds unknown types {unknown!r}; known types: {', '.join(ENTITIES)}"
        )
    if len(set(entities)) != len(entities):
        raise ConfigError(f"RedactionConfig.entities repeats a type: {entities!r}")


def check_allow_list(allow_list: tuple[str, ...]) -> None:
    """Raise unless every allow-list entry is a non-blank string."""
    bad = [a for a in allow_list if not isinstance(a, str) or not a.strip()]
    if bad:
        raise ConfigError(f"RedactionConfig.allow_list entries must be non-blank strings, got {bad!r}")


def check_placeholder(placeholder: str) -> None:
    """Raise unless the placeholder names ``{entity}`` and formats cleanly."""
    try:
        ok = isinstance(placeholder, str) and "{entity}" in placeholder and bool(placeholder.format(entity="X"))
    except (KeyError, IndexError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"RedactionConfig.placeholder must contain '{{entity}}' and no other fields, got {placeholder!r}"
        )
