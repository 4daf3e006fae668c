"""Self-describing model bundles: a folder with ``model.onnx``, ``tokenizer.json`` and ``manifest.json``.

The manifest records the label list, max length, temperature, checksums of the
model and tokenizer, how the model was made and its evaluation metrics. The
runtime refuses a bundle whose manifest is missing, malformed, from a newer
format, or whose checksums do not match the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import Any, BinaryIO

from hybridroute.config import is_finite_number, is_integer
from hybridroute.data import file_sha256 as sha256_file
from hybridroute.data import stream_sha256, unreadable_json
from hybridroute.errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.onnx"
TOKENIZER_NAME = "tokenizer.json"
REQUIRED_KEYS = ("format_version", "labels", "max_length", "files")


@dataclass(frozen=True)
class Manifest:
    """What a bundle is, how it was made and how well it did."""

    labels: tuple[str, ...]
    max_length: int
    files: dict[str, str]  # file name -> sha256
    temperature: float = 1.0  # logits are divided by it before softmax (fitted on validation data)
    kind: str = "edge"
    base_model: str = ""
    data_checksum: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def model_version(self) -> str:
        """A short, stable identifier: the first 12 hex digits of the model file's sha256."""
        return self.files.get(MODEL_NAME, "unknown")[:12]

    def to_json(self) -> str:
        """The manifest as pretty JSON."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        return json.dumps(data, indent=2, sort_keys=True)

    def with_updates(self, **changes: Any) -> Manifest:
        """A copy with some fields replaced."""
        return replace(self, **changes)


MIN_MAX_LENGTH = 2  # [CLS] and [SEP] alone take two tokens
MAX_MAX_LENGTH = 1_000_000  # far above any encoder's positions; the tokenizer cannot take an unbounded one
TEXT_FIELDS = ("kind", "base_model", "data_checksum")
OBJECT_FIELDS = ("settings", "metrics")


def _field_error(path: Path, name: str, accepted: str, value: Any) -> ArtifactError:
    """The one-line refusal of a manifest field: the file, the field, what it holds and what is accepted."""
    return ArtifactError(f"{path}: manifest field {name!r} must be {accepted}, got {value!r:.80}")


def check_labels(path: Path, labels: Any) -> tuple[str, ...]:
    """Two or more distinct strings, in the model's output order.

    Example: check_labels(p, ["a", "a", "c"]) -> ArtifactError("... 'labels' must be distinct; 'a' appears 2 times ...")
    """
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise ArtifactError(f"{path}: 'labels' must be a list of two or more strings, got {labels!r:.80}")
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise ArtifactError(
            f"{path}: 'labels' must be distinct, one per model output; {twice[0]!r} appears "
            f"{labels.count(twice[0])} times in {labels!r:.80}"
        )
    return tuple(labels)


def is_plain_name(name: str) -> bool:
    """Whether ``name`` names an entry of a folder itself: no separator, drive, NUL byte, '.' or '..'.

    Example: is_plain_name("model.onnx") -> True; is_plain_name("../x") -> False; is_plain_name("/dev/zero") -> False
    """
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0") and not PureWindowsPath(name).drive


def check_file_name(path: Path, name: str) -> None:
    """Refuse a ``files`` entry that is not a plain file name inside the bundle folder (``../x``, ``/dev/zero``).

    Example: check_file_name(p, "/etc/hostname") -> ArtifactError("... 'files' names '/etc/hostname' ...")
    """
    if not is_plain_name(name):
        raise ArtifactError(
            f"{path}: manifest field 'files' names {name!r:.80}, which is not a file in the bundle folder; "
            "entries must be plain file names (no '/' or '\\', not '.' or '..')"
        )


def check_manifest_fields(path: Path, data: dict[str, Any]) -> None:
    """Refuse manifest values the runtime cannot use.

    A temperature that is not a finite number > 0 (0 gives NaN probabilities, a negative one inverts the
    answer), a max_length below 2, files that are not a name -> checksum object, text or object fields of
    another type.
    """
    temperature = data.get("temperature", 1.0)
    if not is_finite_number(temperature) or temperature <= 0:
        raise _field_error(path, "temperature", "a finite number > 0", temperature)
    max_length = data["max_length"]
    if not is_integer(max_length) or not MIN_MAX_LENGTH <= max_length <= MAX_MAX_LENGTH:
        raise _field_error(path, "max_length", f"an integer from {MIN_MAX_LENGTH} to {MAX_MAX_LENGTH:,}", max_length)
    files = data["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise _field_error(path, "files", "an object of file name -> sha256 hex string", files)
    for name in files:
        check_file_name(path, name)
    for name in TEXT_FIELDS:
        if not isinstance(data.get(name, ""), str):
            raise _field_error(path, name, "a string", data[name])
    for name in OBJECT_FIELDS:
        if not isinstance(data.get(name, {}), dict):
            raise _field_error(path, name, "an object", data[name])


def parse_manifest(raw: bytes, path: Path) -> Manifest:
    """Decode and validate the bytes of the manifest file ``path``.

    Example: parse_manifest(b"[1]", p) -> ArtifactError("p: must hold a JSON object")
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from exc
    except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, brackets nested thousands deep
        raise ArtifactError(f"{path}: not valid JSON ({unreadable_json(exc)})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: must hold a JSON object")
    return _parse_manifest(data, path)


