"""Loading, validating and splitting labelled text.

CSV and JSONL are read with configurable text and label columns. Every problem
gets a :class:`DataError` that says what was wrong, what was found and what is
accepted: a missing file or column, blank texts (dropped and counted, or an
error in strict mode), a CSV row whose field count differs from the header's, a
column or JSON key given twice, a text that is not a string, a label that is
neither a string nor an integer, a class too small to split, a single class,
test labels never seen in training.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from hybridroute.config import DataConfig, RepeatedKey, unique_keys
from hybridroute.errors import DataError

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".jsonl")
LABELLED_COLUMNS_HINT = "choose with --text-col / --label-col"  # how a user names the columns of labelled data
CORPUS_COLUMN_HINT = "choose with --corpus-text-col"  # how a user names the text column of an unlabelled corpus
TEXT_COLUMN_HINT = "choose with --text-col"  # ... and that of other unlabelled texts (bench redaction's --data)


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with their string labels, plus what loading dropped."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    dropped_blank: int = 0
    source: str = ""
    checksum: str = ""  # sha256 of the source file, recorded in manifests

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_counts(self) -> Counter[str]:
        """How many examples each label has."""
        return Counter(self.labels)

    def subset(self, indices: Sequence[int]) -> LabelledTexts:
        """The examples at ``indices``, in that order."""
        return LabelledTexts(
            texts=tuple(self.texts[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            dropped_blank=self.dropped_blank,
            source=self.source,
            checksum=self.checksum,
        )


@dataclass(frozen=True)
class Split:
    """A seeded, stratified train/validation split and the label list it fixes."""

    train: LabelledTexts
    validation: LabelledTexts
    labels: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- helpers


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return stream_sha256(handle)


def stream_sha256(handle: BinaryIO) -> str:
    """Hex sha256 of what is left to read in an open binary file, read in chunks."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


# Characters that show nothing and are not whitespace to str.isspace(): zero-width spaces and joiners, direction
# marks and isolates, the word joiner and invisible operators, the byte order mark, the soft hyphen, fillers.
INVISIBLE = frozenset(
    "\u00ad\u034f\u115f\u1160\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u2800\u3164\ufeff\uffa0"
)


def is_blank(text: str) -> bool:
    r"""True for texts with no visible character: only whitespace and invisible characters (:data:`INVISIBLE`).

    Example: is_blank(" \\t\\n") -> True; is_blank("\\u200b") -> True; is_blank(" hi ") -> False
    """
    return all(c.isspace() or c in INVISIBLE for c in text)


CSV_FIELD_LIMIT = 16 * 1024 * 1024  # characters per CSV field while reading: far above any real text, still bounded


@contextmanager
def _csv_field_limit() -> Iterator[None]:
    """Raise the csv module's field size limit (default 131,072 characters) while a file is read, then restore it."""
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _check_header(path: Path, header: Sequence[str], wanted: Sequence[str], hint: str) -> None:
    """Refuse a header that lacks a wanted column (``hint`` says how to name another) or names one twice."""
    _check_columns(path, header, wanted, hint)
    twice = [c for c in wanted if header.count(c) > 1]
    if twice:
        raise DataError(
            f"{path}: the header names column {twice[0]!r} {header.count(twice[0])} times {list(header)}; "
            "rename or remove the extra one"
        )


def _count(n: int, noun: str) -> str:
    """``n`` with its noun, singular for one.

    Example: _count(1, "field") -> "1 field"; _count(3, "field") -> "3 fields"
    """
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _read_csv(path: Path, wanted: Sequence[str], hint: str) -> list[tuple[int, dict[str, str]]]:
    """(row number, row) per non-empty CSV row; the header is row 1. Every row must have the header's field count.

    ``hint`` says how to choose other columns when the header lacks a ``wanted`` one.

    Example: a row ``hello, world,a`` under ``text,label`` -> DataError "... row 2 has 3 fields, the header has 2 ..."
    """
    with _csv_field_limit(), path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        _check_header(path, header, wanted, hint)
        rows = []
        for number, fields in enumerate((f for f in reader if f), start=2):
            if len(fields) != len(header):
                raise DataError(
                    f"{path}: row {number} has {_count(len(fields), 'field')}, the header has {len(header)} "
                    f'{list(header)}; quote a text that holds a comma or a line break, e.g. "a, b"'
                )
            rows.append((number, dict(zip(header, fields, strict=True))))
    return rows


