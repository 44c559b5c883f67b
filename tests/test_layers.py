"""The house rules the code's shape depends on (Harlequin-style layer tests)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_importing_the_domain_and_backends_does_not_load_textual():
    code = ("import importlib, pkgutil, sys\n"
            "import app, backends\n"
            "for pkg in (app, backends):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        importlib.import_module(m.name)\n"
            "print('textual' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_no_textual_import_under_app_or_backends():
    for path in list((ROOT / "app").rglob("*.py")) + list((ROOT / "backends").rglob("*.py")):
        assert not any(m == "textual" or m.startswith("textual.") for m in imports(path)), path


def test_the_domain_reaches_backends_only_through_their_protocols():
    """app/ imports backends.base only; the CLI's wiring may also use the factory."""
    for path in (ROOT / "app").rglob("*.py"):
        allowed = {"backends.base"} | ({"backends.factory"} if path.parent.name == "cli" else set())
        used = {m for m in imports(path) if m.startswith("backends")}
        assert used <= allowed, f"{path.relative_to(ROOT)} imports {used - allowed}"


def test_modules_stay_small():
    for path in list((ROOT / "app").rglob("*.py")) + list((ROOT / "backends").rglob("*.py")):
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines; split it"
