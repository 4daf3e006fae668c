"""Micro-batching: concurrent requests share one model call, so throughput grows with load.

Requests put their texts on an asyncio queue and wait on a future. One worker
task takes the first waiting request, then gathers more until the batch holds
``max_batch`` texts or ``max_wait_ms`` has passed, runs the model once on a
worker thread and hands each request its slice of the answers. While a batch
runs, new requests queue up and form the next one, so batches are larger
exactly when the service is busy.

``workers`` batches may run at once, each on its own thread. With one worker
the model should use every core (ONNX Runtime's intra-op threads); with one
worker per core and one intra-op thread each, every batch runs on the thread
that called it, which wastes less CPU on small batches than splitting each
one across cores (measured in ``bench load``).

A request's texts are never split across batches; one larger than
``max_batch`` runs alone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hybridroute.config import check_range
from hybridroute.errors import HybridError, InferenceError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BatcherClosed(HybridError):
    """The service is shutting down and accepts no new work (HTTP 503)."""


@dataclass
class _Job(Generic[T]):
    texts: Sequence[str]
    future: asyncio.Future[list[T]]
    queued_at: float = 0.0


@dataclass
class BatchStats:
    """What the batcher has done so far."""

    batches: int = 0
    texts: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list, repr=False)  # the most recent sizes, for tests and debugging

    def add(self, size: int, keep: int = 1000) -> None:
        """Count one batch of ``size`` texts."""
        self.batches += 1
        self.texts += size
        self.largest = max(self.largest, size)
        self.sizes.append(size)
        del self.sizes[:-keep]


def take_fitting(jobs: Sequence[_Job[T]], limit: int) -> int:
    """How many leading jobs fit in ``limit`` texts (at least one, however large).

    Example: jobs of 3, 2 and 4 texts, limit 5 -> 2
    """
    total, count = 0, 0
    for job in jobs:
        if count and total + len(job.texts) > limit:
            break
        total += len(job.texts)
        count += 1
    return count


class MicroBatcher(Generic[T]):
    """Gather concurrent requests into model batches.

    Args:
        classify: answers a list of texts with one result per text, in order; runs on a worker thread.
            Read any swappable model reference inside it, once per call, so a batch runs on one model.
        max_batch: most texts per model call.
        max_wait_ms: longest a request waits for company before its batch starts (counted from its arrival,
            so requests that queued behind a running batch do not wait again).
        on_batch: called (on the event loop) with each batch's size and model seconds, for metrics.
        clock: monotonic seconds.
        workers: batches that may run at once, each on its own thread; ``classify`` must be thread-safe
            when this is above 1.
    """

    def __init__(
        self,
        classify: Callable[[list[str]], Sequence[T]],
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        on_batch: Callable[[int, float], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        workers: int = 1,
    ) -> None:
        check_range("max_batch", max_batch, 1, 4096)
        check_range("max_wait_ms", max_wait_ms, 0.0, 1000.0)
        check_range("workers", workers, 1, 256)
        self.classify, self.max_batch, self.max_wait_s = classify, max_batch, max_wait_ms / 1000.0
        self.on_batch, self.clock = on_batch, clock
        self.stats = BatchStats()
        self._jobs: deque[_Job[T]] = deque()
        self._queued_texts = 0
        self._wakeup: asyncio.Event | None = None
        self.workers = workers
        self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="inference")
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------ API

    def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._worker is None:
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def submit(self, texts: Sequence[str]) -> list[T]:
        """Answer ``texts`` (one result each, in order) as part of a batch.

        Raises:
            BatcherClosed: the batcher is closing (or was never started).
            InferenceError: the model failed on the batch this request was in.
        """
        if self._closed or self._wakeup is None:
            raise BatcherClosed("the service is shutting down (or not started) and accepts no new requests")
        future: asyncio.Future[list[T]] = asyncio.get_running_loop().create_future()
        self._jobs.append(_Job(texts, future, self.clock()))
        self._queued_texts += len(texts)
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Refuse new work, answer everything already queued, then stop the worker and its thread."""
        if self._closed:
            return
        self._closed = True
        if self._wakeup is not None and self._worker is not None:
            self._wakeup.set()
            await self._worker
        self._executor.shutdown(wait=True)

    @property
    def pending(self) -> int:
        """Requests waiting for a batch."""
        return len(self._jobs)

    # ------------------------------------------------------------ steps

    async def _sleep_until_woken(self, timeout_s: float | None) -> None:
        """Wait for a submit or close (or ``timeout_s``); cheap: no task per wait, nothing to lose on timeout."""
        wakeup = self._wakeup
        if wakeup is None:
            raise BatcherClosed("the batcher was never started")
        wakeup.clear()
        handle = None if timeout_s is None else asyncio.get_running_loop().call_later(timeout_s, wakeup.set)
        await wakeup.wait()
        if handle is not None:
            handle.cancel()

    async def _gather(self) -> list[_Job[T]]:
        """Take the jobs for one batch, once it is full, the oldest job has waited long enough, or closing."""
        deadline = self._jobs[0].queued_at + self.max_wait_s
        while self._queued_texts < self.max_batch and not self._closed:
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            await self._sleep_until_woken(remaining)
        jobs = [self._jobs.popleft() for _ in range(take_fitting(self._jobs, self.max_batch))]
        self._queued_texts -= sum(len(job.texts) for job in jobs)
        return jobs

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.workers)
        running: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slots.release()

        while self._jobs or not self._closed:
            if not self._jobs:
                await self._sleep_until_woken(None)
                continue
            await slots.acquire()  # gather only once a worker is free: waiting requests make the batch larger
            task = asyncio.get_running_loop().create_task(self._run_batch(await self._gather()))
            running.add(task)
            task.add_done_callback(finished)
        if running:
            await asyncio.gather(*running)

    async def _run_batch(self, jobs: list[_Job[T]]) -> None:
        texts = [text for job in jobs for text in job.texts]
        started = self.clock()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._executor, self.classify, texts)
            if len(results) != len(texts):
                raise InferenceError(f"the model returned {len(results)} answers for {len(texts)} texts")
        except Exception as exc:  # every waiter of the batch gets the failure; the worker lives on
            error = exc if isinstance(exc, HybridError) else InferenceError(f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, HybridError):
                logger.exception("a batch of %d texts failed", len(texts))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.stats.add(len(texts))
        if self.on_batch:
            self.on_batch(len(texts), self.clock() - started)
        offset = 0
        for job in jobs:
            if not job.future.done():  # a cancelled request (client gone) just loses its answers
                job.future.set_result(list(results[offset : offset + len(job.texts)]))
            offset += len(job.texts)
