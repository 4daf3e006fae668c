"""JSON config files for tests of the commands that read them (``--thresholds``, ``--prices``, ``--config``)."""

from __future__ import annotations

import json
from pathlib import Path


def write_json_file(path: Path, values: object) -> Path:
    """``values`` as JSON in ``path``; returns the path."""
    path.write_text(json.dumps(values), encoding="utf-8")
    return path
