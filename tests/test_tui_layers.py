"""The cockpit's place in the layers: the screens call services and hold no
rules; the domain reaches the screens only from `sluice tui`, lazily."""
from __future__ import annotations

import ast

from tests.test_layers import ROOT, imports


def test_screens_reach_backends_only_through_their_protocols():
    for path in (ROOT / "screens").rglob("*.py"):
        used = {m for m in imports(path) if m.startswith("backends")}
        assert used <= {"backends.base"}, f"{path.relative_to(ROOT)} imports {used}"


def test_the_domain_opens_the_screens_only_from_the_tui_command_and_only_when_run():
    for path in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module} | \
            {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        assert not any(m.startswith("screens") for m in top), path
        if any(m.startswith("screens") for m in imports(path)):
            assert path == ROOT / "app" / "cli" / "tui_cmd.py", path


def test_screen_modules_stay_small():
    for path in (ROOT / "screens").rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines; split it"
