"""Review: what a build changes against the last release of its package, and
what rpmlint says, before anyone approves it (`v` on the build screen).

Everything shown is `Services.review`, the very `Reviewer` that `sluice
review` runs, laid out as the lines `app.review.lines` gives the CLI: this
screen only styles them (the ABI block loud at the top, lint findings by
severity) and wraps them to the terminal. It runs in a worker, since rpmlint
and the RPM headers take a while; `enter` on a build that requires a gone
soname opens it.
"""
from __future__ import annotations

import textwrap
from dataclasses import replace
from typing import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from app import review
from app.errors import BadInput, SluiceError
from app.review import Line, Review
from screens.table import VirtualTable, cell
from screens.workers import ReportsWorkerErrors

STYLES = {
    review.ABI: Style(color="bright_white", bgcolor="red", bold=True),
    review.ABI_NOTE: Style(color="red"),
    review.ABI_USER: Style(color="red", bold=True),
    review.PACKAGE: Style(bold=True),
    review.ADDED: Style(color="green"),
    review.REMOVED: Style(color="red"),
    review.SECTION: Style(bold=True),
}
SEVERITY = {"E": Style(color="red", bold=True), "W": Style(color="yellow"), "I": Style(dim=True)}


def wrapped(found: Sequence[Line], width: int) -> list[Line]:
    """Each line cut into lines of `width` cells, continuations indented
    under it and carrying its kind (and build: enter opens it on any of them)."""
    if width < 20:
        return list(found)
    shown: list[Line] = []
    for line in found:
        indent = " " * (len(line.text) - len(line.text.lstrip()) + 2)
        parts = textwrap.wrap(line.text, width, subsequent_indent=indent,
                              break_on_hyphens=False) or [""]
        shown += [replace(line, text=part) for part in parts]
    return shown


class ReviewTable(VirtualTable[Line]):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.source: list[Line] = []
        self.heading = ""
        self.waiting = "reviewing… (rpmlint and the RPM headers take a moment)"

    def show(self, heading: str, found: Sequence[Line]) -> None:
        self.heading, self.source = heading, list(found)
        rows = wrapped(self.source, self.scrollable_content_region.width)
        first = next((n for n, row in enumerate(rows) if row.build), 0)  # the first build to rebuild
        self.set_rows(rows, first)

    def on_resize(self) -> None:
        if self.source:
            current = self.current
            rows = wrapped(self.source, self.scrollable_content_region.width)
            self.set_rows(rows, rows.index(current) if current in rows else self.cursor)
        super().on_resize()

    def header(self, width: int) -> list[Segment]:
        return [Segment(cell(self.heading, width))]

    def line(self, row: Line, width: int) -> list[Segment]:
        style = SEVERITY.get(row.severity) if row.kind == review.LINT else STYLES.get(row.kind)
        text = cell(row.text, width) if row.kind == review.ABI else row.text  # the whole width red
        return [Segment(text, style)]

    def empty(self) -> str:
        return self.waiting


