"""A bundle replaced while it is being loaded: the loader gives the old bundle or refuses, never a mix.

Bundles are replaced by renaming a whole new folder into place (``hybridroute.runs.install_folders``:
the old folder is renamed aside, the new one renamed in, the old one deleted). Each test replaces the
folder through the real filesystem at one point of the load (a hook wrapped around a function the
loader calls) and checks what the loader returns against the two bundles loaded on their own.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridroute.errors import ArtifactError
from hybridroute.runtime import bundle as bundle_module
from hybridroute.runtime import classifier as classifier_module
from hybridroute.runtime import fastpath as fastpath_module
from hybridroute.runtime.bundle import TOKENIZER_NAME, Manifest, read_manifest, write_manifest
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.runtime.fastpath import FastClassifier
from support.bundles import make_bundle

TEXTS = ["hi", "where is my order please tell me now", "a b c d e f g h i j k l m n o p q r s t"]


def make_other_bundle(folder: Path) -> Path:
    """A bundle unlike :func:`make_bundle`'s in every file: labels listed in reverse (with the model's
    outputs reversed to match), another temperature, and a tokenizer that adds no [CLS]/[SEP].

    Alone it answers sensibly; its model, tokenizer or manifest paired with the other bundle's files
    gives different probabilities from either bundle.
    """
    import onnx
    from onnx import numpy_helper

    make_bundle(folder, labels=("c", "b", "a"), temperature=2.0)
    model = onnx.load(folder / "model.onnx")
    for tensor in model.graph.initializer:
        if tensor.name in ("W", "B"):
            flipped = numpy_helper.to_array(tensor)[..., ::-1].copy() * 3.0
            tensor.CopyFrom(numpy_helper.from_array(flipped, tensor.name))
    onnx.save(model, folder / "model.onnx")
    tokenizer = json.loads((folder / TOKENIZER_NAME).read_text(encoding="utf-8"))
    tokenizer["post_processor"] = None
    (folder / TOKENIZER_NAME).write_text(json.dumps(tokenizer), encoding="utf-8")
    write_manifest(folder, read_manifest(folder).with_updates(files={}))
    return folder


def replace_folder(target: Path, source: Path, keep_old: bool) -> None:
    """Install a copy of ``source`` at ``target`` the way ``install_folders`` does: rename, rename, delete."""
    staging = target.with_name(f".{target.name}-staging")
    previous = target.with_name(f".{target.name}-previous")
    shutil.copytree(source, staging)
    target.rename(previous)
    staging.rename(target)
    if not keep_old:
        shutil.rmtree(previous)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bundles")
    return make_bundle(root / "old"), make_other_bundle(root / "new")


Loader = Callable[[Path], Any]
LOADERS: dict[str, Loader] = {
    "EdgeClassifier": lambda path: EdgeClassifier.from_dir(path, threads=1),
    "FastClassifier": FastClassifier.from_dir,
}


def answers(loaded: Any) -> tuple[Manifest, np.ndarray]:
    """What a loaded classifier is: its manifest and its probabilities on TEXTS."""
    return loaded.manifest, np.asarray(loaded.predict_proba(TEXTS))


def same(left: tuple[Manifest, np.ndarray], right: tuple[Manifest, np.ndarray]) -> bool:
    return left[0] == right[0] and np.allclose(left[1], right[1], atol=1e-6)


def test_the_two_bundles_and_their_mixes_answer_differently(bundles: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = bundles
    alone = [answers(EdgeClassifier.from_dir(b)) for b in (old, new)]
    assert not np.allclose(alone[0][1], alone[1][1])
    for moved in ("model.onnx", TOKENIZER_NAME):  # old manifest with one file of the new bundle
        mixed = shutil.copytree(old, tmp_path / moved)
        shutil.copy(new / moved, mixed / moved)
        write_manifest(mixed, read_manifest(mixed))
        probabilities = answers(EdgeClassifier.from_dir(mixed))[1]
        assert not np.allclose(probabilities, alone[0][1]) and not np.allclose(probabilities, alone[1][1])


# Where the replacement lands: (module, function) the hook wraps; the loader has read the manifest,
# the model and the tokenizer respectively (the last two only for the loaders that call them).
HOOKS = {
    "after the manifest is read": (bundle_module, "_parse_manifest"),
    "before the session is opened": (classifier_module, "open_session"),
    "before the fast session is opened": (fastpath_module, "session_from"),
    "before the tokenizer is opened": (classifier_module, "open_tokenizer"),
    "before the fast tokenizer is opened": (fastpath_module, "open_tokenizer"),
}
CASES = [
    ("EdgeClassifier", "after the manifest is read"),
    ("EdgeClassifier", "before the session is opened"),
    ("EdgeClassifier", "before the tokenizer is opened"),
    ("FastClassifier", "after the manifest is read"),
    ("FastClassifier", "before the fast session is opened"),
    ("FastClassifier", "before the fast tokenizer is opened"),
]


def load_while_replacing(
    monkeypatch: pytest.MonkeyPatch, loader: str, hook: str, target: Path, new: Path, keep_old: bool
) -> Any:
    """Load ``target`` with ``loader``, replacing it by a copy of ``new`` when the load reaches ``hook``."""
    module, name = HOOKS[hook]
    real = getattr(module, name)
    replaced: list[bool] = []

    def replacing(*args: Any, **kwargs: Any) -> Any:
        if not replaced:
            replace_folder(target, new, keep_old)
            replaced.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, replacing)
    try:
        return LOADERS[loader](target)
    finally:
        monkeypatch.setattr(module, name, real)
        assert replaced, f"the load never reached {hook}"


@pytest.mark.parametrize("keep_old", [True, False], ids=["old-folder-kept", "old-folder-deleted"])
@pytest.mark.parametrize(("loader", "hook"), CASES)
def test_a_bundle_replaced_mid_load_gives_the_old_bundle_or_a_refusal(
    bundles: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: str, hook: str, keep_old: bool
) -> None:
    old, new = bundles
    target = shutil.copytree(old, tmp_path / "edge")
    expected_old = answers(LOADERS[loader](old))
    if hook == "after the manifest is read" and not keep_old:
        # The manifest came from the old folder, which is gone before its model is read.
        with pytest.raises(ArtifactError, match="model.onnx is listed in the manifest but missing"):
            load_while_replacing(monkeypatch, loader, hook, target, new, keep_old)
    else:
        loaded = load_while_replacing(monkeypatch, loader, hook, target, new, keep_old)
        assert same(answers(loaded), expected_old), "loaded a mix of the old and the new bundle"
    assert same(answers(LOADERS[loader](target)), answers(LOADERS[loader](new)))  # the next load: the new bundle


@pytest.mark.parametrize(("loader", "hook"), CASES)
def test_without_folder_descriptors_a_replacement_mid_read_is_a_checksum_error(
    bundles: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: str, hook: str
) -> None:
    # Where files cannot be opened relative to the folder (Windows) they are opened by path: the
    # manifest may then come from the old folder and the model from the new one, which must be refused.
    monkeypatch.setattr(bundle_module, "FOLDER_DESCRIPTORS", False)
    old, new = bundles
    target = shutil.copytree(old, tmp_path / "edge")
    if hook == "after the manifest is read":
        with pytest.raises(ArtifactError, match=r"model\.onnx: checksum mismatch"):
            load_while_replacing(monkeypatch, loader, hook, target, new, keep_old=True)
    else:  # every file was read (and verified) before the replacement
        loaded = load_while_replacing(monkeypatch, loader, hook, target, new, keep_old=True)
        assert same(answers(loaded), answers(LOADERS[loader](old)))


def test_load_manifest_verifies_the_folder_it_read_the_manifest_from(
    bundles: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = bundles
    target = shutil.copytree(old, tmp_path / "edge")
    module, name = HOOKS["after the manifest is read"]
    real = getattr(module, name)

    def replacing(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(module, name, real)
        replace_folder(target, new, keep_old=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, replacing)
    assert bundle_module.load_manifest(target) == read_manifest(old)


def test_a_model_with_external_data_is_refused_naming_the_cause(tmp_path: Path) -> None:
    import onnx
    from onnx.external_data_helper import set_external_data, write_external_data_tensors

    folder = make_bundle(tmp_path / "external")
    model = onnx.load(folder / "model.onnx")
    for tensor in model.graph.initializer:
        if tensor.name == "W":
            set_external_data(tensor, "model.onnx.data")
    onnx.save(write_external_data_tensors(model, str(folder)), folder / "model.onnx")
    write_manifest(folder, read_manifest(folder).with_updates(files={}))
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load it .*not refer to external data files"):
        EdgeClassifier.from_dir(folder)


# ---------------------------------------------------------------- loading from the bytes read


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_files_that_cannot_be_loaded_are_named_by_path(tmp_path: Path, loader: str) -> None:
    folder = make_bundle(tmp_path / "bundle")
    (folder / "model.onnx").write_bytes(b"this is not an onnx graph" * 10)
    write_manifest(folder, read_manifest(folder))
    with pytest.raises(ArtifactError, match=f"^{re.escape(str(folder / 'model.onnx'))}: ONNX Runtime cannot load it"):
        LOADERS[loader](folder)
    make_bundle(folder)
    (folder / TOKENIZER_NAME).write_text('{"not": "a tokenizer"}', encoding="utf-8")
    write_manifest(folder, read_manifest(folder))
    with pytest.raises(ArtifactError, match=f"^{re.escape(str(folder / TOKENIZER_NAME))}: not a valid tokenizer file"):
        LOADERS[loader](folder)


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_the_session_keeps_no_second_copy_of_the_model(bundles: tuple[Path, Path], loader: str) -> None:
    # onnxruntime's InferenceSession keeps the bytes it was built from unless told otherwise (_model_bytes).
    session = LOADERS[loader](bundles[0]).session
    assert getattr(session, "_model_bytes", None) is None
