from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from hybridroute.config import DataConfig
from hybridroute.data import (
    LabelledTexts,
    check_known_labels,
    check_trainable,
    file_sha256,
    is_blank,
    load_labelled,
    load_split,
    load_texts,
    some_labels,
    stratified_split,
)
from hybridroute.errors import DataError


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _data(labels: list[str]) -> LabelledTexts:
    return LabelledTexts(tuple(f"text {i}" for i in range(len(labels))), tuple(labels), source="mem")


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        (" \t\n", True),
        ("\u3000", True),
        ("\u200b", True),
        ("\u2060", True),
        (" \u200b\u200d \ufeff\u00ad ", True),
        (" hi ", False),
        ("\u200bhi", False),
    ],
)
def test_is_blank(text: str, blank: bool) -> None:
    assert is_blank(text) is blank


def test_labelled_texts_rejects_length_mismatch() -> None:
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        LabelledTexts(("a", "b"), ("x",))


def test_subset_keeps_order_and_source() -> None:
    data = LabelledTexts(("a", "b", "c"), ("x", "y", "z"), source="s", checksum="c0")
    part = data.subset([2, 0])
    assert part.texts == ("c", "a")
    assert part.labels == ("z", "x")
    assert (part.source, part.checksum) == ("s", "c0")


def test_subset_keeps_the_blank_count_of_loading() -> None:
    data = LabelledTexts(("a", "b"), ("x", "y"), dropped_blank=3)
    assert data.subset([1]).dropped_blank == 3


def test_split_parts_keep_the_blank_count(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\n" + "".join(f"t{i},{'xy'[i % 2]}\n" for i in range(8)) + '" ",x\n')
    split = load_split(DataConfig(path, val_fraction=0.25))
    assert split.train.dropped_blank == split.validation.dropped_blank == 1


# ---------------------------------------------------------------- loading


def test_load_csv_with_custom_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", 'id,message,intent\n1,hello there,greet\n2,"where, exactly?",ask\n')
    data = load_labelled(DataConfig(path, text_col="message", label_col="intent"))
    assert data.texts == ("hello there", "where, exactly?")
    assert data.labels == ("greet", "ask")
    assert data.dropped_blank == 0
    assert data.source == str(path)


def test_load_csv_strips_labels_but_keeps_texts(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\n  padded text ,  pos \n")
    data = load_labelled(DataConfig(path))
    assert data.texts == ("  padded text ",)
    assert data.labels == ("pos",)


def test_load_jsonl_with_custom_columns(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"body": "hi", "y": "greet"}, {"body": "bye", "y": 3}])
    path.write_text(path.read_text(encoding="utf-8") + "\n   \n", encoding="utf-8")  # blank lines are skipped
    data = load_labelled(DataConfig(path, text_col="body", label_col="y"))
    assert data.texts == ("hi", "bye")
    assert data.labels == ("greet", "3")


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = _csv(tmp_path / "D.CSV", "text,label\na,x\n")
    assert load_labelled(DataConfig(path)).labels == ("x",)


def test_checksum_is_sha256_of_file(tmp_path: Path, toy_csv_writer: Callable[..., Path]) -> None:
    path = toy_csv_writer(tmp_path / "toy.csv", per_class=5)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected
    assert load_labelled(DataConfig(path)).checksum == expected


