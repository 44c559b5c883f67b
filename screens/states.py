"""How states look: the terminal's own ANSI colours (its theme decides the
shades), never truecolor, so a build host's 16-colour tmux reads the same."""
from __future__ import annotations

from rich.style import Style
from rich.text import Text

_COLOURS = {
    "queued": "blue", "building": "cyan", "failed": "red", "failed-to-import": "bright_red",
    "cancelled": "bright_black", "built": "green", "held": "yellow", "withdrawn": "bright_black",
    "needsign": "magenta", "signed": "bright_magenta", "testing": "bright_cyan", "tested": "bright_green",
    "stable": "bright_green", "superseded": "bright_black",
}
_DONE = frozenset({"built", "failed", "failed-to-import", "cancelled"})


def style(state: str) -> Style:
    return Style(color=_COLOURS.get(state, "default"), bold=state in ("failed", "held", "needsign"))


def text(state: str, contested: bool = False) -> Text:
    shown = Text(state, style=style(state))
    if contested:
        shown.append(" contested", Style(color="red", bold=True, reverse=True))
    return shown


def task_mark(state: str) -> str:
    """One cell per arch task: done, running, waiting."""
    if state in _DONE:
        return "■" if state == "built" else "✗"
    return "◐" if state == "building" else "□"
