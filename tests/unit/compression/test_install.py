"""Installing a bundle folder: the old one is set aside, never lost, and what a watching edge service sees.

The bundles are tiny hand-made ONNX graphs (no torch), so every state can be loaded with ``EdgeClassifier.from_dir``;
builds that run at the same time, or are killed, are real processes writing marker files.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hybridroute.runs import RunLayout, install_folders, staging_folder
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.reload import BundleWatcher, manifest_stamp
from support.bundles import make_bundle


def temperature_of(bundle: Path) -> float:
    """Load the bundle as the runtime does (manifest, checksums, session) and say which one it is."""
    classifier = EdgeClassifier.from_dir(bundle, threads=1)
    classifier.predict(["where is my order"])
    assert classifier.manifest is not None
    return classifier.manifest.temperature


OLD, NEW = 1.0, 2.0


@pytest.fixture
def edge(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "run" / "edge", temperature=OLD)


def _new_staging(target: Path) -> Path:
    return make_bundle(target.with_name(f".{target.name}-staging"), temperature=NEW)


def _failing_rename(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    """Make renaming ``source`` (and only it) fail, as a full disk or a permission would."""
    real = Path.rename

    def rename(self: Path, target: str | Path) -> Path:
        if self == source:
            raise OSError(f"simulated failure renaming {self}")
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)


def test_an_install_leaves_exactly_the_new_bundle(edge: Path) -> None:
    install_folders((_new_staging(edge), edge))
    assert temperature_of(edge) == NEW
    assert sorted(p.name for p in edge.parent.iterdir()) == ["edge"]


def test_an_install_into_an_empty_place_works(tmp_path: Path) -> None:
    target = tmp_path / "run" / "edge"
    install_folders((_new_staging(target), target))
    assert temperature_of(target) == NEW and sorted(p.name for p in target.parent.iterdir()) == ["edge"]


def test_a_failure_renaming_the_new_bundle_in_puts_the_old_one_back(
    edge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = _new_staging(edge)
    _failing_rename(monkeypatch, staging)
    with pytest.raises(OSError, match="simulated failure"):
        install_folders((staging, edge))
    assert temperature_of(edge) == OLD
    assert not (edge.parent / ".edge-aside").exists()


def test_a_failure_setting_the_old_bundle_aside_changes_nothing(edge: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    staging = _new_staging(edge)
    _failing_rename(monkeypatch, edge)
    with pytest.raises(OSError, match="simulated failure"):
        install_folders((staging, edge))
    assert temperature_of(edge) == OLD and temperature_of(staging) == NEW


def test_a_crash_between_the_renames_is_repaired_by_the_next_install(
    edge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge.rename(edge.parent / ".edge-aside")  # the process died here: no RUN/edge, the old bundle aside
    staging = _new_staging(edge)
    _failing_rename(monkeypatch, staging)  # and the next install fails too
    with pytest.raises(OSError, match="simulated failure"):
        install_folders((staging, edge))
    assert temperature_of(edge) == OLD  # the old bundle is back in place
    monkeypatch.undo()
    install_folders((staging, edge))
    assert temperature_of(edge) == NEW and sorted(p.name for p in edge.parent.iterdir()) == ["edge"]


def test_an_old_bundle_left_aside_after_an_install_is_removed_by_the_next(
    edge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "rmtree", lambda *args, **kwargs: None)  # the final delete did not happen
    install_folders((_new_staging(edge), edge))
    assert (edge.parent / ".edge-discarded").is_dir() and temperature_of(edge) == NEW  # marked as the old one
    monkeypatch.undo()
    install_folders((make_bundle(edge.with_name(".edge-staging"), temperature=3.0), edge))
    assert temperature_of(edge) == 3.0 and sorted(p.name for p in edge.parent.iterdir()) == ["edge"]


def test_a_bundle_linked_from_elsewhere_is_unlinked_not_deleted(tmp_path: Path) -> None:
    kept = make_bundle(tmp_path / "models" / "v1", temperature=OLD)
    edge = tmp_path / "run" / "edge"
    edge.parent.mkdir()
    edge.symlink_to(kept, target_is_directory=True)
    for temperature in (NEW, 3.0):
        install_folders((make_bundle(edge.with_name(".edge-staging"), temperature=temperature), edge))
        assert temperature_of(edge) == temperature and sorted(p.name for p in edge.parent.iterdir()) == ["edge"]
    assert temperature_of(kept) == OLD


def test_two_folders_install_together_or_not_at_all(edge: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fp32 = make_bundle(edge.with_name("onnx_fp32"), temperature=OLD)
    fp32_staging, edge_staging = _new_staging(fp32), _new_staging(edge)
    _failing_rename(monkeypatch, edge_staging)  # the FP32 bundle is already in place when the edge one fails
    with pytest.raises(OSError, match="simulated failure"):
        install_folders((fp32_staging, fp32), (edge_staging, edge))
    assert temperature_of(fp32) == OLD and temperature_of(edge) == OLD
    assert sorted(p.name for p in edge.parent.iterdir()) == [".edge-staging", ".onnx_fp32-staging", "edge", "onnx_fp32"]
    monkeypatch.undo()
    install_folders((fp32_staging, fp32), (edge_staging, edge))
    assert temperature_of(fp32) == NEW and temperature_of(edge) == NEW
    assert sorted(p.name for p in edge.parent.iterdir()) == ["edge", "onnx_fp32"]


def test_a_staging_folder_is_fresh_and_gone_after_a_failure(edge: Path) -> None:
    with staging_folder(edge) as first:
        (first / "model.onnx").write_text("first")
        with pytest.raises(RuntimeError), staging_folder(edge) as staging:
            assert list(staging.iterdir()) == [] and staging != first  # each build has its own
            raise RuntimeError("a gate failed")
        assert not staging.exists() and (first / "model.onnx").read_text() == "first"
    assert not first.exists() and temperature_of(edge) == OLD
    assert sorted(p.name for p in edge.parent.iterdir()) == ["edge"]  # no staging folder or lock left


BUILD = """
import sys
from pathlib import Path
from hybridroute.runs import install_folders, staging_folder
edge, tag, files, ending = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4]
with staging_folder(edge) as staging:
    for name in files:
        (staging / name).write_text(tag)
    print("staged", flush=True)
    sys.stdin.readline()  # until the test says how the build ends
    if ending == "fails":
        raise SystemExit("the accuracy gate failed")
    install_folders((staging, edge))
