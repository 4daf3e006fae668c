from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from hybridroute.errors import ArtifactError
from hybridroute.runtime.bundle import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    MODEL_NAME,
    TOKENIZER_NAME,
    Manifest,
    load_manifest,
    read_manifest,
    sha256_file,
    verify_files,
    write_manifest,
)

MODEL_BYTES = b"\x08\x07fake-onnx-graph\x00\x01\x02"
TOKENIZER_BYTES = b'{"version": "1.0", "model": {}}'


def _manifest(**changes: Any) -> Manifest:
    values: dict[str, Any] = {
        "labels": ("neg", "neu", "pos"),
        "max_length": 64,
        "files": {},
        "temperature": 1.7,
        "base_model": "tiny",
        "data_checksum": "abc",
        "settings": {"opset": 17},
        "metrics": {"accuracy": 0.9},
    }
    return Manifest(**values | changes)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / MODEL_NAME).write_bytes(MODEL_BYTES)
    (folder / TOKENIZER_NAME).write_bytes(TOKENIZER_BYTES)
    write_manifest(folder, _manifest())
    return folder


def _rewrite(bundle: Path, **changes: Any) -> None:
    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is _DELETE:
            del data[key]
        else:
            data[key] = value
    path.write_text(json.dumps(data), encoding="utf-8")


_DELETE = object()


# ---------------------------------------------------------------- round trip


def test_round_trip(bundle: Path) -> None:
    loaded = load_manifest(bundle)
    assert loaded == _manifest(files=loaded.files)
    assert loaded.labels == ("neg", "neu", "pos")
    assert isinstance(loaded.labels, tuple)
    assert loaded.temperature == 1.7
    assert loaded.format_version == FORMAT_VERSION
    assert loaded.files == {
        MODEL_NAME: hashlib.sha256(MODEL_BYTES).hexdigest(),
        TOKENIZER_NAME: hashlib.sha256(TOKENIZER_BYTES).hexdigest(),
    }


def test_write_manifest_returns_path_and_records_extra_files(bundle: Path) -> None:
    (bundle / "extra.txt").write_bytes(b"notes")
    path = write_manifest(bundle, _manifest(files={"extra.txt": "stale"}))
    assert path == bundle / MANIFEST_NAME
    files = load_manifest(bundle).files
    assert files["extra.txt"] == sha256_file(bundle / "extra.txt")
    assert set(files) == {"extra.txt", MODEL_NAME, TOKENIZER_NAME}


def test_write_manifest_needs_model_file(tmp_path: Path) -> None:
    (tmp_path / TOKENIZER_NAME).write_bytes(TOKENIZER_BYTES)
    with pytest.raises(FileNotFoundError):
        write_manifest(tmp_path, _manifest())


def test_model_version_is_12_hex_chars(bundle: Path) -> None:
    version = load_manifest(bundle).model_version
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert version == hashlib.sha256(MODEL_BYTES).hexdigest()[:12]


def test_model_version_unknown_without_model_checksum() -> None:
    assert _manifest().model_version == "unknown"


def test_to_json_is_plain_json() -> None:
    data = json.loads(_manifest().to_json())
    assert data["labels"] == ["neg", "neu", "pos"]
    assert data["metrics"] == {"accuracy": 0.9}


def test_with_updates_returns_a_copy() -> None:
    original = _manifest()
    changed = original.with_updates(temperature=2.0)
    assert changed.temperature == 2.0
    assert original.temperature == 1.7


def test_unknown_manifest_keys_are_ignored(bundle: Path) -> None:
    _rewrite(bundle, added_later="whatever")
    assert read_manifest(bundle).labels == ("neg", "neu", "pos")


@pytest.mark.parametrize("version", range(1, FORMAT_VERSION + 1))
def test_every_known_format_version_is_read(bundle: Path, version: int) -> None:
    _rewrite(bundle, format_version=version)
    assert read_manifest(bundle).format_version == version


# ---------------------------------------------------------------- refusals


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="bundle folder .* does not exist"):
        load_manifest(tmp_path / "nowhere")


def test_missing_manifest(bundle: Path) -> None:
    (bundle / MANIFEST_NAME).unlink()
    with pytest.raises(ArtifactError, match="is not a bundle: manifest.json is missing"):
        load_manifest(bundle)


@pytest.mark.parametrize("content", [b"{broken", b"", b"\xff\xfe\xfa"])
def test_invalid_json(bundle: Path, content: bytes) -> None:
    (bundle / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_manifest(bundle)


def test_manifest_not_an_object(bundle: Path) -> None:
    (bundle / MANIFEST_NAME).write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ArtifactError, match="must hold a JSON object"):
        load_manifest(bundle)