def unreadable_json(exc: ValueError | RecursionError) -> str:
    """Why well-formed JSON could not be read: json's own messages here are a traceback's, not a user's.

    ``json`` reads integers of at most 4,300 digits (ValueError) and nests as deep as the recursion limit.

    Example: unreadable_json(RecursionError()) -> "arrays or objects nested too deeply"
    """
    if isinstance(exc, RecursionError):
        return "arrays or objects nested too deeply"
    return "a number with thousands of digits"


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) per non-blank line; a leading byte order mark is skipped."""
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=unique_keys)
            except RepeatedKey as exc:
                raise DataError(f"{path}:{number}: {exc}; use it once") from None
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, brackets nested deep
                raise DataError(f"{path}:{number}: not valid JSON ({unreadable_json(exc)})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object, got {type(row).__name__}")
            yield number, row


def _check_columns(path: Path, columns: Sequence[str], wanted: Sequence[str], hint: str) -> None:
    """Refuse ``columns`` lacking a ``wanted`` one; ``hint`` says how to choose another.

    Example: _check_columns(p, ["body"], ["text"], CORPUS_COLUMN_HINT)
        -> DataError("p: column 'text' not found; the file has columns ['body'] (choose with --corpus-text-col)")
    """
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found; the file has columns {sorted(columns)} ({hint})")


def _rows(path: Path, text_col: str, label_col: str) -> Iterator[tuple[str, object, object]]:
    """(where, text, label) per row: "row N" in a CSV (the header is row 1), "line N" in a JSONL file."""
    if path.suffix.lower() == ".csv":
        for number, row in _read_csv(path, (text_col, label_col), LABELLED_COLUMNS_HINT):
            yield f"row {number}", row[text_col], row[label_col]
        return
    for index, (number, record) in enumerate(_iter_jsonl(path)):
        if index == 0:
            _check_columns(path, list(record), (text_col, label_col), LABELLED_COLUMNS_HINT)
        yield f"line {number}", record.get(text_col), record.get(label_col)


def _text_value(path: Path, where: str, column: str, value: object) -> str:
    """A row's text: a string, or "" for a missing or null one (counted as blank).

    Example: _text_value(p, "line 2", "text", ["hi"]) -> DataError("... must be a string, got list ['hi']")
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{path}: {where}: the text in column {column!r} must be a string, got {type(value).__name__} {value!r:.60}"
        )
    return value


def _label_value(path: Path, where: str, column: str, value: object) -> str:
    """A row's label, stripped: a string or an integer (1 and "1" are the same class); bool, float, list... refused.

    Example: _label_value(p, "line 2", "label", 3) -> "3"; _label_value(p, "line 2", "label", 1.0) -> DataError
    """
    if value is None or (isinstance(value, str) and is_blank(value)):
        raise DataError(f"{path}: {where} has no label in column {column!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(
            f"{path}: {where}: the label in column {column!r} must be a string or an integer, "
            f"got {type(value).__name__} {value!r:.60}"
        )
    return str(value).strip()


# ---------------------------------------------------------------- loading


def load_labelled(config: DataConfig) -> LabelledTexts:
    """Load a labelled CSV or JSONL file as configured.

    Blank texts are dropped and counted (a warning is logged), or raise in strict mode.
    Rows with a missing label raise, since guessing a label would corrupt training; so do
    CSV rows with another field count than the header, and JSONL texts that are not strings
    or labels that are neither strings nor integers.
    """
    path = config.path
    _check_file(path)
    texts: list[str] = []
    labels: list[str] = []
    blank = 0
    try:
        for where, raw_text, raw_label in _rows(path, config.text_col, config.label_col):
            text = _text_value(path, where, config.text_col, raw_text)
            if is_blank(text):
                if config.strict:
                    raise DataError(f"{path}: {where} has a blank text (strict mode; drop --strict to skip)")
                blank += 1
                continue
            texts.append(text)
            labels.append(_label_value(path, where, config.label_col, raw_label))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    if not texts:
        raise DataError(f"{path}: no usable rows ({blank} blank texts dropped)")
    if blank:
        logger.warning("%s: dropped %d blank texts", path, blank)
    return LabelledTexts(tuple(texts), tuple(labels), blank, str(path), file_sha256(path))