"""
BUNDLE = ("model.onnx", "tokenizer.json", "manifest.json")


def start_build(edge: Path, tag: str, files: tuple[str, ...], ending: str) -> subprocess.Popen[str]:
    """A process that stages ``files`` for ``edge`` and waits; a line on its stdin lets it install or fail."""
    child = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(edge), tag, ",".join(files), ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "staged"
    return child


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def test_two_builds_of_one_bundle_at_once_each_install_only_their_own(tmp_path: Path) -> None:
    """``compress`` and ``select`` (or two compresses) staging RUN/edge at once: the one that fails changes nothing."""
    edge = tmp_path / "run" / "edge"
    edge.mkdir(parents=True)
    for name in BUNDLE:
        (edge / name).write_text("old")
    complete = start_build(edge, "A", BUNDLE, "installs")
    partial = start_build(edge, "B", BUNDLE[:1], "fails")  # still exporting when the first installs
    assert complete.communicate("go\n", timeout=60)[0] == "" and complete.returncode == 0
    assert contents(edge) == dict.fromkeys(BUNDLE, "A")
    assert "the accuracy gate failed" in partial.communicate("go\n", timeout=60)[1] and partial.returncode == 1
    assert contents(edge) == dict.fromkeys(BUNDLE, "A") and [p.name for p in edge.parent.iterdir()] == ["edge"]


def test_opening_the_run_deletes_the_staging_of_a_killed_build_and_keeps_a_running_ones(tmp_path: Path) -> None:
    run = tmp_path / "run"
    edge = run / "edge"
    edge.mkdir(parents=True)
    (edge / "model.onnx").write_text("old")
    (run / ".edge-staging" / "model.onnx").parent.mkdir()  # an earlier version's, left by a crash
    (run / ".edge-staging" / "model.onnx").write_text("stale")
    killed = start_build(edge, "killed", BUNDLE, "installs")
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    running = start_build(edge, "running", BUNDLE, "installs")
    try:
        RunLayout.open(run)
        staged = [p for p in run.iterdir() if p.name.startswith(".edge-staging-") and p.is_dir()]
        assert [contents(p / ".edge-staging") for p in staged] == [dict.fromkeys(BUNDLE, "running")]
        assert contents(edge) == {"model.onnx": "old"}
    finally:
        running.communicate("go\n", timeout=60)
    assert running.returncode == 0 and contents(edge) == dict.fromkeys(BUNDLE, "running")
    assert sorted(p.name for p in run.iterdir()) == ["edge"]  # the killed build's staging folder and lock went too


def test_a_watching_service_waits_through_the_swap_and_reloads_once(
    edge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reloads: list[float] = []

    async def reload() -> None:
        reloads.append(temperature_of(edge))

    async def scenario() -> list[bool]:
        watcher = BundleWatcher(edge, reload, seen=manifest_stamp(edge))
        edge.rename(edge.parent / ".edge-aside")  # the moment between the renames: no manifest at all
        outcomes = [await watcher.check_once()]
        staging = _new_staging(edge)
        _failing_rename(monkeypatch, staging)
        with pytest.raises(OSError):
            install_folders((staging, edge))  # puts the old bundle back: the same manifest, no reload
        outcomes.append(await watcher.check_once())
        monkeypatch.undo()
        install_folders((staging, edge))
        return [*outcomes, await watcher.check_once(), await watcher.check_once()]

    assert asyncio.run(scenario()) == [False, False, True, False]
    assert reloads == [NEW]
