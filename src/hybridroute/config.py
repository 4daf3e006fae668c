"""Typed, validated configuration for every stage.

Every config is a frozen dataclass whose ``__post_init__`` calls small named
checks; a bad value raises :class:`ConfigError` naming the field, the value and
what is allowed. Only this module reads configuration files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from hybridroute.errors import ConfigError

T = TypeVar("T")

DEFAULT_EDGE_BASE = "minilm"  # resolved to the packaged all-MiniLM-L6-v2 folder
POOLING_CHOICES = ("mean", "cls")
MIN_ADAPT_EPOCHS = 0.01  # masked-LM passes; fewer is no adaptation (use --no-adapt)
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most other generators accept 32-bit seeds


# ---------------------------------------------------------------- checks


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise unless ``low <= value <= high``.

    Example: check_range("epochs", 0, 1, 100) -> ConfigError("epochs must be in [1, 100], got 0")
    """
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")


def check_probability(name: str, value: float) -> None:
    """Raise unless ``value`` lies in [0, 1]."""
    check_range(name, value, 0.0, 1.0)


def check_positive(name: str, value: float) -> None:
    """Raise unless ``value > 0``."""
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def check_seed(name: str, value: int) -> None:
    """Raise unless ``value`` is a seed every random generator we use accepts: an integer in [0, 2**32 - 1]."""
    check_range(name, value, 0, MAX_SEED)


def check_adapt_epochs(epochs: float) -> None:
    """Raise unless masked-LM ``epochs`` lie in [0.01, 100].

    A fraction of a pass is fine, but 0 would still train one batch: skipping adaptation is spelled ``--no-adapt``.
    """
    try:
        check_range("epochs", epochs, MIN_ADAPT_EPOCHS, 100.0)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; to skip adaptation use `hybridroute train --no-adapt`") from exc


def check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    allowed = tuple(choices)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


# ---------------------------------------------------------------- configs


@dataclass(frozen=True)
class DataConfig:
    """Where labelled data comes from and how it is split."""

    path: Path
    text_col: str = "text"
    label_col: str = "label"
    strict: bool = False  # if True, blank texts are an error instead of being dropped and counted
    val_fraction: float = 0.1  # enough for early stopping and calibration, small enough to keep training data
    seed: int = 13

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        check_range("val_fraction", self.val_fraction, 0.01, 0.5)
        check_seed("seed", self.seed)
        if not self.text_col or not self.label_col:
            raise ConfigError("text_col and label_col must be non-empty column names")
        if self.text_col == self.label_col:
            raise ConfigError(f"text_col and label_col must differ, both are {self.text_col!r}")


@dataclass(frozen=True)
class AdaptConfig:
    """Domain-adaptive masked-LM pretraining of the base encoder."""

    base_model: str = DEFAULT_EDGE_BASE
    epochs: float = 1.0  # one pass over domain text moves the embeddings towards its vocabulary cheaply
    max_length: int = 64  # customer messages are short; p95 of banking77 is 37 tokens
    mlm_probability: float = 0.15  # BERT's masking rate
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_texts: int = 20000  # caps adaptation time on large corpora
    heldout_fraction: float = 0.05  # texts kept out to report MLM loss before and after
    seed: int = 13

    def __post_init__(self) -> None:
        check_adapt_epochs(self.epochs)
        check_range("max_length", self.max_length, 8, 512)
        check_seed("seed", self.seed)
        check_range("mlm_probability", self.mlm_probability, 0.01, 0.9)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)
        check_range("max_texts", self.max_texts, 10, 10_000_000)
        check_range("heldout_fraction", self.heldout_fraction, 0.01, 0.5)


