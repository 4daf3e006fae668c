"""The routing package stays light: numpy, the standard library and hybridroute's core only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import hybridroute.routing

ROUTING_DIR = Path(hybridroute.routing.__file__).parent
ALLOWED_HYBRIDROUTE = (
    "hybridroute.config",
    "hybridroute.errors",
    "hybridroute.files",
    "hybridroute.types",
    "hybridroute.runtime",
    "hybridroute.routing",
    "hybridroute.redaction",  # pure Python (re, stdlib): redaction before escalation is part of the cascade
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_routing_imports_only_numpy_stdlib_and_core() -> None:
    for path in sorted(ROUTING_DIR.glob("*.py")):
        for name in imported_modules(path):
            root = name.split(".")[0]
            if root == "hybridroute":
                assert name.startswith(ALLOWED_HYBRIDROUTE), f"{path.name} imports {name}"
            else:
                assert root in sys.stdlib_module_names or root == "numpy", f"{path.name} imports {name}"


def test_importing_routing_loads_no_heavy_packages() -> None:
    heavy = ("torch", "transformers", "fastapi", "sklearn", "onnx")
    code = f"import sys, hybridroute.routing; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROUTING_DIR.parents[1])},
    )
    assert result.stdout.strip() == ""