def test_checksum_changes_with_content(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\na,x\n")
    before = load_labelled(DataConfig(path)).checksum
    _csv(path, "text,label\nb,x\n")
    assert load_labelled(DataConfig(path)).checksum != before


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.csv"
    with pytest.raises(DataError, match="does not exist") as info:
        load_labelled(DataConfig(path))
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    folder = tmp_path / "data.csv"
    folder.mkdir()
    with pytest.raises(DataError, match="is not a file"):
        load_labelled(DataConfig(folder))


@pytest.mark.parametrize("name", ["d.tsv", "d.json", "d.xlsx", "d"])
def test_unsupported_suffix(tmp_path: Path, name: str) -> None:
    path = _csv(tmp_path / name, "text,label\na,x\n")
    with pytest.raises(DataError, match="unsupported file type") as info:
        load_labelled(DataConfig(path))
    assert ".csv, .jsonl" in str(info.value)


@pytest.mark.parametrize(
    ("text_col", "label_col", "missing"), [("message", "label", "message"), ("text", "intent", "intent")]
)
def test_csv_missing_column_names_existing_columns(tmp_path: Path, text_col: str, label_col: str, missing: str) -> None:
    path = _csv(tmp_path / "d.csv", "text,label,extra\na,x,1\n")
    with pytest.raises(DataError) as info:
        load_labelled(DataConfig(path, text_col=text_col, label_col=label_col))
    message = str(info.value)
    assert f"column {missing!r} not found" in message
    assert "['extra', 'label', 'text']" in message
    assert message.endswith("(choose with --text-col / --label-col)")


def test_jsonl_missing_column_names_existing_columns(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"body": "hi", "label": "x"}])
    with pytest.raises(DataError) as info:
        load_labelled(DataConfig(path))
    assert "column 'text' not found" in str(info.value)
    assert "['body', 'label']" in str(info.value)


def test_blank_texts_are_dropped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _csv(tmp_path / "d.csv", 'text,label\na,x\n"   ",x\n,y\nb,y\n')
    with caplog.at_level(logging.WARNING, logger="hybridroute.data"):
        data = load_labelled(DataConfig(path))
    assert data.texts == ("a", "b")
    assert data.dropped_blank == 2
    assert "dropped 2 blank texts" in caplog.text


def test_blank_texts_in_jsonl_including_missing_and_null(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "d.jsonl",
        [{"text": "a", "label": "x"}, {"text": None, "label": "x"}, {"label": "y"}, {"text": "  ", "label": "y"}],
    )
    data = load_labelled(DataConfig(path))
    assert data.texts == ("a",)
    assert data.dropped_blank == 3