@pytest.mark.parametrize("key", ["format_version", "labels", "max_length", "files"])
def test_missing_required_key(bundle: Path, key: str) -> None:
    _rewrite(bundle, **{key: _DELETE})
    with pytest.raises(ArtifactError) as info:
        load_manifest(bundle)
    message = str(info.value)
    assert f"manifest lacks ['{key}']" in message
    assert "['format_version', 'labels', 'max_length', 'files']" in message


@pytest.mark.parametrize("labels", ["neg,pos", {"a": 1}, ["only"], [], ["a", 2], None])
def test_bad_labels(bundle: Path, labels: Any) -> None:
    _rewrite(bundle, labels=labels)
    with pytest.raises(ArtifactError, match="'labels' must be a list of two or more strings"):
        load_manifest(bundle)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_newer_format_version(bundle: Path, version: Any) -> None:
    _rewrite(bundle, format_version=version)
    with pytest.raises(ArtifactError) as info:
        load_manifest(bundle)
    message = str(info.value)
    assert f"manifest format {version!r} is newer" in message
    assert "upgrade hybridroute" in message


def test_checksum_mismatch_after_edit(bundle: Path) -> None:
    (bundle / MODEL_NAME).write_bytes(MODEL_BYTES + b"!")
    read_manifest(bundle)  # the manifest itself is fine
    with pytest.raises(ArtifactError, match="model.onnx: checksum mismatch") as info:
        load_manifest(bundle)
    assert hashlib.sha256(MODEL_BYTES).hexdigest()[:12] in str(info.value)


def test_checksum_mismatch_on_tokenizer(bundle: Path) -> None:
    (bundle / TOKENIZER_NAME).write_bytes(b"{}")
    with pytest.raises(ArtifactError, match="tokenizer.json: checksum mismatch"):
        load_manifest(bundle)


def test_listed_file_missing(bundle: Path) -> None:
    (bundle / TOKENIZER_NAME).unlink()
    with pytest.raises(ArtifactError, match="tokenizer.json is listed in the manifest but missing"):
        load_manifest(bundle)


@pytest.mark.parametrize("name", [MODEL_NAME, TOKENIZER_NAME])
def test_manifest_without_a_required_checksum(bundle: Path, name: str) -> None:
    files = load_manifest(bundle).files
    del files[name]
    _rewrite(bundle, files=files)
    with pytest.raises(ArtifactError, match=f"manifest has no checksum for {name}"):
        load_manifest(bundle)


def test_verify_files_accepts_intact_bundle(bundle: Path) -> None:
    verify_files(bundle, read_manifest(bundle))


# ---------------------------------------------------------------- field values


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("temperature", 0, "a finite number > 0"),
    ("temperature", -1.0, "a finite number > 0"),
    ("temperature", "1.0", "a finite number > 0"),
    ("temperature", None, "a finite number > 0"),
    ("temperature", True, "a finite number > 0"),
    ("max_length", 0, "an integer from 2 to 1,000,000"),
    ("max_length", 1, "an integer from 2 to 1,000,000"),
    ("max_length", "16", "an integer from 2 to 1,000,000"),
    ("max_length", 16.0, "an integer from 2 to 1,000,000"),
    ("max_length", None, "an integer from 2 to 1,000,000"),
    ("files", ["model.onnx"], "an object of file name -> sha256 hex string"),
    ("files", {"model.onnx": None, "tokenizer.json": None}, "an object of file name -> sha256 hex string"),
    ("kind", 3, "a string"),
    ("base_model", None, "a string"),
    ("settings", [], "an object"),
    ("metrics", "good", "an object"),
]


@pytest.mark.parametrize(("field", "value", "accepted"), BAD_FIELDS, ids=[f"{f}={v!r}" for f, v, _ in BAD_FIELDS])
def test_manifest_field_values_are_validated_on_load(bundle: Path, field: str, value: Any, accepted: str) -> None:
    _rewrite(bundle, **{field: value})
    with pytest.raises(ArtifactError) as info:
        read_manifest(bundle)
    assert str(info.value) == (f"{bundle / MANIFEST_NAME}: manifest field {field!r} must be {accepted}, got {value!r}")


def test_temperature_may_be_missing_or_an_integer(bundle: Path) -> None:
    _rewrite(bundle, temperature=_DELETE)
    assert read_manifest(bundle).temperature == 1.0
    _rewrite(bundle, temperature=2)
    assert read_manifest(bundle).temperature == 2