def load_texts(path: Path, text_col: str = "text", hint: str = CORPUS_COLUMN_HINT) -> list[str]:
    """Load unlabelled texts: a .txt file (one per line), or a CSV/JSONL column.

    Blank texts (and missing or null ones in JSONL) are dropped; a JSONL text that is not a string is refused.
    A file without ``text_col`` is refused, ``hint`` saying how to choose another column.
    """
    _check_file(path, suffixes=(*SUPPORTED_SUFFIXES, ".txt"))
    try:
        texts = _read_texts(path, text_col, hint)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    return [text for text in texts if not is_blank(text)]


def _read_texts(path: Path, text_col: str, hint: str) -> list[str]:
    if path.suffix.lower() == ".txt":
        return path.read_text(encoding="utf-8-sig").splitlines()
    if path.suffix.lower() == ".csv":
        return [row[text_col] for _, row in _read_csv(path, (text_col,), hint)]
    rows = list(_iter_jsonl(path))
    if rows:
        _check_columns(path, list(rows[0][1]), (text_col,), hint)
    return [_text_value(path, f"line {number}", text_col, row.get(text_col)) for number, row in rows]


def _check_file(path: Path, suffixes: Sequence[str] = SUPPORTED_SUFFIXES) -> None:
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if not path.is_file():
        raise DataError(f"data path {path} is not a file")
    if path.suffix.lower() not in suffixes:
        raise DataError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(suffixes)}")


# ---------------------------------------------------------------- checks and split


def check_trainable(data: LabelledTexts) -> None:
    """Refuse data that cannot train a classifier: one class, or a class with one example."""
    counts = data.label_counts
    if not counts:
        raise DataError(f"{data.source}: no examples")
    if len(counts) < 2:
        raise DataError(f"{data.source}: only one class ({next(iter(counts))!r}); a classifier needs two or more")
    tiny = sorted(label for label, n in counts.items() if n < 2)
    if tiny:
        raise DataError(
            f"{data.source}: classes with fewer than two examples cannot be split: {tiny[:10]}"
            f"{' ...' if len(tiny) > 10 else ''} (add examples or remove them)"
        )


def some_labels(labels: Sequence[str], shown: int = 5) -> str:
    """A label list short enough for one error line.

    Example: some_labels(["a", "b"]) -> "['a', 'b']"; some_labels(list("abcdefg"), 2) -> "7 labels (e.g. ['a', 'b'])"
    """
    if len(labels) <= shown:
        return str(list(labels))
    return f"{len(labels)} labels (e.g. {list(labels)[:shown]})"


def check_known_labels(data: LabelledTexts, known: Sequence[str]) -> None:
    """Refuse evaluation data whose labels the model never saw."""
    unseen = sorted(set(data.labels) - set(known))
    if unseen:
        raise DataError(
            f"{data.source}: labels never seen in training: {unseen[:10]}; the model knows {some_labels(known)}"
        )


def stratified_split(data: LabelledTexts, val_fraction: float, seed: int) -> Split:
    """Split so every class keeps its share in both parts and has at least one example in each.

    Example: 10 'a' + 10 'b' with val_fraction 0.2 -> train 8+8, validation 2+2.
    """
    check_trainable(data)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(index)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for label in sorted(by_label):
        indices = rng.permutation(by_label[label]).tolist()
        n_val = min(len(indices) - 1, max(1, round(len(indices) * val_fraction)))
        val_idx.extend(indices[:n_val])
        train_idx.extend(indices[n_val:])
    labels = tuple(sorted(by_label))
    return Split(data.subset(sorted(train_idx)), data.subset(sorted(val_idx)), labels)


def load_split(config: DataConfig) -> Split:
    """Load a labelled file and split it as configured."""
    return stratified_split(load_labelled(config), config.val_fraction, config.seed)