def test_strict_mode_refuses_blank_text(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", 'text,label\na,x\n"  ",x\n')
    with pytest.raises(DataError, match="row 3 has a blank text"):
        load_labelled(DataConfig(path, strict=True))


def test_all_blank_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", 'text,label\n" ",x\n,y\n')
    with pytest.raises(DataError, match=r"no usable rows \(2 blank texts dropped\)"):
        load_labelled(DataConfig(path))


def test_header_only_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\n")
    with pytest.raises(DataError, match="no usable rows"):
        load_labelled(DataConfig(path))


@pytest.mark.parametrize("row", ["b,", "b,   "])
def test_missing_label_is_an_error_naming_row_and_column(tmp_path: Path, row: str) -> None:
    path = _csv(tmp_path / "d.csv", f"text,label\na,x\n{row}\n")
    with pytest.raises(DataError, match="row 3 has no label in column 'label'"):
        load_labelled(DataConfig(path))


def test_null_label_in_jsonl_is_an_error(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": None}])
    with pytest.raises(DataError, match="has no label in column 'label'"):
        load_labelled(DataConfig(path))


def test_jsonl_missing_label_names_the_real_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b"}])
    with pytest.raises(DataError, match="(row|line) 2 has no label"):
        load_labelled(DataConfig(path))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_non_utf8_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        path.write_bytes("text,label\ncaf\u00e9,x\n".encode("latin-1"))
    else:
        path.write_bytes('{"text": "caf\u00e9", "label": "x"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text"):
        load_labelled(DataConfig(path))


def test_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\na,x\n".encode("utf-8-sig"))
    assert load_labelled(DataConfig(path)).texts == ("a",)


def test_malformed_jsonl_line_names_line_number(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", "label": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:3: not valid JSON"):
        load_labelled(DataConfig(path))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"text": "a", "label": ' + "7" * 5000 + "}", "a number with thousands of digits"),
        ("[" * 100_000 + "]" * 100_000, "arrays or objects nested too deeply"),
    ],
    ids=["5000-digit-label", "100k-nested-brackets"],
)
def test_jsonl_too_big_to_read_is_a_clear_error_naming_the_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n' + line + "\n", encoding="utf-8")
    for load in (lambda: load_labelled(DataConfig(path)), lambda: load_texts(path)):
        with pytest.raises(DataError) as info:
            load()
        assert str(info.value) == f"{path}:2: not valid JSON ({reason})"


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n["b", "y"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r":2: each line must be a JSON object, got list"):
        load_labelled(DataConfig(path))


# ---------------------------------------------------------------- trainability


def test_single_class_is_refused() -> None:
    with pytest.raises(DataError, match="only one class \\('x'\\)"):
        check_trainable(_data(["x", "x", "x"]))


def test_class_with_one_example_is_refused_by_name() -> None:
    with pytest.raises(DataError, match=r"fewer than two examples cannot be split: \['lonely'\]"):
        stratified_split(_data(["x", "x", "y", "y", "lonely"]), 0.2, 0)


def test_many_tiny_classes_are_listed_with_ellipsis() -> None:
    labels = ["big", "big"] + [f"c{i:02d}" for i in range(12)]
    with pytest.raises(DataError) as info:
        check_trainable(_data(labels))
    message = str(info.value)
    assert "'c09'" in message
    assert "'c10'" not in message
    assert " ..." in message


def test_empty_data_is_refused_with_data_error() -> None:
    with pytest.raises(DataError):
        check_trainable(LabelledTexts((), (), source="empty"))


def test_load_split_refuses_single_class_file(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\na,x\nb,x\nc,x\n")
    with pytest.raises(DataError, match="only one class"):
        load_split(DataConfig(path))


# ---------------------------------------------------------------- split


def _skewed() -> LabelledTexts:
    return _data(["a"] * 50 + ["b"] * 20 + ["c"] * 10 + ["d"] * 2)


def test_split_keeps_every_class_in_both_parts() -> None:
    split = stratified_split(_skewed(), 0.1, seed=0)
    assert set(split.train.labels) == set(split.validation.labels) == {"a", "b", "c", "d"}
    assert split.labels == ("a", "b", "c", "d")


def test_split_proportions_per_class() -> None:
    split = stratified_split(_skewed(), 0.2, seed=0)
    assert Counter(split.validation.labels) == {"a": 10, "b": 4, "c": 2, "d": 1}
    assert Counter(split.train.labels) == {"a": 40, "b": 16, "c": 8, "d": 1}


def test_split_docstring_example() -> None:
    split = stratified_split(_data(["a"] * 10 + ["b"] * 10), 0.2, seed=3)
    assert Counter(split.train.labels) == {"a": 8, "b": 8}
    assert Counter(split.validation.labels) == {"a": 2, "b": 2}


def test_split_no_overlap_and_full_coverage() -> None:
    data = _skewed()
    split = stratified_split(data, 0.25, seed=1)
    train, val = set(split.train.texts), set(split.validation.texts)
    assert not train & val
    assert train | val == set(data.texts)
    assert len(split.train) + len(split.validation) == len(data)
    for part in (split.train, split.validation):  # texts keep their own labels
        for text, label in zip(part.texts, part.labels, strict=True):
            assert data.labels[data.texts.index(text)] == label


def test_split_is_deterministic_for_a_seed() -> None:
    first = stratified_split(_skewed(), 0.2, seed=42)
    second = stratified_split(_skewed(), 0.2, seed=42)
    assert first == second


def test_split_differs_for_another_seed() -> None:
    first = stratified_split(_skewed(), 0.2, seed=1)
    second = stratified_split(_skewed(), 0.2, seed=2)
    assert first.validation.texts != second.validation.texts


def test_load_split_from_toy_csv(tmp_path: Path, toy_csv_writer: Callable[..., Path]) -> None:
    path = toy_csv_writer(tmp_path / "toy.csv", per_class=20)
    split = load_split(DataConfig(path, val_fraction=0.25, seed=5))
    assert Counter(split.validation.labels) == {"negative": 5, "neutral": 5, "positive": 5}
    assert split.train.checksum == file_sha256(path)


# ---------------------------------------------------------------- known labels


def test_check_known_labels_accepts_subset() -> None:
    check_known_labels(_data(["a", "b"]), ["a", "b", "c"])


def test_check_known_labels_names_unseen() -> None:
    with pytest.raises(DataError) as info:
        check_known_labels(_data(["a", "zeta", "b", "omega"]), ["a", "b", "c"])
    message = str(info.value)
    assert "labels never seen in training: ['omega', 'zeta']" in message
    assert "the model knows ['a', 'b', 'c']" in message


def test_long_label_lists_are_cut_to_a_few() -> None:
    labels = [f"intent_{i:02d}" for i in range(77)]
    assert some_labels(labels) == "77 labels (e.g. ['intent_00', 'intent_01', 'intent_02', 'intent_03', 'intent_04'])"
    assert some_labels(labels[:3]) == "['intent_00', 'intent_01', 'intent_02']"


# ---------------------------------------------------------------- unlabelled texts


def test_load_texts_txt_drops_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("first line\n\n   \nsecond, with comma\n", encoding="utf-8")
    assert load_texts(path) == ["first line", "second, with comma"]


def test_load_texts_csv_column(tmp_path: Path) -> None:
    path = _csv(tmp_path / "c.csv", 'id,body\n1,hello\n2,"  "\n3,world\n')
    assert load_texts(path, text_col="body") == ["hello", "world"]


def test_load_texts_csv_missing_column(tmp_path: Path) -> None:
    path = _csv(tmp_path / "c.csv", "id,body\n1,hello\n")
    with pytest.raises(DataError, match=r"column 'text' not found; the file has columns \['body', 'id'\]") as info:
        load_texts(path)
    assert str(info.value).endswith("(choose with --corpus-text-col)")  # the corpus's flag, not --text-col


def test_load_texts_jsonl(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "c.jsonl", [{"text": "a"}, {"text": ""}, {"other": 1}, {"text": None}, {"text": "b"}])
    assert load_texts(path) == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [(["a", "b"], "list"), ({"x": 1}, "dict"), (42, "int"), (0, "int"), (True, "bool"), (1.5, "float")],
)
def test_load_texts_jsonl_text_must_be_a_string(tmp_path: Path, value: object, kind: str) -> None:
    path = _jsonl(tmp_path / "c.jsonl", [{"text": "a"}, {"text": value}])
    with pytest.raises(DataError) as info:
        load_texts(path)
    assert str(info.value) == (f"{path}: line 2: the text in column 'text' must be a string, got {kind} {value!r:.60}")


def test_zero_width_texts_are_dropped_as_blank(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "\u200b", "label": "x"}, {"text": "hi", "label": "y"}])
    data = load_labelled(DataConfig(path))
    assert (data.texts, data.dropped_blank) == (("hi",), 1)
    assert load_texts(path) == ["hi"]