def check_required_checksums(bundle_dir: Path, manifest: Manifest) -> None:
    """Refuse a manifest without a checksum for the model or the tokenizer."""
    for name in (MODEL_NAME, TOKENIZER_NAME):
        if name not in manifest.files:
            raise ArtifactError(f"{bundle_dir}: manifest has no checksum for {name}")


def check_checksum(path: Path, expected: str, actual: str) -> None:
    """Refuse a file whose sha256 differs from the manifest's.

    Example: check_checksum(p, "ab12…", "cd34…") -> ArtifactError("p: checksum mismatch (manifest ab12…, file cd34…) …")
    """
    if actual != expected:
        raise ArtifactError(
            f"{path}: checksum mismatch (manifest {expected[:12]}…, file {actual[:12]}…); "
            "the file was changed or corrupted after the bundle was written"
        )


# Opening files relative to a folder descriptor needs both (neither exists on Windows).
FOLDER_DESCRIPTORS = os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
NONBLOCKING = getattr(os, "O_NONBLOCK", 0)  # opening a pipe for reading waits for a writer without it


def _open_folder(path: Path) -> int | None:
    """A read-only descriptor of the folder ``path``; None where :data:`FOLDER_DESCRIPTORS` is False."""
    if not FOLDER_DESCRIPTORS:
        if not path.is_dir():
            raise ArtifactError(f"bundle folder {path} does not exist")
        return None
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ArtifactError(f"bundle folder {path} does not exist") from exc


def _parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ArtifactError(f"{path}: manifest lacks {missing}; it needs {list(REQUIRED_KEYS)}")
    version = data["format_version"]
    if not is_integer(version) or version < 1:
        accepted = f"a positive integer (this hybridroute reads 1 to {FORMAT_VERSION})"
        raise _field_error(path, "format_version", accepted, version)
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: manifest format {version!r} is newer than this hybridroute understands "
            f"(up to {FORMAT_VERSION}); upgrade hybridroute"
        )
    labels = check_labels(path, data["labels"])
    check_manifest_fields(path, data)
    known = {f for f in Manifest.__dataclass_fields__}
    try:
        return Manifest(**{k: v for k, v in data.items() if k in known} | {"labels": labels})
    except TypeError as exc:
        raise ArtifactError(f"{path}: malformed manifest ({exc})") from exc


