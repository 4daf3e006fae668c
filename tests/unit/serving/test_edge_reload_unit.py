"""Hot-reload pieces without a server: one model per batch, one reload at a time, the watcher's trigger."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from hybridroute.routing.cascade import HybridClassifier
from hybridroute.routing.policies import AlwaysEdge
from hybridroute.runtime.classifier import EdgeClassifier
from hybridroute.serving.cloud_app import ModelNotReady
from hybridroute.serving.edge_schemas import Conflict, InvalidBundle
from hybridroute.serving.edge_service import make_batch_classifier
from hybridroute.serving.reload import BundleWatcher, ModelHolder, load_verified_edge, reload_edge


class SwappingEdge:
    """An edge that swaps the holder's model while it runs, as a concurrent reload would."""

    labels = ("a", "b")

    def __init__(self, version: str, holder: ModelHolder | None = None, replacement: object = None) -> None:
        self.model_version, self.holder, self.replacement = version, holder, replacement

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.holder is not None:
            self.holder.set(self.replacement)  # type: ignore[arg-type]
        return np.tile([0.9, 0.1], (len(texts), 1))


def test_a_batch_finishes_on_the_model_it_started_with() -> None:
    holder = ModelHolder()
    new = HybridClassifier(SwappingEdge("v2"), AlwaysEdge())  # type: ignore[arg-type]
    holder.set(HybridClassifier(SwappingEdge("v1", holder, new), AlwaysEdge()))  # type: ignore[arg-type]
    classify = make_batch_classifier(holder)
    first = classify(["x", "y"])
    assert {a.edge_model_version for a in first} == {"v1"} and {a.answer.model_version for a in first} == {"v1"}
    assert {a.edge_model_version for a in classify(["z"])} == {"v2"}  # the next batch runs on the new one


def test_no_model_means_not_ready() -> None:
    with pytest.raises(ModelNotReady):
        make_batch_classifier(ModelHolder())(["x"])


def test_only_one_reload_at_a_time_and_none_before_a_model(tmp_path: Path) -> None:
    holder = ModelHolder()
    with pytest.raises(Conflict, match="no model"):
        reload_edge(holder, tmp_path)
    assert holder.try_begin_reload()
    try:
        with pytest.raises(Conflict, match="another reload"):
            reload_edge(holder, tmp_path)
    finally:
        holder.end_reload()


def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle, match="does not exist"):
        load_verified_edge(tmp_path / "missing", ("a", "b"))
    with pytest.raises(InvalidBundle, match="manifest.json is missing"):
        load_verified_edge(tmp_path, ("a", "b"))


@pytest.mark.parametrize("name", ["a" * 5000, "nul\x00byte", "../" * 2000])
def test_a_path_the_os_refuses_is_an_invalid_bundle_not_a_crash(name: str) -> None:
    with pytest.raises(InvalidBundle, match="does not exist"):  # os.stat raised "File name too long" here once
        load_verified_edge(Path(name), ("a", "b"))


def test_the_watcher_reloads_once_per_manifest_change(tmp_path: Path) -> None:
    calls: list[float] = []

    async def reload() -> None:
        calls.append(time.monotonic())

    async def scenario() -> list[bool]:
        watcher = BundleWatcher(tmp_path, reload)
        outcomes = [await watcher.check_once()]  # no manifest yet
        (tmp_path / "manifest.json").write_text("{}")
        outcomes += [await watcher.check_once(), await watcher.check_once()]
        (tmp_path / "manifest.json").write_text('{"changed": true}')
        outcomes.append(await watcher.check_once())
        return outcomes

    assert asyncio.run(scenario()) == [False, True, False, True]
    assert len(calls) == 2


