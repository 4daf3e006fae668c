"""The run folder: where one training run keeps every artefact it makes.

```
RUN/
  run.json            what was trained on, with which settings, and the results of each step
  data/               the seeded train/validation split (JSONL), so later steps reuse it exactly
  adapted/            the domain-adapted encoder (masked-LM)
  classifier/         the fine-tuned PyTorch classifier
  onnx_fp32/          the exported FP32 ONNX bundle (a reference for benchmarks)
  edge/               the INT8 edge bundle the runtime serves
  cloud_classifier/   the fine-tuned cloud-tier PyTorch classifier (``train --tier cloud``)
  cloud/              the cloud tier's FP32 ONNX bundle
  router.json         the calibrated routing policy (``calibrate``)
  students/L3/        a shallower student distilled from this run (``shrink --layers 3``), itself a run folder
  cache/              teacher logits on the training texts, reused by every distillation from the same teacher
```

run.json and the stored split are written through a temporary file in the same folder and one
rename (:func:`write_text_atomic`), so a crash leaves the old file or the new one, never a
truncated one; run.json is changed under an exclusive lock (``.run.json.lock``), so two commands
updating it at once both keep their sections. Bundles are built in a staging folder of their own
(:func:`staging_folder`, one per build, so two commands building the same bundle never meet) and
renamed into place only when complete (:func:`install_folders`); folders that cannot be staged are
rebuilt in place (:func:`rebuilding`). Either way the folder being replaced is renamed aside first
(``.NAME-aside``) and dropped only once the new one is complete, so it is put back if the new one
fails, and, after a crash or ``kill -9``, by the next command that opens the run folder
(:func:`recover_interrupted`), which also deletes the staging folders of killed builds. A run folder
that command cannot write (a read-only mount, another user's) is read as it is, with a warning.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from hybridroute.data import LabelledTexts, Split
from hybridroute.errors import ArtifactError, DataError
from hybridroute.files import NOT_WRITABLE, exclusive_lock, write_text_atomic

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
RUN_LOCK = ".run.json.lock"  # held while run.json is read, changed and written back


@dataclass(frozen=True)
class RunLayout:
    """Paths inside a run folder.

    Constructing one touches nothing; :meth:`open` is how a command starts using a run folder.
    """

    root: Path

    @classmethod
    def open(cls, root: Path) -> RunLayout:
        """The layout of ``root``, after finishing what a killed rebuild or install left there.

        The previous folder is put back wherever its replacement was never completed
        (:func:`recover_interrupted`), so no command reads a half-built bundle. A run folder this process
        cannot write (a read-only mount, another user's) is opened as it is: what could not be settled is
        logged as a warning, never raised.
        """
        recover_interrupted(Path(root))
        return cls(Path(root))

    @property
    def info_file(self) -> Path:
        """run.json: settings and results of every step."""
        return self.root / RUN_FILE

    @property
    def data_dir(self) -> Path:
        """The stored train/validation split."""
        return self.root / "data"

    @property
    def adapted(self) -> Path:
        """The domain-adapted encoder."""
        return self.root / "adapted"

    @property
    def classifier(self) -> Path:
        """The fine-tuned PyTorch classifier."""
        return self.root / "classifier"

    @property
    def onnx_fp32(self) -> Path:
        """The FP32 ONNX bundle."""
        return self.root / "onnx_fp32"

    @property
    def edge(self) -> Path:
        """The INT8 edge bundle."""
        return self.root / "edge"

    @property
    def cloud_classifier(self) -> Path:
        """The fine-tuned cloud-tier classifier."""
        return self.root / "cloud_classifier"

    @property
    def cloud(self) -> Path:
        """The cloud tier's ONNX bundle."""
        return self.root / "cloud"

    @property
    def router(self) -> Path:
        """The calibrated router."""
        return self.root / "router.json"

    @property
    def cache(self) -> Path:
        """Recomputable intermediate results (teacher logits)."""
        return self.root / "cache"

    def student(self, layers: int) -> RunLayout:
        """The run folder of the ``layers``-layer student distilled from this run."""
        return RunLayout(self.root / "students" / f"L{layers}")

    def students(self) -> tuple[int, ...]:
        """Layer counts of the students that have an FP32 ONNX bundle, smallest first."""
        found = []
        for folder in (self.root / "students").glob("L*"):
            depth = folder.name[1:]
            if depth.isdigit() and (self.student(int(depth)).onnx_fp32 / "manifest.json").is_file():
                found.append(int(depth))
        return tuple(sorted(found))

    def read_info(self) -> dict[str, Any]:
        """The run's record, or an empty one for a new run."""
        if not self.info_file.is_file():
            return {}
        try:
            info = json.loads(self.info_file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{self.info_file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{self.info_file}: not valid JSON ({exc})") from exc
        if not isinstance(info, dict):
            raise ArtifactError(f"{self.info_file}: expected a JSON object, got {type(info).__name__}")
        return info

    def update_info(self, **sections: Any) -> dict[str, Any]:
        """Merge top-level sections into run.json and write it back; returns the record written.

        The read, merge and write happen under an exclusive lock (``.run.json.lock`` beside it): without it,
        two commands updating at once would both read the old record and the later write would drop the
        other's sections.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.root / RUN_LOCK):
            info = self.read_info() | sections
            self._write_info(info)
        return info

    def merge_into_section(self, section: str, **entries: Any) -> dict[str, Any]:
        """Add ``entries`` to the run.json section ``section`` (a mapping), keeping its other entries; returns it.

        Under the same lock as :meth:`update_info`, so two commands adding entries at once both keep theirs.

        Example: layout.merge_into_section("students", L3={"val_accuracy": 0.93})
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(self.root / RUN_LOCK):
            info = self.read_info()
            info[section] = info.get(section, {}) | entries
            self._write_info(info)
        return info

    def drop_sections(self, *names: str) -> dict[str, Any]:
        """Remove the top-level sections ``names`` from run.json (those it lacks are ignored); returns the record.

        Under the same lock as :meth:`update_info`. A step that is skipped drops its section, so no later
        command reports the results of a step this run no longer has.
        """
        if not self.info_file.is_file():
            return {}
        with exclusive_lock(self.root / RUN_LOCK):
            info = self.read_info()
            if not set(names) & set(info):
                return info
            for name in names:
                info.pop(name, None)
            self._write_info(info)
        return info

    def _write_info(self, info: dict[str, Any]) -> None:
        write_text_atomic(self.info_file, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")

    def require_folder(self) -> None:
        """Refuse a run folder path that is a file (a step would fail deep inside with "File exists").

        Example: RunLayout(Path("notes.txt")).require_folder() -> ArtifactError("--out must be a run folder; ...")
        """
        if self.root.exists() and not self.root.is_dir():
            raise ArtifactError(
                f"--out must be a run folder; {self.root} is a file (give a folder, or a new path to create one)"
            )

    def require(self, path: Path, step: str) -> Path:
        """Raise with the command to run when an earlier step's output is missing."""
        if not path.exists():
            raise ArtifactError(f"{path} is missing: run `{step_command(step, self.root)}` first")
        return path


# ---------------------------------------------------------------- writing without a half-written state

# Names beside a folder ``NAME`` being replaced: ``.NAME-aside`` is the old folder (or, when there was none, an
# empty placeholder file) until the new one is complete; ``.NAME-discarded`` is the old folder after that, being
# deleted; ``.NAME.lock`` is held (flock) for as long as the replacement runs. Each build has its own staging
# folder, ``.NAME-staging-<random>`` (the new bundle is built in its ``.NAME-staging``), held by the build's
# lock ``.NAME-staging-<random>.lock`` beside it until the build ends. ``.NAME-previous`` and ``.NAME-staging``
# are left by earlier versions of this module (:func:`recover_interrupted` says how each is handled).

_OWN_STAGING = re.compile(r"\.(?P<name>.+)-staging-[0-9a-f]{16}")  # one build's staging folder (not its lock)


def _aside(target: Path) -> Path:
    return target.with_name(f".{target.name}-aside")


def _discarded(target: Path) -> Path:
    return target.with_name(f".{target.name}-discarded")


def _legacy_aside(target: Path) -> Path:
    """Where earlier versions kept an old folder: the meaning of one found depends on the version that left it."""
    return target.with_name(f".{target.name}-previous")


def _lock(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _owner_lock(build: Path) -> Path:
    """The lock a build holds on its staging folder ``build``: beside it, since what is inside becomes the bundle."""
    return build.with_name(f"{build.name}.lock")


def _present(path: Path) -> bool:
    """Whether anything is at ``path``, a dangling symbolic link included."""
    return path.exists() or path.is_symlink()


def _is_placeholder(aside: Path) -> bool:
    """Whether ``aside`` is the empty file that stands for "there was no folder before"."""
    return aside.is_file() and not aside.is_symlink()


def _remove(path: Path) -> None:
    """Delete a folder; for a symbolic link to one (a bundle kept elsewhere) or a placeholder file, only it."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A new, empty staging folder for ``target``, this build's own; it and what is left in it go on the way out.

    Build a bundle in it, then :func:`install_folders` it; after a failure the staging folder goes. Each call
    gets a folder of its own (inside ``.NAME-staging-<random>`` beside ``target``), held by a lock beside that
    for as long as the block runs, so two commands building the same bundle at once never touch each other's
    work, and the next command that opens the run folder deletes only the staging folders of builds that
    were killed (:func:`recover_interrupted`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    build = target.with_name(f".{target.name}-staging-{secrets.token_hex(8)}")
    with ExitStack() as stack:
        stack.enter_context(exclusive_lock(_owner_lock(build)))  # held before the folder exists: never unowned
        build.mkdir()
        stack.callback(shutil.rmtree, build, ignore_errors=True)
        staging = build / f".{target.name}-staging"
        staging.mkdir()
        yield staging


def _set_aside(target: Path) -> None:
    """Rename ``target`` to ``.NAME-aside``; with no ``target``, leave an empty placeholder file there instead."""
    if _present(target):
        target.rename(_aside(target))
    else:
        _aside(target).touch(exist_ok=False)


def _put_back(target: Path) -> None:
    """Undo :func:`_set_aside` once the new ``target`` is gone: the old folder back, or the placeholder deleted."""
    aside = _aside(target)
    if _is_placeholder(aside):
        aside.unlink()
    elif _present(aside) and not _present(target):
        aside.rename(target)


def _commit(target: Path) -> None:
    """Mark the new ``target`` complete: its ``.NAME-aside`` becomes ``.NAME-discarded`` (one atomic rename)."""
    _aside(target).rename(_discarded(target))


def _drop_discarded(target: Path) -> None:
    with suppress(OSError):  # one left behind is deleted when the run folder is next opened
        if _present(_discarded(target)):
            _remove(_discarded(target))


def _undo_unfinished(aside: Path, target: Path) -> str:
    """Undo a replacement of ``target`` that never finished, its old folder (or placeholder) at ``aside``.

    Returns what was done ("" for nothing).
    """
    if _is_placeholder(aside):
        undone = ""
        if _present(target):
            _remove(target)
            undone = "removed a partial folder; the build that made it was interrupted"
        aside.unlink()
        return undone
    if not _present(aside):
        return ""
    undone = "restored the previous folder; the rebuild that replaced it was interrupted"
    if _present(target):
        _remove(target)
        undone += " (partial one removed)"
    aside.rename(target)
    return undone


def _say_legacy_kept(target: Path) -> None:
    legacy, name = _legacy_aside(target).name, target.name
    logger.warning(
        "%s: %s",
        target,
        f"{legacy} beside it was left by an earlier version of hybridroute, either an old copy whose deletion was "
        f"interrupted (then {name} is complete) or the old folder of a rebuild that was interrupted (then {name} "
        f"is partial); both are kept: if {name} loads and is the one you expect, delete {legacy}; if not, delete "
        f"{name} and rename {legacy} to {name}",
    )


def _settle_legacy(target: Path) -> str:
    """Settle a ``.NAME-previous`` left by an earlier version; returns what was done ("" for nothing).

    Without ``target`` it is the old folder whatever the version (its replacement never arrived): renamed
    back. Beside ``target`` it is ambiguous (an old copy not fully deleted beside a complete ``target``, or,
    for the version that introduced placeholders, the old folder beside a partial rebuild), so neither is
    touched and a warning says what to do. An empty file there is a placeholder, which only the version that
    introduced them wrote: it is settled as one.
    """
    legacy = _legacy_aside(target)
    if _is_placeholder(legacy) or not _present(target):
        return _undo_unfinished(legacy, target)
    if _present(legacy):
        _say_legacy_kept(target)
    return ""


def _settle(target: Path) -> bool:
    """Finish what an interrupted replacement of ``target`` left (its lock held); True when something was undone.

    See :func:`recover_interrupted` for the states and why each is handled as it is.
    """
    undone = "; ".join(filter(None, (_undo_unfinished(_aside(target), target), _settle_legacy(target))))
    _drop_discarded(target)
    if undone:
        logger.warning("%s: %s", target, undone)
    return bool(undone)


@contextmanager
def _replacing(*targets: Path) -> Iterator[None]:
    """Hold the locks of ``targets`` for the block, after settling what an interrupted replacement left.

    A target another command is replacing is waited for (saying so), and the locks are taken in path order,
    so two commands never wait on each other.
    """
    with ExitStack() as stack:
        for target in sorted(set(targets)):
            target.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive_lock(_lock(target), on_wait=partial(_say_waiting, target)))
        for target in targets:
            _settle(target)
        yield


def _say_waiting(target: Path) -> None:
    logger.warning("%s: another command is replacing it; waiting for it to finish", target)


def _interrupted_targets(folder: Path) -> list[Path]:
    """The folders in ``folder`` with a ``.NAME-aside``, ``.NAME-discarded`` or ``.NAME-previous`` beside them.

    Example: a folder holding ``.classifier-aside``, ``.edge-discarded`` and ``edge``
        -> [folder / "classifier", folder / "edge"]
    """
    names: set[str] = set()
    for suffix in ("-aside", "-discarded", "-previous"):
        names.update(marker.name[1 : -len(suffix)] for marker in folder.glob(f".*{suffix}"))
    return [folder / name for name in sorted(names) if name]


def _found(target: Path) -> str:
    """What an interrupted replacement left beside ``target``, in words.

    Example: with ``.edge-aside`` (a folder) and ``edge`` -> ".edge-aside (the previous folder, set aside) beside edge"
    """
    kinds = {
        _aside(target): "the previous folder, set aside",
        _discarded(target): "an old folder being deleted",
        _legacy_aside(target): "left by an earlier version",
    }
    found = [
        f"{marker.name} ({'a placeholder: there was no folder before' if _is_placeholder(marker) else kind})"
        for marker, kind in kinds.items()
        if _present(marker)
    ]
    return " and ".join(found) + (f" beside {target.name}" if _present(target) else f", no {target.name}")


def _say_left(what: str, exc: OSError) -> None:
    """Log that ``what`` was left as it is because this process cannot change the folder (``exc`` says why)."""
    logger.warning("%s; left as it is: this process cannot change it (%s)", what, exc.strerror or exc)


def _only_legacy_beside(target: Path) -> bool:
    """Whether all there is beside ``target`` is an earlier version's ambiguous ``.NAME-previous`` folder."""
    legacy = _legacy_aside(target)
    others = (_aside(target), _discarded(target))
    return _present(target) and _present(legacy) and not _is_placeholder(legacy) and not any(map(_present, others))


def _settle_unless_running(target: Path) -> bool:
    """:func:`_settle` ``target`` unless a command is replacing it now (its lock is held) or it cannot be changed.

    A folder this process cannot write (another user's, a read-only mount: an edge service reading a run) is
    left as it is, with a warning saying what was found; the next command that can write it settles it.
    """
    if _only_legacy_beside(target):
        _say_legacy_kept(target)  # nothing to change, so nothing to lock: a read-only reader gets the advice too
        return False
    try:
        with exclusive_lock(_lock(target), wait=False):
            try:
                return _settle(target)
            except OSError as exc:
                if exc.errno not in NOT_WRITABLE:
                    raise _cannot_put_back(target, exc) from exc
                _say_left(f"{target}: found {_found(target)}", exc)
                return False
    except BlockingIOError:
        return False  # still being replaced: its command finishes or undoes it
    except OSError as exc:
        if exc.errno not in NOT_WRITABLE:
            raise ArtifactError(f"{target}: could not tell whether a command is replacing it ({exc})") from exc
        _say_left(f"{target}: found {_found(target)}", exc)
        return False


def _cannot_put_back(target: Path, exc: OSError) -> ArtifactError:
    """The error for a replacement that could not be undone though no command holds its lock, saying how."""
    old = next((m for m in (_aside(target), _legacy_aside(target)) if _present(m)), _aside(target))
    how = (
        f"delete the file {old.name}"
        if _is_placeholder(old)
        else f"delete {target.name} if it is there and rename {old.name} to {target.name}"
    )
    return ArtifactError(
        f"{target} was being replaced when its command stopped, and what it left could not be put right ({exc}); "
        f"no command is replacing it now, so {how}"
    )


def _unowned_staging(folder: Path) -> list[Path]:
    """The staging folders in ``folder`` (and the locks of ones already gone) that may have lost their build.

    Example: a folder holding ``.edge-staging-0123456789abcdef``, its ``.lock`` and ``.edge-staging``
        -> [folder / ".edge-staging-0123456789abcdef"]
    """
    names = {path.name.removesuffix(".lock") for path in folder.glob(".*-staging-*")}
    return [folder / name for name in sorted(names) if _OWN_STAGING.fullmatch(name)]


def _drop_staging(build: Path) -> None:
    """Delete the staging folder ``build`` (and its lock) unless its build is still running."""
    try:
        with exclusive_lock(_owner_lock(build), wait=False):
            if _present(build):
                _remove(build)
                logger.info("%s: deleted the staging folder of a build that was killed", build)
    except BlockingIOError:
        pass  # its build is running
    except OSError as exc:
        if exc.errno not in NOT_WRITABLE:
            raise
        _say_left(f"{build}: found the staging folder of a build that was killed", exc)


def _drop_legacy_staging(folder: Path) -> None:
    """Delete the ``.NAME-staging`` folders an earlier version left (it deleted them itself at its next build)."""
    for staging in folder.glob(".*-staging"):
        try:
            _remove(staging)
        except OSError as exc:
            if exc.errno not in NOT_WRITABLE:
                raise
            _say_left(f"{staging}: found a staging folder left by an earlier version", exc)


def recover_interrupted(root: Path) -> list[Path]:
    """Finish what killed rebuilds and installs left in the run folder ``root`` and its students; return them.

    Run on opening a run folder (:class:`RunLayout`). A replacement (:func:`rebuilding`,
    :func:`install_folders`) of a folder ``NAME`` takes these steps, holding ``.NAME.lock``:

    1. rename ``NAME`` to ``.NAME-aside`` (or, with no ``NAME``, create an empty file of that name);
    2. build ``NAME`` in place, or rename a finished staging folder to ``NAME``;
    3. rename ``.NAME-aside`` to ``.NAME-discarded``: from here on the new ``NAME`` is the folder;
    4. delete ``.NAME-discarded``.

    A kill at any point leaves one of these states, settled as follows:

    - before 1: nothing changed;
    - after 1, before 3 (the dangerous window, hours long while a model trains): ``.NAME-aside`` beside a
      partial ``NAME`` or none. The replacement never finished, so ``NAME`` (if any) is deleted and
      ``.NAME-aside`` renamed back (a placeholder file is deleted instead: there was no folder before);
    - after 3: a complete ``NAME`` and ``.NAME-discarded``, whole or half deleted: it is deleted.

    Deleting and renaming are repeated from the start if the recovery itself is killed. A folder whose lock
    is held (its replacement is still running, in this process or another) is left alone. Each restored
    folder is logged as a warning.

    Earlier versions used ``.NAME-previous`` for the old folder, with two meanings: an old copy not fully
    deleted beside a complete ``NAME``, or (in the version that introduced these steps) the old folder beside
    a partial rebuild. Without ``NAME`` it is the old folder either way and is renamed back; beside ``NAME``
    neither is touched and a warning says how to tell which to keep.

    Staging folders (:func:`staging_folder`) whose build was killed are deleted, with their locks; those
    whose build is still running are left alone, and so are the folders of a run folder this process
    cannot change (another user's, a read-only mount): each is logged as one warning, and the next command
    that can write there settles it.

    Raises:
        ArtifactError: a previous folder could not be put back though no command holds its lock (the message
            says how to put it back), or whether one holds it could not be told.
    """
    root = Path(root)
    folders = (root, root / "students", root / "variants")
    restored = [
        target for folder in folders for target in _interrupted_targets(folder) if _settle_unless_running(target)
    ]
    for folder in folders:
        for build in _unowned_staging(folder):
            _drop_staging(build)
        _drop_legacy_staging(folder)
    return restored


def install_folders(*moves: tuple[Path, Path]) -> None:
    """Rename each finished ``(staging, target)`` folder into place, all or none, never losing an old target.

    For each target in turn: the old folder is renamed aside (``.NAME-aside``) and the staging
    folder renamed in; the old folders are dropped only after every target is in place. If a step
    fails, the targets already installed go back to their staging folders and every old folder is
    renamed back, so the run folder is as it was. Between the two renames a target is briefly absent:
    an edge service watching its ``manifest.json`` sees no manifest and waits for the next one. After a
    crash before every target was in place, the next command that opens the run folder puts every old
    folder back (:func:`recover_interrupted`); only a crash among the final renames that drop the old
    folders (microseconds) can leave some targets new and others old.
    """
    with _replacing(*(target for _, target in moves)):
        done: list[tuple[Path, Path]] = []
        try:
            for staging, target in moves:
                _set_aside(target)
                try:
                    staging.rename(target)
                except BaseException:
                    _put_back(target)
                    raise
                done.append((staging, target))
        except BaseException:
            for staging, target in reversed(done):
                target.rename(staging)
                _put_back(target)
            raise
        for _, target in moves:
            _commit(target)
        for _, target in moves:
            _drop_discarded(target)


@contextmanager
def rebuilding(target: Path) -> Iterator[Path]:
    """Rebuild the folder ``target`` where it lives, keeping the old one until the new one is complete.

    For folders that cannot be built in staging (a student run folder records its own paths): the old
    folder is set aside (``.NAME-aside``) while the block builds ``target``; if the block fails, what
    it built is deleted and the old folder renamed back, and if it succeeds the old one is deleted. A
    crash inside the block leaves the old folder as ``.NAME-aside`` beside a partial ``target``; the
    next command that opens the run folder deletes the partial one and puts the old one back
    (:func:`recover_interrupted` lists every state a kill can leave). A second rebuild of the same
    ``target`` waits for the first.
    """
    target = Path(target)
    with _replacing(target):
        _set_aside(target)
        try:
            yield target
            _commit(target)
        except BaseException:
            if _present(target):
                _remove(target)
            _put_back(target)
            raise
        _drop_discarded(target)


def step_command(step: str, root: Path) -> str:
    """The command line that produces step ``step``'s output in the run folder ``root``.

    Example: step_command("compress", Path("runs/a")) -> "hybridroute compress --run runs/a";
    step_command("finetune", Path("runs/a")) -> "hybridroute finetune --out runs/a"
    """
    if step == "train":
        return f"hybridroute train --data FILE --out {root}"
    flag = "--run" if step in {"compress", "calibrate"} else "--out"  # these read a run; the rest build one
    return f"hybridroute {step} {flag} {root}"


def _write_jsonl(path: Path, data: LabelledTexts) -> None:
    pairs = zip(data.texts, data.labels, strict=True)
    write_text_atomic(path, "".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in pairs))


def _read_jsonl(path: Path, checksum: str) -> LabelledTexts:
    texts, labels = [], []
    for number, line in enumerate(_read_stored(path).splitlines(), start=1):
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise _damaged(path, f"line {number} is not a {{'text', 'label'}} JSON object ({exc})") from exc
        if not isinstance(text, str) or not isinstance(label, str):
            raise _damaged(path, f"line {number} has a text or label that is not a string")
        texts.append(text)
        labels.append(label)
    return LabelledTexts(tuple(texts), tuple(labels), source=str(path), checksum=checksum)


def _read_stored(path: Path) -> str:
    """The text of a stored file of a run folder; a missing or undecodable one is an ArtifactError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise _damaged(path, "the file is missing") from exc
    except UnicodeDecodeError as exc:
        raise _damaged(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _damaged(path: Path, what: str) -> ArtifactError:
    return ArtifactError(
        f"{path}: {what}; the run folder is damaged: rebuild the split with `hybridroute finetune --data FILE "
        f"--out {path.parent.parent}`"
    )


def save_split(layout: RunLayout, split: Split) -> None:
    """Store the split so adaptation, fine-tuning, compression and calibration all see the same data.

    The three files are written in a staging folder and ``RUN/data`` is replaced by it whole
    (:func:`install_folders`): a failure or a kill leaves the previous split, never a mix of old and new files.
    """
    with staging_folder(layout.data_dir) as staging:
        _write_jsonl(staging / "train.jsonl", split.train)
        _write_jsonl(staging / "validation.jsonl", split.validation)
        write_text_atomic(staging / "labels.json", json.dumps(list(split.labels), indent=1))
        install_folders((staging, layout.data_dir))


def load_saved_split(layout: RunLayout, remedy: str = "") -> Split:
    """Read the split a previous step stored.

    Without one, the error says ``remedy`` (what the calling command should be given), else which command
    stores a split.
    """
    labels_file = layout.data_dir / "labels.json"
    if not labels_file.is_file():
        remedy = remedy or (
            f"run `hybridroute finetune --data FILE --out {layout.root}` or "
            f"`hybridroute train --data FILE --out {layout.root}` first"
        )
        raise DataError(f"{layout.root} has no stored data split: {remedy}")
    checksum = str(layout.read_info().get("data", {}).get("checksum", ""))
    labels = _read_labels(labels_file)
    train = _read_jsonl(layout.data_dir / "train.jsonl", checksum)
    validation = _read_jsonl(layout.data_dir / "validation.jsonl", checksum)
    return Split(train, validation, labels)


def _read_labels(path: Path) -> tuple[str, ...]:
    try:
        labels = json.loads(_read_stored(path))
    except json.JSONDecodeError as exc:
        raise _damaged(path, f"not valid JSON ({exc})") from exc
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise _damaged(path, f"expected a JSON list of label strings, got {type(labels).__name__}")
    return tuple(labels)