@dataclass(frozen=True)
class FinetuneConfig:
    """Two-stage fine-tuning: head warm-up on a frozen encoder, then the whole model."""

    head_epochs: int = 10  # cheap: the frozen encoder's features are computed once
    head_learning_rate: float = 3e-3
    epochs: int = 5  # banking77 plateaus by epoch 4-5 at this rate; keeps `train` under 30 min on 2 cores
    learning_rate: float = 1e-4  # small encoders tolerate (and need) a larger rate than BERT-base
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    label_smoothing: float = 0.05  # softer targets calibrate better and quantize more gracefully
    batch_size: int = 32
    max_length: int = 64
    patience: int = 2  # epochs without validation improvement before stopping
    pooling: str = "mean"  # MiniLM was trained as a mean-pooled sentence encoder
    dropout: float = 0.1
    seed: int = 13
    # With a teacher (e.g. the cloud tier), the loss mixes the label cross-entropy with the KL divergence to
    # the teacher's softened distribution; distill_weight is that term's share. Without a teacher both are unused.
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    # With a teacher: perturbed copies of each training text (words dropped and swapped) that the teacher labels,
    # so the student sees more of the teacher's function; 0 = none. Each copy adds a training set's worth of work.
    augment_copies: int = 0
    layers: int = 0  # keep only the encoder's first N transformer layers (a shallower student); 0 = all

    def __post_init__(self) -> None:
        check_range("head_epochs", self.head_epochs, 0, 1000)
        check_range("layers", self.layers, 0, 1000)
        check_range("epochs", self.epochs, 0, 1000)
        check_range("head_learning_rate", self.head_learning_rate, 1e-7, 1.0)
        check_range("learning_rate", self.learning_rate, 1e-7, 1.0)
        check_range("warmup_ratio", self.warmup_ratio, 0.0, 0.5)
        check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("label_smoothing", self.label_smoothing, 0.0, 0.5)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("max_length", self.max_length, 8, 512)
        check_range("patience", self.patience, 1, 1000)
        check_choice("pooling", self.pooling, POOLING_CHOICES)
        check_probability("dropout", self.dropout)
        check_probability("distill_weight", self.distill_weight)
        check_range("distill_temperature", self.distill_temperature, 0.1, 100.0)
        check_range("augment_copies", self.augment_copies, 0, 10)
        check_seed("seed", self.seed)
        if self.head_epochs == 0 and self.epochs == 0:
            raise ConfigError("head_epochs and epochs are both 0: nothing would be trained")


@dataclass(frozen=True)
class CompressConfig:
    """ONNX export, INT8 quantization and the gates an edge bundle must pass."""

    opset: int = 17
    max_accuracy_drop: float = 0.01  # INT8 may lose at most 1 point of validation accuracy
    min_parity_agreement: float = 0.99  # ONNX FP32 vs PyTorch top-1 agreement
    max_logit_diff: float = 1e-3  # ONNX FP32 vs PyTorch, largest absolute logit difference
    per_channel: bool = True  # per-channel weight scales keep small encoders accurate under INT8
    quantize_embeddings: bool = True  # the word embeddings are half of MiniLM's bytes
    smoothing: bool = True  # flatten activation outliers into the weights before INT8 (compression/smoothing.py)
    smoothing_texts: int = 512  # training texts whose activations choose the smoothing
    parity_samples: int = 256

    def __post_init__(self) -> None:
        check_range("opset", self.opset, 14, 23)
        check_probability("max_accuracy_drop", self.max_accuracy_drop)
        check_probability("min_parity_agreement", self.min_parity_agreement)
        check_positive("max_logit_diff", self.max_logit_diff)
        check_range("parity_samples", self.parity_samples, 1, 1_000_000)
        check_range("smoothing_texts", self.smoothing_texts, 1, 100_000)


# ---------------------------------------------------------------- files


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a config dataclass from a dict, rejecting unknown keys by name.

    Example: config_from_dict(AdaptConfig, {"epochs": 2}) -> AdaptConfig(epochs=2, ...)
    """
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        expected = describe_type(hints[key])
        if expected and not matches_type(value, hints[key]):
            raise ConfigError(
                f"invalid {cls.__name__}: {key} must be {expected}, got {value!r:.80} ({type(value).__name__})"
            )
    try:
        return cls(**values)
    except TypeError as exc:  # a wrong type that the dataclass itself rejects
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc


def is_integer(value: object) -> TypeGuard[int]:
    """An int that is not a bool (``True`` is an int to Python, never to a config file).

    Example: is_integer(3) -> True; is_integer(True) -> False; is_integer(3.0) -> False
    """
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float that is not a bool (NaN and infinities included: callers that refuse them say so).

    Example: is_number(0.5) -> True; is_number("0.5") -> False; is_number(False) -> False
    """
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """An int or a float that is not a bool, NaN or infinite.

    Example: is_finite_number(0.5) -> True; is_finite_number(float("nan")) -> False; is_finite_number(True) -> False
    """
    return is_number(value) and math.isfinite(value)


