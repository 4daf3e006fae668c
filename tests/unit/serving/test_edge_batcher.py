"""The micro-batcher with a fake classifier: batching under load, waiting, failures and draining."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from hybridroute.errors import ConfigError, InferenceError
from hybridroute.serving.batcher import BatcherClosed, MicroBatcher, _Job, take_fitting


@dataclass
class FakeModel:
    """Echoes texts upper-cased; records each batch; optionally slow or failing."""

    delay_s: float = 0.0
    fail_on: str | None = None
    batches: list[list[str]] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def __call__(self, texts: list[str]) -> list[str]:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("model exploded")
        return [t.upper() for t in texts]


async def _with_batcher(model: FakeModel, coro_factory, **kwargs):  # type: ignore[no-untyped-def]
    batcher: MicroBatcher[str] = MicroBatcher(model, **kwargs)
    batcher.start()
    try:
        return await coro_factory(batcher)
    finally:
        await batcher.close()


def test_take_fitting_keeps_whole_requests_and_takes_at_least_one() -> None:
    loop = asyncio.new_event_loop()
    try:
        jobs = [_Job(["a"] * n, loop.create_future()) for n in (3, 2, 4)]
        assert take_fitting(jobs, 5) == 2
        assert take_fitting(jobs, 100) == 3
        assert take_fitting(jobs[2:], 1) == 1  # larger than the limit: runs alone
    finally:
        loop.close()


def test_concurrent_requests_share_batches_and_get_their_own_answers() -> None:
    model = FakeModel(delay_s=0.01)

    async def scenario(batcher: MicroBatcher[str]) -> list[list[str]]:
        return await asyncio.gather(*(batcher.submit([f"t{i}", f"u{i}"]) for i in range(40)))

    results = asyncio.run(_with_batcher(model, scenario, max_batch=16, max_wait_ms=5.0))
    assert results == [[f"T{i}", f"U{i}"] for i in range(40)]
    assert max(len(b) for b in model.batches) == 16  # full batches under load
    assert all(len(b) <= 16 for b in model.batches)
    assert len(model.batches) < 40
    assert len(model.threads) == 1  # one inference at a time, on one worker thread


def test_a_lone_request_waits_at_most_max_wait() -> None:
    model = FakeModel()

    async def scenario(batcher: MicroBatcher[str]) -> float:
        started = time.perf_counter()
        assert await batcher.submit(["x"]) == ["X"]
        return time.perf_counter() - started

    elapsed = asyncio.run(_with_batcher(model, scenario, max_batch=8, max_wait_ms=30.0))
    assert 0.025 <= elapsed < 0.5  # waited for company about max_wait, then ran alone
    assert model.batches == [["x"]]


def test_a_full_batch_does_not_wait() -> None:
    model = FakeModel()

    async def scenario(batcher: MicroBatcher[str]) -> float:
        started = time.perf_counter()
        await batcher.submit(["a", "b", "c", "d"])
        return time.perf_counter() - started

    elapsed = asyncio.run(_with_batcher(model, scenario, max_batch=4, max_wait_ms=500.0))
    assert elapsed < 0.3


def test_a_request_larger_than_max_batch_runs_alone_unsplit() -> None:
    model = FakeModel(delay_s=0.01)

    async def scenario(batcher: MicroBatcher[str]) -> list[list[str]]:
        return await asyncio.gather(batcher.submit(["a"]), batcher.submit(list("bcdef")), batcher.submit(["g"]))

    results = asyncio.run(_with_batcher(model, scenario, max_batch=3, max_wait_ms=5.0))
    assert results == [["A"], list("BCDEF"), ["G"]]
    assert list("bcdef") in model.batches


def test_a_failure_reaches_every_request_of_the_batch_and_the_worker_lives_on() -> None:
    model = FakeModel(delay_s=0.02, fail_on="boom")

    async def scenario(batcher: MicroBatcher[str]) -> tuple[list[object], list[str]]:
        outcomes = await asyncio.gather(
            batcher.submit(["ok1"]), batcher.submit(["boom"]), batcher.submit(["ok2"]), return_exceptions=True
        )
        return outcomes, await batcher.submit(["after"])

    outcomes, after = asyncio.run(_with_batcher(model, scenario, max_batch=8, max_wait_ms=20.0))
    assert all(isinstance(o, InferenceError) for o in outcomes)
    assert "model exploded" in str(outcomes[0])
    assert after == ["AFTER"]


def test_a_wrong_answer_count_is_an_inference_error() -> None:
    async def scenario(batcher: MicroBatcher[str]) -> None:
        with pytest.raises(InferenceError, match="1 answers for 2 texts"):
            await batcher.submit(["a", "b"])

    asyncio.run(_with_batcher(lambda texts: ["one"], scenario))  # type: ignore[arg-type]


def test_close_answers_everything_queued_then_refuses_new_work() -> None:
    model = FakeModel(delay_s=0.02)

    async def scenario() -> None:
        batcher: MicroBatcher[str] = MicroBatcher(model, max_batch=2, max_wait_ms=1.0)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([f"t{i}"])) for i in range(7)]
        await asyncio.sleep(0)  # let them queue
        await batcher.close()
        assert [p.result() for p in pending] == [[f"T{i}"] for i in range(7)]
        with pytest.raises(BatcherClosed):
            await batcher.submit(["late"])

    asyncio.run(scenario())


def test_submit_before_start_is_refused_and_settings_are_checked() -> None:
    async def scenario() -> None:
        batcher: MicroBatcher[str] = MicroBatcher(FakeModel())
        with pytest.raises(BatcherClosed):
            await batcher.submit(["x"])

    asyncio.run(scenario())
    with pytest.raises(ConfigError, match="max_batch"):
        MicroBatcher(FakeModel(), max_batch=0)


def test_on_batch_reports_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    model = FakeModel(delay_s=0.01)

    async def scenario(batcher: MicroBatcher[str]) -> Sequence[object]:
        return await asyncio.gather(*(batcher.submit([str(i)]) for i in range(10)))

    asyncio.run(_with_batcher(model, scenario, max_batch=4, max_wait_ms=5.0, on_batch=lambda n, s: seen.append(n)))
    assert sum(seen) == 10 and max(seen) == 4


def test_two_workers_run_two_batches_at_once_on_two_threads() -> None:
    def timed(workers: int) -> tuple[float, FakeModel]:
        model = FakeModel(delay_s=0.2)

        async def scenario(batcher: MicroBatcher[str]) -> float:
            started = time.perf_counter()
            answers = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
            assert sorted(answers) == [["A"], ["B"]]
            return time.perf_counter() - started

        return asyncio.run(_with_batcher(model, scenario, max_batch=1, max_wait_ms=0.0, workers=workers)), model

    serial, one = timed(1)
    parallel, two = timed(2)
    assert serial >= 0.4 and len(one.threads) == 1
    assert parallel < 0.35 and len(two.threads) == 2


def test_close_waits_for_every_running_batch() -> None:
    model = FakeModel(delay_s=0.1)

    async def scenario() -> list[list[str]]:
        batcher: MicroBatcher[str] = MicroBatcher(model, max_batch=1, max_wait_ms=0.0, workers=3)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([t])) for t in "xyz"]
        await asyncio.sleep(0.02)  # all three running
        await batcher.close()
        assert all(p.done() for p in pending)
        return [p.result() for p in pending]

    assert asyncio.run(scenario()) == [["X"], ["Y"], ["Z"]]


def test_workers_are_checked() -> None:
    with pytest.raises(ConfigError, match="workers"):
        MicroBatcher(FakeModel(), workers=0)


def test_a_cancelled_request_does_not_shift_the_answers_of_its_batch_mates() -> None:
    model = FakeModel(delay_s=0.2)

    async def scenario(batcher: MicroBatcher[str]) -> list[str]:
        first = asyncio.ensure_future(batcher.submit(["a", "b"]))
        second = asyncio.ensure_future(batcher.submit(["c"]))
        await asyncio.sleep(0.1)  # both inside the running batch
        first.cancel()
        return await second

    assert asyncio.run(_with_batcher(model, scenario, max_batch=8, max_wait_ms=50)) == ["C"]
    assert model.batches == [["a", "b", "c"]]


def test_a_request_queued_behind_a_running_batch_waits_from_its_arrival_not_again() -> None:
    model = FakeModel(delay_s=0.3)
    started: list[float] = []

    def timed(texts: list[str]) -> list[str]:
        started.append(time.perf_counter())
        return model(texts)

    async def scenario(batcher: MicroBatcher[str]) -> None:
        first = asyncio.ensure_future(batcher.submit(["x"]))
        await asyncio.sleep(0.25)  # the first batch starts at ~0.2 s and runs 0.3 s
        await asyncio.gather(first, batcher.submit(["y"]))

    t0 = time.perf_counter()
    asyncio.run(_with_batcher(timed, scenario, max_batch=64, max_wait_ms=200))  # type: ignore[arg-type]
    # "y" arrived at 0.25 s with its deadline at 0.45 s; the first batch ends at ~0.5 s, so "y" runs at once
    # (waiting again from the batch's end would start it at ~0.7 s)
    assert started[1] - t0 < 0.62, started


def test_the_batcher_still_gathers_company_after_many_lone_batches() -> None:
    model = FakeModel()

    async def scenario(batcher: MicroBatcher[str]) -> None:
        for i in range(6):  # six lone requests: six batches of one, each after its whole wait
            await batcher.submit([f"lone{i}"])
        first = asyncio.ensure_future(batcher.submit(["p"]))
        await asyncio.sleep(0.02)
        await asyncio.gather(first, batcher.submit(["q"]))

    asyncio.run(_with_batcher(model, scenario, max_batch=4, max_wait_ms=150))
    assert model.batches[-1] == ["p", "q"], model.batches
