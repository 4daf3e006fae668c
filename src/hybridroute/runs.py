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
truncated one. Bundles are built in a staging folder (:func:`staging_folder`) and renamed into
place only when complete (:func:`install_folders`); the folder a bundle replaces is renamed
aside first and deleted last, so it is put back if the new one cannot be installed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridroute.data import LabelledTexts, Split
from hybridroute.errors import ArtifactError, DataError
from hybridroute.files import write_text_atomic

RUN_FILE = "run.json"


@dataclass(frozen=True)
class RunLayout:
    """Paths inside a run folder."""

    root: Path

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
            return json.loads(self.info_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{self.info_file}: not valid JSON ({exc})") from exc

    def update_info(self, **sections: Any) -> dict[str, Any]:
        """Merge top-level sections into run.json and write it back."""
        info = self.read_info() | sections
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.info_file, json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
        return info

    def require(self, path: Path, step: str) -> Path:
        """Raise with the command to run when an earlier step's output is missing."""
        if not path.exists():
            raise ArtifactError(f"{path} is missing: run `{step_command(step, self.root)}` first")
        return path


# ---------------------------------------------------------------- writing without a half-written state


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """A new, empty ``.NAME-staging`` folder beside ``target``; whatever is left of it is deleted on the way out.

    Build a bundle in it, then :func:`install_folders` it; after a failure the staging folder goes.
    """
    staging = Path(target).with_name(f".{Path(target).name}-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _aside(target: Path) -> Path:
    return target.with_name(f".{target.name}-previous")


def _remove(folder: Path) -> None:
    """Delete a folder; for a symbolic link to one (a bundle kept elsewhere), only the link."""
    if folder.is_symlink():
        folder.unlink()
    else:
        shutil.rmtree(folder)


def _put_back(target: Path) -> None:
    """Rename the folder set aside for ``target`` back, if there is one and ``target`` is free."""
    if _aside(target).exists() and not target.exists():
        _aside(target).rename(target)


def _set_aside(target: Path) -> None:
    """Rename ``target`` to ``.NAME-previous``, after settling what an interrupted install left there.

    A ``.NAME-previous`` beside ``target`` is an old folder whose deletion did not happen: it goes.
    One without ``target`` is an old folder whose replacement never arrived (a crash between the
    renames): it is put back first, so it is set aside (and restored on failure) like any other.
    """
    aside = _aside(target)
    if (aside.exists() or aside.is_symlink()) and target.exists():
        _remove(aside)
    _put_back(target)
    if target.exists():
        target.rename(aside)


def install_folders(*moves: tuple[Path, Path]) -> None:
    """Rename each finished ``(staging, target)`` folder into place, all or none, never losing an old target.

    For each target in turn: the old folder is renamed aside (``.NAME-previous``) and the staging
    folder renamed in; the old folders are deleted only after every target is in place. If a step
    fails, the targets already installed go back to their staging folders and every old folder is
    renamed back, so the run folder is as it was. Between the two renames a target is briefly absent:
    an edge service watching its ``manifest.json`` sees no manifest and waits for the next one. A
    crash there leaves the old folder as ``.NAME-previous``; the next install of that target puts it
    back before going on.
    """
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
    for _, target in done:
        with suppress(OSError):  # one left behind is deleted by the next install
            _remove(_aside(target))


@contextmanager
def rebuilding(target: Path) -> Iterator[Path]:
    """Rebuild the folder ``target`` where it lives, keeping the old one until the new one is complete.

    For folders that cannot be built in staging (a student run folder records its own paths): the old
    folder is set aside (``.NAME-previous``) while the block builds ``target``; if the block fails, what
    it built is deleted and the old folder renamed back, and if it succeeds the old one is deleted. A
    crash inside the block leaves the old folder as ``.NAME-previous`` beside a partial ``target``.
    """
    _set_aside(target)
    try:
        yield target
    except BaseException:
        if target.exists() or target.is_symlink():
            _remove(target)
        _put_back(target)
        raise
    with suppress(OSError):  # one left behind is deleted by the next rebuild or install
        _remove(_aside(target))


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
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(row["label"])
    return LabelledTexts(tuple(texts), tuple(labels), source=str(path), checksum=checksum)


def save_split(layout: RunLayout, split: Split) -> None:
    """Store the split so adaptation, fine-tuning, compression and calibration all see the same data."""
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    _write_jsonl(layout.data_dir / "train.jsonl", split.train)
    _write_jsonl(layout.data_dir / "validation.jsonl", split.validation)
    write_text_atomic(layout.data_dir / "labels.json", json.dumps(list(split.labels), indent=1))


def load_saved_split(layout: RunLayout) -> Split:
    """Read the split a previous step stored."""
    labels_file = layout.data_dir / "labels.json"
    if not labels_file.is_file():
        raise DataError(f"{layout.root} has no stored data split: run `hybridroute finetune` or `train` first")
    checksum = str(layout.read_info().get("data", {}).get("checksum", ""))
    labels = tuple(json.loads(labels_file.read_text(encoding="utf-8")))
    train = _read_jsonl(layout.data_dir / "train.jsonl", checksum)
    validation = _read_jsonl(layout.data_dir / "validation.jsonl", checksum)
    return Split(train, validation, labels)