def test_smallest_max_length_is_accepted(bundle: Path) -> None:
    _rewrite(bundle, max_length=2)
    assert read_manifest(bundle).max_length == 2


def test_duplicate_labels_are_refused_by_name(bundle: Path) -> None:
    _rewrite(bundle, labels=["a", "c", "a"])
    with pytest.raises(ArtifactError, match=r"manifest\.json: 'labels' must be distinct, .*'a' appears 2 times"):
        load_manifest(bundle)


@pytest.mark.parametrize("version", [True, "1", "2", 1.5, 0, -5, None])
def test_format_version_must_be_a_positive_integer(bundle: Path, version: Any) -> None:
    _rewrite(bundle, format_version=version)
    with pytest.raises(ArtifactError) as info:
        read_manifest(bundle)
    assert str(info.value) == (
        f"{bundle / MANIFEST_NAME}: manifest field 'format_version' must be a positive integer "
        f"(this hybridroute reads 1 to {FORMAT_VERSION}), got {version!r}"
    )
    assert "upgrade" not in str(info.value)


@pytest.mark.parametrize("max_length", [1_000_001, 10**20])
def test_max_length_has_an_upper_bound(bundle: Path, max_length: int) -> None:
    _rewrite(bundle, max_length=max_length)
    with pytest.raises(ArtifactError, match=r"'max_length' must be an integer from 2 to 1,000,000, got 1"):
        read_manifest(bundle)


def test_largest_max_length_is_accepted(bundle: Path) -> None:
    _rewrite(bundle, max_length=1_000_000)
    assert read_manifest(bundle).max_length == 1_000_000


# ---------------------------------------------------------------- unreadable JSON


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"format_version": ' + "7" * 5000 + "}", "a number with thousands of digits"),
        ("[" * 100_000 + "]" * 100_000, "arrays or objects nested too deeply"),
    ],
    ids=["5000-digit-number", "100k-nested-brackets"],
)
def test_json_too_big_to_read_is_a_clear_error(bundle: Path, content: str, reason: str) -> None:
    (bundle / MANIFEST_NAME).write_text(content, encoding="utf-8")
    with pytest.raises(ArtifactError) as info:
        read_manifest(bundle)
    assert str(info.value) == f"{bundle / MANIFEST_NAME}: not valid JSON ({reason})"


# ---------------------------------------------------------------- files outside the bundle


@pytest.mark.parametrize(
    "name", ["/dev/zero", "/etc/hostname", "../outside.txt", "sub/model.onnx", "..", ".", "", "a\\b"]
)
def test_files_entries_must_be_plain_names_in_the_bundle(bundle: Path, name: str) -> None:
    files = read_manifest(bundle).files | {name: "00"}
    _rewrite(bundle, files=files)
    with pytest.raises(ArtifactError) as info:
        load_manifest(bundle)
    assert f"manifest field 'files' names {name!r}, which is not a file in the bundle folder" in str(info.value)


def test_a_file_outside_the_bundle_is_refused_even_with_its_checksum(bundle: Path) -> None:
    outside = bundle.parent / "outside.txt"
    outside.write_bytes(b"not part of the bundle")
    files = read_manifest(bundle).files | {"../outside.txt": sha256_file(outside)}
    _rewrite(bundle, files=files)
    with pytest.raises(ArtifactError, match="'../outside.txt', which is not a file in the bundle folder"):
        load_manifest(bundle)


def test_a_listed_device_is_refused_not_read_forever(bundle: Path) -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    (bundle / "zero").symlink_to("/dev/zero")
    _rewrite(bundle, files=read_manifest(bundle).files | {"zero": "00"})
    with pytest.raises(ArtifactError, match=r"zero is not a regular file but a folder, device or pipe"):
        load_manifest(bundle)


def test_a_listed_pipe_is_refused_without_blocking(bundle: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this system")
    os.mkfifo(bundle / "pipe")
    _rewrite(bundle, files=read_manifest(bundle).files | {"pipe": "00"})
    with pytest.raises(ArtifactError, match=r"pipe is not a regular file"):
        load_manifest(bundle)


def test_a_listed_folder_is_refused_by_name(bundle: Path) -> None:
    (bundle / "notes").mkdir()
    _rewrite(bundle, files=read_manifest(bundle).files | {"notes": "00"})
    with pytest.raises(ArtifactError, match=r"notes is not a regular file"):
        load_manifest(bundle)
