"""Process set-up for serving: the startup heap leaves the garbage collector's view."""

from __future__ import annotations

import gc

from hybridroute.serving.uvicorn_runner import freeze_startup_heap


def test_objects_alive_at_startup_are_frozen_and_new_ones_are_not() -> None:
    loaded = [[i] for i in range(1000)]  # stands in for the model, tokenizer and app
    try:
        frozen = freeze_startup_heap()
        later = [0]
        assert frozen == gc.get_freeze_count() >= 1000
        tracked = gc.get_objects()
        assert not any(o is loaded for o in tracked)  # full passes no longer rescan it
        assert any(o is later for o in tracked)  # what serving allocates is still collected
    finally:
        gc.unfreeze()
