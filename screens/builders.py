"""The builders: each one's health, slots in use, running tasks and recent
load, as this machine's runner tells in its status file (`Services.builders`,
app/waits.py). Without a live runner it lists the configured builders and
says how to start one.

The file is read about every second in a worker (a small JSON file: no git,
no index, so no lock to wait for) while the screen is on top. The cards are
updated in place when what they show changed; the task ages move every
second. `enter` on a running task opens its build.
"""
from __future__ import annotations

from typing import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static

from app.cli.render import age
from app.waits import NO_RUNNER, BuildersStatus, BuilderStatus, RunningTask
from screens.table import VirtualTable, cell
from screens.workers import ReportsWorkerErrors

POLL_SECONDS = 1.0
DIM = Style(dim=True)
HEALTH = {"up": "green", "down": "red", "connecting": "yellow", "idle": "blue"}


class TaskTable(VirtualTable[RunningTask]):
    """The tasks building now, on every builder."""

    def __init__(self, now: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.now = now

    def _widths(self, width: int) -> dict[str, int]:
        wide = width >= 120
        w = {"builder": 16 if wide else 10, "id": 7, "arch": 8, "attempt": 7, "age": 5}
        w["nvr"] = max(12, width - sum(w.values()) - len(w))
        return w

    def header(self, width: int) -> list[Segment]:
        w = self._widths(width)
        names = {"builder": "BUILDER", "id": "ID", "nvr": "NVR", "arch": "ARCH", "attempt": "ATTEMPT",
                 "age": "AGE"}
        return [Segment(" ".join(cell(names[k], w[k]) for k in names))]

    def line(self, row: RunningTask, width: int) -> list[Segment]:
        w = self._widths(width)
        return [Segment(cell(row.builder, w["builder"]) + " "), Segment(cell(row.build[:7], w["id"]) + " ", DIM),
                Segment(cell(row.nvr, w["nvr"]) + " "), Segment(cell(row.arch, w["arch"]) + " "),
                Segment(cell(str(row.attempt), w["attempt"]) + " "),
                Segment(cell(age(row.started, self.now()), w["age"]), DIM)]

    def empty(self) -> str:
        return "no task is building"


def health(b: BuilderStatus, runner: bool, pad: int = 0) -> Text:
    """One line: name (padded to `pad`, so the states line up), state, slots
    in use, where, tool, arches."""
    shown = Text()
    shown.append(b.name.ljust(pad), style="bold")
    if runner and b.state:
        shown.append(f"  {b.state}", style=Style(color=HEALTH.get(b.state, "default"), bold=b.state == "down"))
        shown.append(f"  {b.busy}/{b.slots} slots busy")
    else:
        shown.append(f"  {b.slots} slot{'s' if b.slots != 1 else ''}")
    where = "this machine" if b.transport == "local" else b.host or b.transport
    shown.append(f"  {where}  {b.tool}  {' '.join(b.arches)}", style=DIM)
    return shown


def explanation(b: BuilderStatus) -> Text:
    """Why it is down, and what else to know; empty when nothing is."""
    shown = Text()
    if b.reason:
        shown.append(f"{b.state or 'note'}: {b.reason}", style="red" if b.state == "down" else "yellow")
    if b.note:
        shown.append(("\n" if b.reason else "") + b.note, style="yellow")
    return shown


class BuilderCard(Vertical):
    """One builder: its health line, why it is down, its recent load."""

    def __init__(self, b: BuilderStatus, runner: bool, pad: int) -> None:
        super().__init__(classes="builder")
        self.builder, self.runner, self.pad = b, runner, pad

    def compose(self) -> ComposeResult:
        yield Static(health(self.builder, self.runner, self.pad), classes="health")
        yield Static(explanation(self.builder), classes="why")
        with Horizontal(classes="loadline"):
            yield Static("load ", classes="label")
            yield Sparkline(list(self.builder.load), classes="load")
            yield Static("", classes="peak")

    def on_mount(self) -> None:
        self.show(self.builder, self.runner)

    def show(self, b: BuilderStatus, runner: bool) -> None:
        self.builder, self.runner = b, runner
        self.query_one(".health", Static).update(health(b, runner, self.pad))
        why = explanation(b)
        self.query_one(".why", Static).update(why)
        self.query_one(".why").set_class(not why.plain, "hidden")
        self.query_one(".loadline").set_class(not runner or not b.state, "hidden")
        self.query_one(Sparkline).data = list(b.load)
        peak = max(b.load, default=0)
        self.query_one(".peak", Static).update(Text(f"now {b.busy}, peak {peak} of {b.slots}", style="dim"))


class BuildersScreen(ReportsWorkerErrors, Screen):
    SCOPE = "builders"
    NAME = "builders"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # -wide: a longer load history

    def __init__(self) -> None:
        super().__init__()
        self.status: BuildersStatus | None = None

    def compose(self) -> ComposeResult:
        yield Static("sluice  builders", id="title", classes="title")
        yield Static("reading the runner's status…", id="runner")
        yield VerticalScroll(id="builders")
        yield TaskTable(self.app.services.now, id="running")
        yield Footer()

    def on_mount(self) -> None:
        self.app.bind_keys(self, self.app.services.keys.of("back"), "back", "back", True)
        self.set_focus(self.query_one(TaskTable))
        self.read_status()
        self.set_interval(POLL_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        self.read_status()  # back from a build: at once, not within the second

    def _tick(self) -> None:
        if self.app.screen is self:  # covered by a build screen: nothing to see
            self.read_status()

    @work(thread=True, exclusive=True, group="builders", exit_on_error=False)
    def read_status(self) -> None:
        status = self.app.services.builders()
        try:
            self.app.call_from_thread(self.show, status)
        except RuntimeError:
            if self.app.is_running:  # otherwise the app closed while this read: nothing to show it on
                raise

    # ------------------------------------------------------------ showing

    def show(self, status: BuildersStatus) -> None:
        if not self.is_attached:  # the screen went while the file was read
            return
        table = self.query_one(TaskTable)
        if status != self.status:
            self.status = status
            self._cards(status)
            self._header(status)
            table.set_class(not status.runner, "hidden")  # nothing can be building
            chosen = table.current
            rows = status.running
            at = next((n for n, t in enumerate(rows) if chosen and (t.build, t.arch) == (chosen.build, chosen.arch)),
                      None)
            table.set_rows(rows, at)
        else:
            table.refresh()  # the ages

    def _header(self, status: BuildersStatus) -> None:
        busy = sum(b.busy for b in status.builders)
        slots = sum(b.slots for b in status.builders)
        count = f"{len(status.builders)} builder{'s' if len(status.builders) != 1 else ''}"
        if status.runner:
            title = f"sluice  builders  {count}, {busy} of {slots} slots busy, {len(status.running)} building"
        else:
            title = f"sluice  builders  {count} configured, no runner"
        self.query_one("#title", Static).update(title)
        note = Text()
        if not status.runner:
            note.append(NO_RUNNER, style="yellow")
            note.append("\nthe builders in the local config:" if status.builders else "", style="dim")
        if status.problem:
            note.append(("\n" if note.plain else "") + status.problem, style="red")
        if status.runner and not status.builders and not status.problem:
            note.append("the runner has no builders", style="yellow")
        runner = self.query_one("#runner", Static)
        runner.update(note)
        runner.set_class(not note.plain, "hidden")

    def _cards(self, status: BuildersStatus) -> None:
        """Update the cards in place; rebuild them when the builders changed."""
        box = self.query_one("#builders", VerticalScroll)
        cards = list(box.query(BuilderCard))
        if [c.builder.name for c in cards] == [b.name for b in status.builders]:
            for card, b in zip(cards, status.builders):
                card.show(b, status.runner)
            return
        pad = max((len(b.name) for b in status.builders), default=0)
        box.remove_children()
        box.mount_all([BuilderCard(b, status.runner, pad) for b in status.builders])

    # ------------------------------------------------------------ keys

    def on_virtual_table_chosen(self, message: VirtualTable.Chosen) -> None:
        self.app.open_build(message.row.build)

    def action_back(self) -> None:
        self.app.pop_screen()

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        tasks: Sequence[RunningTask] = self.status.running if self.status else ()
        return [(f"Open {t.build[:7]} {t.nvr} {t.arch}", f"building on {t.builder}, attempt {t.attempt}",
                 lambda t=t: self.app.open_build(t.build)) for t in tasks]
