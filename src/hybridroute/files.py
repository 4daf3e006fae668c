"""Files replaced whole: readers see the old content or the new, never part of it."""

from __future__ import annotations

import os
import secrets
from contextlib import suppress
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it and one rename; returns ``path``.

    Readers see the old content or the new, never part of it, and a crash leaves at most a stray
    ``.NAME.*.tmp`` file. The file gets the usual permissions (umask), as ``Path.write_text`` gives.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temp.open("x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the rename makes it the file
        os.replace(temp, path)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    return path