class ReviewScreen(ReportsWorkerErrors, Screen):
    SCOPE = "review"
    NAME = "review"

    def __init__(self, build_id: str) -> None:
        super().__init__()
        self.build_id = build_id
        self.lint = True
        self.folded = True
        self.found: Review | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"sluice  review {self.build_id[:7]}", id="title", classes="title")
        yield Static("", id="problem", classes="hidden")
        yield ReviewTable(id="review")
        yield Footer()

    def on_mount(self) -> None:
        keys = self.app.services.keys
        for action, name, what, show in (("review_again", "again", "again", True),
                                         ("review_lint", "toggle_lint", "rpmlint on/off", True),
                                         ("review_fold", "fold", "whole lists", False),
                                         ("back", "back", "back", True)):
            self.app.bind_keys(self, keys.of(action), name, what, show)
        if keys.of("review_open") != "enter":  # enter is the table's own
            self.app.bind_keys(self, keys.of("review_open"), "open", "open", False)
        self.set_focus(self.query_one(ReviewTable))
        self.load()

    @property
    def command(self) -> str:
        return f"sluice review {self.build_id[:7]}" + ("" if self.lint else " --no-lint")

    # ------------------------------------------------------------ loading

    @work(thread=True, exclusive=True, group="review", exit_on_error=False, description="review")
    def load(self) -> None:
        s = self.app.services
        lint, command = self.lint, self.command
        try:
            with s.lock:
                found = s.review(self.build_id, lint)
        except SluiceError as exc:
            self.app.call_from_thread(self._failed, command, lint, exc)
            return
        self.app.call_from_thread(self._show, command, found)

    def _failed(self, command: str, lint: bool, exc: SluiceError) -> None:
        self.app.logged(command, f"{'refused' if isinstance(exc, BadInput) else 'failed'}: {exc.message}")
        if not self.is_attached:
            return
        shown = Text(exc.message, style="bold red")
        if exc.hint:
            shown.append(f"\n{exc.hint}", style="red")
        if lint and not isinstance(exc, BadInput):  # the build is fine: rpmlint (or a backend) is not
            shown.append(f"\n\npress {self.app.services.keys.of('review_lint')} to review without rpmlint",
                         style="bold")
        self.query_one("#problem", Static).update(shown)
        self.query_one("#problem").remove_class("hidden")
        table = self.query_one(ReviewTable)
        table.waiting = "no review"
        table.show("", [])

    def _show(self, command: str, found: Review) -> None:
        abi = f"{len(found.abi)} ABI change{'s' if len(found.abi) != 1 else ''}" if found.abi else "no ABI change"
        lint = f"{found.findings('E')} E  {found.findings('W')} W" if self.lint else "rpmlint not run"
        self.app.logged(command, f"done: {abi}, {len(found.packages)} packages, {lint}")
        if not self.is_attached:
            return
        self.found = found
        record = found.build.record
        title = Text(f"sluice  review {record.short}  {record.nvr}  ")
        title.append(f" !! {abi} " if found.abi else abi, style="bold bright_white on red" if found.abi else "")
        title.append("  ")
        if self.lint:
            title.append(f"{found.findings('E')} E", style="bold red" if found.findings("E") else "")
            title.append("  ")
            title.append(f"{found.findings('W')} W", style="yellow" if found.findings("W") else "")
        else:
            title.append(lint)
        self.query_one("#title", Static).update(title)
        self.query_one("#problem").add_class("hidden")
        self._lay_out()

    def _lay_out(self) -> None:
        if self.found is not None:
            body = [line for line in review.lines(self.found, review.FOLDED if self.folded else None)
                    if line.kind != review.HEAD]  # the title and the table's heading say it
            self.query_one(ReviewTable).show(review.against(self.found), body)

    # ------------------------------------------------------------ keys

    def action_again(self) -> None:
        self.query_one(ReviewTable).waiting = "reviewing…"
        self.load()

    def action_toggle_lint(self) -> None:
        self.lint = not self.lint
        self.action_again()

    def action_fold(self) -> None:
        self.folded = not self.folded
        self._lay_out()

    def on_virtual_table_chosen(self, message: VirtualTable.Chosen) -> None:
        if message.row.build:
            self.app.open_build(message.row.build)

    def action_open(self) -> None:
        self.query_one(ReviewTable).action_choose()

    def action_back(self) -> None:
        self.app.pop_screen()

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        found = [("Review again", "run the review (and rpmlint) again", self.action_again),
                 (f"Review {'without' if self.lint else 'with'} rpmlint", "and again", self.action_toggle_lint),
                 ("Fold the long lists" if not self.folded else "Show the long lists whole", "", self.action_fold)]
        users = [user for change in (self.found.abi if self.found else ()) for user in change.required_by]
        found += [(f"Open {build[:7]} {nvr}", f"{package} requires a gone soname: rebuild it",
                   lambda b=build: self.app.open_build(b)) for build, nvr, package in users]
        return found