def test_the_watcher_retries_a_change_that_met_another_reload(tmp_path: Path) -> None:
    holder = ModelHolder(HybridClassifier(SwappingEdge("v1"), AlwaysEdge()))  # type: ignore[arg-type]
    attempts: list[str] = []

    async def reload() -> None:
        attempts.append("tried")
        await asyncio.to_thread(reload_edge, holder, tmp_path)

    async def scenario() -> list[bool]:
        (tmp_path / "manifest.json").write_text("{}")
        watcher = BundleWatcher(tmp_path, reload)
        (tmp_path / "manifest.json").write_text('{"new": "bundle"}')
        assert holder.try_begin_reload()  # an admin reload holds the slot
        try:
            outcomes = [await watcher.check_once()]  # ReloadBusy: the change stays unseen
        finally:
            holder.end_reload()
        outcomes += [await watcher.check_once(), await watcher.check_once()]  # tried (refused: not a bundle), then seen
        return outcomes

    assert asyncio.run(scenario()) == [True, True, False]
    assert len(attempts) == 2


def test_a_watcher_with_no_manifest_seen_reloads_the_one_there(tmp_path: Path) -> None:
    calls: list[str] = []

    async def reload() -> None:
        calls.append("tried")

    async def scenario() -> list[bool]:
        (tmp_path / "manifest.json").write_text("{}")
        watcher = BundleWatcher(tmp_path, reload, seen=None)  # the served model is not this manifest's
        return [await watcher.check_once(), await watcher.check_once()]

    assert asyncio.run(scenario()) == [True, False] and calls == ["tried"]


@pytest.mark.parametrize("refused", [False, True])
def test_the_watcher_reloads_again_for_a_change_made_during_a_reload(tmp_path: Path, refused: bool) -> None:
    manifest = tmp_path / "manifest.json"
    calls: list[str] = []

    async def reload() -> None:
        calls.append(manifest.read_text())
        if len(calls) == 1:
            manifest.write_text('{"deployed": "during the reload"}')  # another size: a new stamp whatever the clock
        if refused:
            raise InvalidBundle("not a bundle")

    async def scenario() -> list[bool]:
        manifest.write_text("{}")
        watcher = BundleWatcher(tmp_path, reload, seen=None)
        return [await watcher.check_once(), await watcher.check_once(), await watcher.check_once()]

    assert asyncio.run(scenario()) == [True, True, False]
    assert calls == ["{}", '{"deployed": "during the reload"}']


def test_a_bundle_the_loader_breaks_on_is_refused_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def overflow(bundle: Path, threads: int = 0) -> None:
        raise OverflowError("int too big to convert")  # what a manifest "max_length": 1e30 did to the tokenizer

    monkeypatch.setattr(EdgeClassifier, "from_dir", overflow)
    with pytest.raises(InvalidBundle, match="refused, the old model keeps serving: OverflowError: int too big"):
        load_verified_edge(tmp_path, ("a", "b"))


def test_a_reload_that_fails_unexpectedly_neither_stops_the_watcher_nor_its_stop(tmp_path: Path) -> None:
    calls: list[str] = []

    async def reload() -> None:
        calls.append("tried")
        if len(calls) == 1:
            raise RuntimeError("a bug in the reload")

    async def scenario() -> list[bool]:
        manifest = tmp_path / "manifest.json"
        manifest.write_text("{}")
        watcher = BundleWatcher(tmp_path, reload, interval_s=0.01, seen=None)
        watcher.start()
        await asyncio.sleep(0.1)  # the first reload failed; the watcher polls on
        manifest.write_text('{"next": "bundle"}')
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await watcher.stop()
        return [await watcher.check_once()]

    assert asyncio.run(scenario()) == [False]
    assert calls == ["tried", "tried"]


def test_stopping_a_watcher_whose_task_failed_does_not_raise(tmp_path: Path) -> None:
    async def scenario() -> None:
        watcher = BundleWatcher(tmp_path, lambda: asyncio.sleep(0))

        async def broken() -> None:
            raise RuntimeError("watcher bug")

        watcher._task = asyncio.get_running_loop().create_task(broken())
        await asyncio.sleep(0)
        await watcher.stop()

    asyncio.run(scenario())