def _optional_part(hint: Any) -> Any:
    """``X`` for ``X | None`` / ``Optional[X]``, else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None))
    return None


def describe_type(hint: Any) -> str:
    """What a value of a config field's annotation looks like in JSON; "" for annotations not checked.

    Example: describe_type(int) -> "an integer"; describe_type(tuple[str, ...]) -> "a list of strings"
    """
    inner = _optional_part(hint)
    if inner is not None:
        described = describe_type(inner)
        return f"{described} or null" if described else ""
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[1:] == (Ellipsis,):
        item = {str: "strings", int: "integers", float: "numbers"}.get(typing.get_args(hint)[0], "")
        return f"a list of {item}" if item else ""
    return {
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
        Path: "a path (a string)",
    }.get(hint, "")


def matches_type(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a field annotated ``hint``.

    Only a bool fits bool; an int (not a bool) fits int; a finite int or float fits float; a list or tuple
    of fitting items fits ``tuple[X, ...]``; None fits an optional field; a str or Path fits Path.

    Example: matches_type("false", bool) -> False; matches_type(2, float) -> True; matches_type(2.5, int) -> False
    """
    inner = _optional_part(hint)
    if inner is not None:
        return value is None or matches_type(value, inner)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, (list, tuple)) and all(matches_type(v, item) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_integer(value)
    if hint is float:
        return is_finite_number(value)
    if isinstance(value, bool):
        return False
    if hint is Path:
        return isinstance(value, (str, Path))
    if hint is str:
        return isinstance(value, str)
    return True  # annotations describe_type does not know are left to the dataclass's own checks


class RepeatedKey(ValueError):
    """A JSON object names the same key more than once (raised by :func:`unique_keys` inside the parser)."""

    def __init__(self, key: str, count: int) -> None:
        super().__init__(f"key {key!r:.80} appears {count} times in one object")
        self.key, self.count = key, count


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A json ``object_pairs_hook`` that refuses an object naming a key twice (json keeps the last silently).

    Callers catch :class:`RepeatedKey` (a ValueError) before anything else and word it for their input.

    Example: unique_keys([("a", 1), ("b", 2)]) -> {"a": 1, "b": 2}; [("a", 1), ("a", 2)] raises RepeatedKey("a", 2)
    """
    found = dict(pairs)
    if len(found) < len(pairs):
        key, count = Counter(key for key, _ in pairs).most_common(1)[0]
        raise RepeatedKey(key, count)
    return found


def load_json_config(path: Path) -> dict[str, Any]:
    """Read a JSON config file into a dict, with clear errors for a bad path or syntax.

    A leading UTF-8 byte order mark (as some Windows editors write) is skipped; a key given twice in one
    object is refused, naming it.
    """
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; a JSON file is expected")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=unique_keys)
    except RepeatedKey as exc:
        raise ConfigError(f"config file {path}: {exc}; which one was meant is a guess: keep one") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a JSON object, got {type(values).__name__}")
    return values


def config_from_file(cls: type[T], path: Path | None, **overrides: Any) -> T:
    """``cls`` from its defaults, then a JSON file of its fields, then ``overrides`` (None: not given).

    Unknown keys, values of the wrong type and values the dataclass refuses are errors that name the file;
    the file's values are checked on their own before ``overrides`` apply, so a bad one is refused even
    where an override replaces it.

    Example: config_from_file(PriceConfig, Path("prices.json")) with {"cloud_per_query": 0.02} in the file
    """
    values = load_json_config(path) if path is not None else {}
    flags = {key: value for key, value in overrides.items() if value is not None}
    try:
        if values:  # the file's own values first: a flag that replaces a bad one must not hide it
            config_from_dict(cls, values)
        return config_from_dict(cls, values | flags)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None


def to_jsonable(config: Any) -> dict[str, Any]:
    """Turn a config dataclass into JSON-safe values (paths become strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}


TRAIN_SECTIONS = {"adapt": AdaptConfig, "finetune": FinetuneConfig, "compress": CompressConfig}


def build_train_sections(
    config_file: Path | None, overrides: dict[str, dict[str, Any]]
) -> tuple[AdaptConfig, FinetuneConfig, CompressConfig]:
    """Combine defaults, an optional JSON file of sections and command-line overrides (None = not given).

    Example file: {"adapt": {"epochs": 2}, "finetune": {"epochs": 8, "learning_rate": 5e-5}}
    """
    return train_sections(load_json_config(config_file) if config_file else {}, overrides)


def train_sections(
    values: dict[str, Any], overrides: dict[str, dict[str, Any]], defaults: dict[str, Any] | None = None
) -> tuple[AdaptConfig, FinetuneConfig, CompressConfig]:
    """The three sections from already-read file ``values`` and ``overrides`` (None = not given).

    ``defaults`` may replace a section's dataclass defaults by a config of its own (the cloud tier's fine-tuning).
    Each section of the file is checked on its own before ``overrides`` apply, so a bad value is refused even
    where a flag replaces it.
    """
    defaults = defaults or {}
    unknown = sorted(set(values) - set(TRAIN_SECTIONS))
    if unknown:
        raise ConfigError(f"unknown config sections {unknown}; known sections: {sorted(TRAIN_SECTIONS)}")

    def section(name: str, cls: type[T]) -> T:
        given = values.get(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"config section {name!r} must be an object, got {type(given).__name__}")
        base = to_jsonable(defaults[name]) if name in defaults else {}
        flags = {k: v for k, v in overrides.get(name, {}).items() if v is not None}
        try:
            if given:  # the file's own values first: a flag that replaces a bad one must not hide it
                config_from_dict(cls, base | given)
            return config_from_dict(cls, base | given | flags)
        except ConfigError as exc:
            raise ConfigError(f"config section {name!r}: {exc}") from exc

    return section("adapt", AdaptConfig), section("finetune", FinetuneConfig), section("compress", CompressConfig)
