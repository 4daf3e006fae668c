"""EdgeService.stop: whatever fails first, queued requests are answered and audit records committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hybridroute.routing.cascade import HybridClassifier
from hybridroute.serving.edge_service import EdgeService
from hybridroute.serving.edge_settings import EdgeSettings


class BrokenWatcher:
    """A bundle watcher whose stop fails."""

    async def stop(self) -> None:
        raise RuntimeError("watcher bug")


def never_loads(settings: EdgeSettings) -> HybridClassifier:
    raise RuntimeError("no model in this test")


def test_stop_closes_the_batcher_and_the_audit_writer_even_if_the_watcher_fails(tmp_path: Path) -> None:
    async def scenario() -> EdgeService:
        settings = EdgeSettings(tmp_path, audit_db=str(tmp_path / "audit.sqlite"), hash_salt="salt", threads=1)
        service = EdgeService(settings, None, CollectorRegistry(), None, never_loads, lambda: "id")
        await service.start()
        service.watcher = BrokenWatcher()  # type: ignore[assignment]
        with pytest.raises(RuntimeError, match="watcher bug"):
            await service.stop()
        return service

    service = asyncio.run(scenario())
    assert service.batcher is not None and service.batcher._closed
    assert service.writer is not None and not service.writer._thread.is_alive()