def test_load_texts_jsonl_missing_column(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "c.jsonl", [{"body": "a"}, {"body": "b"}])
    with pytest.raises(DataError, match="column 'text' not found") as info:
        load_texts(path)
    assert str(info.value).endswith("(choose with --corpus-text-col)")


def test_load_texts_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        load_texts(path)


@pytest.mark.parametrize("name", ["c.md", "c.tsv"])
def test_load_texts_unsupported_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("x\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported file type.*\.csv, \.jsonl, \.txt"):
        load_texts(path)


def test_load_texts_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_texts(tmp_path / "absent.txt")


# ---------------------------------------------------------------- malformed rows and values


def test_csv_row_with_an_unquoted_comma_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\nhello, world,a\nbye,b\n")
    with pytest.raises(DataError) as info:
        load_labelled(DataConfig(path))
    message = str(info.value)
    assert str(path) in message
    assert "row 2 has 3 fields, the header has 2 ['text', 'label']" in message
    assert "quote a text" in message


def test_csv_row_with_too_few_fields_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\na,x\nb\n")
    with pytest.raises(DataError, match=r"row 3 has 1 field, the header has 2"):
        load_labelled(DataConfig(path))


def test_csv_quoted_commas_line_breaks_and_blank_lines_still_load(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", 'text,label\n"hello, world",a\n\n"line1\nline2",b\n')
    data = load_labelled(DataConfig(path))
    assert data.texts == ("hello, world", "line1\nline2")
    assert data.labels == ("a", "b")


def test_csv_duplicated_column_that_is_read_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label,text\nreal,a,other\n")
    with pytest.raises(DataError, match=r"the header names column 'text' 2 times \['text', 'label', 'text'\]"):
        load_labelled(DataConfig(path))
    with pytest.raises(DataError, match="names column 'text' 2 times"):
        load_texts(path)


def test_csv_duplicated_column_that_is_not_read_is_harmless(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "note,text,label,note\nn1,real,a,n2\n")
    assert load_labelled(DataConfig(path)).texts == ("real",)


def test_csv_row_number_counts_rows_not_blank_lines(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\na,x\n\nb,y,z\n")
    with pytest.raises(DataError, match="row 3 has 3 fields"):
        load_labelled(DataConfig(path))


def test_jsonl_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "x", "label": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:2: key 'label' appears 2 times in one object"):
        load_labelled(DataConfig(path))
    with pytest.raises(DataError, match="key 'label' appears 2 times"):
        load_texts(path)


@pytest.mark.parametrize(
    ("value", "kind"), [(["hi", "there"], "list"), ({"x": 1}, "dict"), (42, "int"), (True, "bool"), (1.5, "float")]
)
def test_jsonl_text_must_be_a_string(tmp_path: Path, value: object, kind: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": value, "label": "y"}])
    with pytest.raises(DataError, match=rf"line 2: the text in column 'text' must be a string, got {kind} "):
        load_labelled(DataConfig(path))


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("NaN", "float"), ("1.0", "float"), ("true", "bool"), ("false", "bool"), ('["a"]', "list"), ('{"a": 1}', "dict")],
)
def test_jsonl_label_must_be_a_string_or_an_integer(tmp_path: Path, raw: str, kind: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": ' + raw + "}\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=rf"line 2: the label in column 'label' must be a string or an integer, got {kind}"
    ):
        load_labelled(DataConfig(path))


