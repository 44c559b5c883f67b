"""The state ref's git log, as `sluice history` reads it: each commit's first
line and trailers, filterable by build, actor and op; enter shows a commit.

The walk is `app.audit.history` (the same generator the CLI prints), run in a
worker and cut at `LIMIT` commits so a queue with half a million commits
still opens at once; narrow it with the filter to reach older ones.
"""
from __future__ import annotations

import itertools
import time
from typing import Sequence

from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from app import audit
from app.audit import Entry
from app.errors import SluiceError
from screens.table import VirtualTable, cell
from screens.workers import ReportsWorkerErrors

LIMIT = 5000
DIM = Style(dim=True)


def parse(text: str) -> tuple[dict[str, str], list[str]]:
    """`build:3f9a actor:bob@x op:hold words` -> the CLI's filters and the other words."""
    filters, words = {}, []
    for word in text.split():
        key, sep, value = word.partition(":")
        if sep and key in ("build", "actor", "op") and value:
            filters[key] = value
        else:
            words.append(word.lower())
    return filters, words


class HistoryList(VirtualTable[Entry]):
    @staticmethod
    def _author_width(width: int) -> int:
        return 24 if width >= 120 else 10

    def header(self, width: int) -> list[Segment]:
        return [Segment(f"{cell('COMMIT', 10)} {cell('WHEN', 16)} {cell('AUTHOR', self._author_width(width))} "
                        "TITLE")]

    def line(self, row: Entry, width: int) -> list[Segment]:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.time))
        author = row.author if width >= 120 else row.author.split("@")[0]
        return [Segment(cell(row.commit[:10], 10) + " ", DIM), Segment(cell(when, 16) + " ", DIM),
                Segment(cell(author, self._author_width(width)) + " "), Segment(row.title)]

    def empty(self) -> str:
        return "no commits match"


class HistoryScreen(ReportsWorkerErrors, Screen):
    SCOPE = "history"
    NAME = "history"

    def __init__(self, build: str | None = None) -> None:
        super().__init__()
        self.initial = f"build:{build[:10]}" if build else ""

    def compose(self) -> ComposeResult:
        yield Static("sluice  history", id="title", classes="title")
        yield Input(value=self.initial, placeholder="filter: build:ID actor:EMAIL op:OP words",
                    id="filter", classes="" if self.initial else "hidden")
        yield HistoryList(id="history")
        yield Footer()

    def on_mount(self) -> None:
        keys = self.app.services.keys
        self.app.bind_keys(self, keys.of("history_filter"), "filter", "filter", True)
        self.app.bind_keys(self, keys.of("back"), "back", "back", True)
        if keys.of("history_open") != "enter":  # enter is the list's own
            self.app.bind_keys(self, keys.of("history_open"), "open", "show", False)
        self.set_focus(self.query_one(HistoryList))
        self.load(self.initial)

    def load(self, text: str) -> None:
        self.query_one("#title", Static).update("sluice  history  reading the log…")
        self._load(text)

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def _load(self, text: str) -> None:
        filters, words = parse(text)
        s = self.app.services
        try:
            with s.lock:
                build = filters.get("build")
                entries = audit.history(s.store, build, filters.get("actor"), filters.get("op"))
                if words:
                    entries = (e for e in entries if all(w in e.title.lower() for w in words))
                found, me = [], get_current_worker()
                for entry in itertools.islice(entries, LIMIT):
                    if me.is_cancelled:  # a newer keystroke wants the lock: stop walking history
                        return
                    found.append(entry)
        except SluiceError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.app.call_from_thread(self._show, found, text)

    def _show(self, entries: Sequence[Entry], text: str) -> None:
        self.query_one(HistoryList).set_rows(entries, 0)
        more = f" (the newest {LIMIT})" if len(entries) >= LIMIT else ""
        shown = f"sluice  history  {len(entries):,} commits{more}"
        if text.strip():
            shown += f"  filter: {text.strip()}"
        self.query_one("#title", Static).update(shown)

    def action_open(self) -> None:
        self.query_one(HistoryList).action_choose()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        self.set_focus(box)  # at once: keys typed right after "/" must land in the box

    def on_input_changed(self, event: Input.Changed) -> None:
        self.load(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.set_focus(self.query_one(HistoryList))

    def on_virtual_table_chosen(self, message: VirtualTable.Chosen) -> None:
        self.app.push_screen(CommitScreen(message.row))

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_focus and not box.has_class("hidden"):
            self.set_focus(self.query_one(HistoryList))
            return
        self.app.pop_screen()


class CommitScreen(Screen):
    """One commit of the state ref: the whole message and its trailers."""

    SCOPE = "history"
    NAME = "commit"
    BINDINGS = [Binding("escape,q", "back", "back")]

    def __init__(self, entry: Entry) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        e = self.entry
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(e.time))
        lines = [f"[bold]commit[/] {e.commit}", f"[bold]author[/] {escape(e.author)}",
                 f"[bold]committer[/] {escape(e.committer)}", f"[bold]date[/] {when}", "",
                 f"[bold]{escape(e.title)}[/]"]
        if e.reason:
            lines += ["", escape(e.reason)]
        lines.append("")
        lines += [f"[dim]Sluice-{escape(k)}:[/] {escape(v)}" for k, v in e.trailers]
        yield Static(f"sluice  commit {e.commit[:10]}", classes="title")
        with VerticalScroll():
            yield Static("\n".join(lines), id="commit")
        yield Footer()

    def action_back(self) -> None:
        self.app.pop_screen()
