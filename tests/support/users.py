"""Running test code as a user whom file permissions apply to (the tests may run as root)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Python lines for a child process (after ``import os`` and whatever else it needs): as root, become "nobody".
BECOME_ANOTHER_USER = """
if os.geteuid() == 0:  # root writes anything: become a user the permissions apply to (what is needed is imported)
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
"""


@contextmanager
def folder_anyone_may_enter() -> Iterator[Path]:
    """A temporary folder any user may enter (pytest's own are private to their owner), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="hybridroute-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)