def test_jsonl_integer_and_string_labels_are_one_class(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": " 1 "}])
    assert load_labelled(DataConfig(path)).labels == ("1", "1")


@pytest.mark.parametrize("label", ["", "   ", "\u3000"])
def test_blank_string_label_is_an_error_in_jsonl_as_in_csv(tmp_path: Path, label: str) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": label}])
    with pytest.raises(DataError, match="line 2 has no label in column 'label'"):
        load_labelled(DataConfig(path))


def test_blank_text_with_blank_label_is_dropped_as_blank(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\na,x\n ,  \nb,y\n")
    assert load_labelled(DataConfig(path)).dropped_blank == 1


def test_csv_label_spelled_nan_stays_a_string_label(tmp_path: Path) -> None:
    path = _csv(tmp_path / "d.csv", "text,label\nhi,NaN\nyo,b\n")
    assert load_labelled(DataConfig(path)).labels == ("NaN", "b")


# ---------------------------------------------------------------- byte order marks and long fields


def test_jsonl_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes('{"text": "hi", "label": "a"}\n'.encode("utf-8-sig"))
    data = load_labelled(DataConfig(path))
    assert (data.texts, data.labels) == (("hi",), ("a",))
    assert load_texts(path) == ["hi"]


def test_txt_corpus_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes("hello\nworld\n".encode("utf-8-sig"))
    assert load_texts(path) == ["hello", "world"]


def test_csv_field_over_the_default_csv_limit_loads_and_the_limit_is_restored(tmp_path: Path) -> None:
    import csv

    before = csv.field_size_limit()
    long_text = "x" * 200_000
    path = _csv(tmp_path / "d.csv", f'text,label\n"{long_text}",a\nhi,b\n')
    assert load_labelled(DataConfig(path)).texts == (long_text, "hi")
    assert load_texts(path) == [long_text, "hi"]
    assert csv.field_size_limit() == before


def test_load_texts_turns_a_csv_error_into_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    before = csv.field_size_limit()
    monkeypatch.setattr("hybridroute.data.CSV_FIELD_LIMIT", 10)
    path = _csv(tmp_path / "c.csv", "text\n" + "y" * 50 + "\n")
    with pytest.raises(DataError, match=r"c\.csv: malformed CSV \(field larger than field limit \(10\)\)"):
        load_texts(path)
    with pytest.raises(DataError, match="malformed CSV"):
        load_labelled(DataConfig(_csv(tmp_path / "d.csv", "text,label\n" + "y" * 50 + ",a\n")))
    assert csv.field_size_limit() == before
