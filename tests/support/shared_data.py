"""The shared data sets beside the repository (../shared/data): present here and in CI, not on a user's machine."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared data {path} is absent (it exists beside the repository in CI, not on user machines)")
    return path
