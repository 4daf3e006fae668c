"""Process set-up for serving: the startup heap leaves the garbage collector's view; a server that will not stop."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette

from hybridroute.errors import HybridError
from hybridroute.serving.uvicorn_runner import freeze_startup_heap, serve_in_thread


def test_objects_alive_at_startup_are_frozen_and_new_ones_are_not() -> None:
    loaded = [[i] for i in range(1000)]  # stands in for the model, tokenizer and app
    try:
        frozen = freeze_startup_heap()
        later = [0]
        assert frozen >= 1000
        # Frozen objects still die (another test's thread may free a few meanwhile): the count
        # can only fall until the next freeze, never grow.
        assert frozen - 100 <= gc.get_freeze_count() <= frozen
        tracked = gc.get_objects()
        assert not any(o is loaded for o in tracked)  # full passes no longer rescan it
        assert any(o is later for o in tracked)  # what serving allocates is still collected
    finally:
        gc.unfreeze()


def app_whose_shutdown_takes(seconds: float) -> Starlette:
    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await asyncio.sleep(seconds)

    return Starlette(lifespan=lifespan)


def test_a_server_that_does_not_stop_in_time_is_an_error_not_a_silent_leak() -> None:
    stuck = serve_in_thread(app_whose_shutdown_takes(3.0), graceful_shutdown_s=1, stop_margin_s=0.2)
    with pytest.raises(HybridError, match="still running 1.2 s after it was asked to stop"), stuck as url:
        assert httpx.get(f"{url}/nowhere").status_code == 404


def test_a_server_that_stops_in_time_exits_quietly() -> None:
    with serve_in_thread(app_whose_shutdown_takes(0.05), graceful_shutdown_s=1, stop_margin_s=0.5) as url:
        assert httpx.get(f"{url}/nowhere").status_code == 404
