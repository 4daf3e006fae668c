"""Saving a benchmark's result: one JSON format for every benchmark."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hybridroute.errors import ConfigError
from hybridroute.files import write_text_atomic


def write_json(result: Mapping[str, Any], path: Path) -> Path:
    """Write ``result`` as pretty, strict JSON with sorted keys (creating parent folders); return the path.

    Strict: a NaN or infinity in a result is a bug in the benchmark and fails here, not in the reader's parser.
    Paths and other objects are written as their text. An unwritable path is a ``ConfigError`` that names it.
    The file is replaced whole (:func:`write_text_atomic`): an interrupted benchmark leaves the earlier result.
    """
    path = Path(path)
    text = json.dumps(result, indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write the result to {path}: {exc}") from exc
    return path
