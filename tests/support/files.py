"""A write "cut off midway", for tests of files that must be replaced whole.

The child process's file-size limit (``RLIMIT_FSIZE``) stops a write after a few bytes with ``EFBIG`` (errno 27):
the state a crash or a full disk leaves, without guessing how the code under test writes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

EFBIG = "27"  # what a child prints (``print(exc.errno)``) when its write was really cut off


def run_with_file_size_limit(setup: str, code: str, limit: int = 64) -> subprocess.CompletedProcess[str]:
    """Run ``setup`` then, with files capped at ``limit`` bytes (a longer write fails: EFBIG), ``code`` in a child.

    Example: run_with_file_size_limit("from pathlib import Path", "Path('x').write_text('y' * 100)").returncode -> 1
    """
    cap = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
"""
    script = textwrap.dedent(setup) + cap + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