class BundleFolder:
    """A bundle folder opened once, so that every file is read from that same folder.

    Bundles are replaced by renaming a whole new folder into place (``hybridroute.runs.install_folders``).
    Opening each file by its path could read the manifest from the old folder and the model from the new
    one; files opened through a descriptor of the folder all come from the folder that was opened, even
    after another one took its name (a file already deleted from it reads as missing). Where the OS cannot
    open files relative to a folder (Windows), files are opened by path, and a replacement made while the
    bundle is read shows as a checksum mismatch.

    Example: with BundleFolder(path) as folder: folder.read_manifest() -> Manifest(...)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = _open_folder(self.path)

    def __enter__(self) -> BundleFolder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the folder's descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def open(self, name: str) -> BinaryIO:
        """Open one of the folder's regular files for reading (``FileNotFoundError`` when it is absent).

        ``name`` must be a plain file name; a device, pipe or folder by that name is refused with
        :class:`ArtifactError` (``/dev/zero`` would be read forever, a pipe would block the open).
        """
        if not is_plain_name(name):
            raise ArtifactError(f"{self.path}: {name!r:.80} is not a file name in the bundle folder")
        if self._fd is None:
            if (self.path / name).exists() and not (self.path / name).is_file():
                raise self._not_regular(name)
            return (self.path / name).open("rb")
        folder = self._fd

        def opener(relative: str, flags: int) -> int:
            descriptor = os.open(relative, flags | NONBLOCKING, dir_fd=folder)  # a pipe must not block the open
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                os.close(descriptor)
                raise self._not_regular(name)
            os.set_blocking(descriptor, True)
            return descriptor

        return open(name, "rb", opener=opener)

    def _not_regular(self, name: str) -> ArtifactError:
        return ArtifactError(
            f"{self.path}: {name} is not a regular file but a folder, device or pipe; a bundle holds plain files"
        )

    def read_bytes(self, name: str, missing: str) -> bytes:
        """The whole content of the file ``name``; ``ArtifactError(missing)`` when there is no such file."""
        try:
            with self.open(name) as handle:
                return handle.read()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ArtifactError(missing) from exc

    def read_manifest(self) -> Manifest:
        """Read and validate the folder's manifest (not yet its checksums)."""
        raw = self.read_bytes(MANIFEST_NAME, f"{self.path} is not a bundle: {MANIFEST_NAME} is missing")
        return parse_manifest(raw, self.path / MANIFEST_NAME)

    def verified_bytes(self, manifest: Manifest, name: str) -> bytes:
        """A listed file's content, read once and checked against the manifest's checksum."""
        content = self.read_bytes(name, f"{self.path}: {name} is listed in the manifest but missing")
        check_checksum(self.path / name, manifest.files[name], hashlib.sha256(content).hexdigest())
        return content

    def verify(self, manifest: Manifest, skip: Collection[str] = ()) -> None:
        """Raise unless every file listed in the manifest (but ``skip``) is here with its recorded checksum."""
        check_required_checksums(self.path, manifest)
        for name, expected in manifest.files.items():
            if name in skip:
                continue
            try:
                with self.open(name) as handle:
                    actual = stream_sha256(handle)
            except (FileNotFoundError, IsADirectoryError) as exc:
                raise ArtifactError(f"{self.path}: {name} is listed in the manifest but missing") from exc
            check_checksum(self.path / name, expected, actual)


@dataclass(frozen=True)
class BundleContents:
    """A bundle read once and verified: the manifest and the very bytes its checksums were checked on."""

    manifest: Manifest
    model: bytes
    tokenizer: bytes


def read_bundle(bundle_dir: str | Path) -> BundleContents:
    """Read a bundle's manifest, model and tokenizer once each, from one folder, and verify their checksums.

    The classifier is built from the returned bytes, so it holds exactly the files that were verified,
    all from the same bundle, even while a new bundle is renamed into place.
    """
    with BundleFolder(bundle_dir) as folder:
        manifest = folder.read_manifest()
        check_required_checksums(folder.path, manifest)
        model = folder.verified_bytes(manifest, MODEL_NAME)
        tokenizer = folder.verified_bytes(manifest, TOKENIZER_NAME)
        folder.verify(manifest, skip=(MODEL_NAME, TOKENIZER_NAME))
    return BundleContents(manifest, model, tokenizer)


def read_manifest(bundle_dir: str | Path) -> Manifest:
    """Read and validate a bundle's manifest (not yet its checksums)."""
    with BundleFolder(bundle_dir) as folder:
        return folder.read_manifest()


def verify_files(bundle_dir: str | Path, manifest: Manifest) -> None:
    """Raise unless every file listed in the manifest exists with the recorded checksum."""
    with BundleFolder(bundle_dir) as folder:
        folder.verify(manifest)


def load_manifest(bundle_dir: str | Path) -> Manifest:
    """Read a manifest and verify the files it lists (all read from the same folder)."""
    with BundleFolder(bundle_dir) as folder:
        manifest = folder.read_manifest()
        folder.verify(manifest)
    return manifest


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    """Record the checksums of the bundle's files and write ``manifest.json``."""
    names = sorted(set(manifest.files) | {MODEL_NAME, TOKENIZER_NAME})
    files = {name: sha256_file(Path(bundle_dir) / name) for name in names}
    path = Path(bundle_dir) / MANIFEST_NAME
    path.write_text(manifest.with_updates(files=files).to_json() + "\n", encoding="utf-8")
    return path
