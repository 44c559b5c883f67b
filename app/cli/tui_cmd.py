"""`sluice tui` (and `sluice` with no command on a terminal): the cockpit.

The Textual screens live in `screens/`, imported only here and only when the
cockpit opens, so that no other command pays for Textual and nothing under
`app/` depends on it.
"""
from __future__ import annotations

import argparse
import sys

from app.cli.context import Context
from app.errors import UsageError


def register(commands, common) -> None:
    p = commands.add_parser("tui", parents=[common], help="the terminal UI (also `sluice` on a terminal)")
    p.set_defaults(handler=tui)


def on_terminal() -> bool:
    """Whether `sluice` with no command should open the cockpit: only when a
    person is there to see it. Scripts, pipes and tests get the summary."""
    return sys.stdout.isatty() and sys.stdin.isatty()


def tui(ctx: Context, args: argparse.Namespace) -> int:
    if not on_terminal():
        raise UsageError("the terminal UI needs a terminal", "run it in one, or use `sluice list` in scripts")
    from screens.app import run
    from screens.services import Services
    notes: list[str] = []
    ctx.note = notes.append  # warnings become notifications instead of stderr under the screen
    return run(Services.from_context(ctx, notes))
