"""Repos: per target what the buildroot, testing and stable repos hold, and
what each push (and a publish) would add or remove.

Everything shown is `app.repos.overview`, the answer `sluice repos` prints,
read in a worker and again whenever the state ref moves. It is laid out as
lines of one virtual table: a heading per target and repo, a line per
package (NEVRA, build, signer, the build's state now), and under each
command that would change a repo, its `+`/`-` lines. `enter` opens the
build of the line.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from app.errors import SluiceError
from app.manifests import Package
from app.repos import REPOS, TargetRepos
from screens import states
from screens.table import VirtualTable, cell
from screens.workers import ReportsWorkerErrors

DIM = Style(dim=True)
HEADING = Style(bold=True)
MOVE = Style(color="yellow", bold=True)
CHANGE = {"+": Style(color="green"), "-": Style(color="red")}


class Line(NamedTuple):
    """One line: a heading (text), or a package with what happens to it."""

    text: str = ""
    style: Style = HEADING
    package: Package | None = None
    change: str = ""  # "+ testing", "- testing", or "" for what a repo holds
    build: str | None = None  # what enter opens


def lines(found: Sequence[TargetRepos]) -> list[Line]:
    shown: list[Line] = []
    for target in found:
        shown.append(Line(f"{target.target}   signing key {target.key[-16:] if target.key else 'none yet'}"))
        numbers = dict(target.manifests)
        for repo in REPOS:
            packages = target.held(repo)
            manifest = f", manifest {numbers[repo]}" if numbers.get(repo) else ""
            shown.append(Line(f"  {repo}: {len(packages)} package{'s' if len(packages) != 1 else ''}{manifest}",
                              DIM if not packages else HEADING))
            shown += [Line(package=p, build=p.build) for p in packages]
        for move in target.moves:
            shown.append(Line(f"  {move.command} would:", MOVE, build=move.builds[0] if move.builds else None))
            for sign, changes in (("+", move.adds), ("-", move.removes)):
                shown += [Line(package=p, change=f"{sign} {repo}", build=p.build) for repo, p in changes]
        if not target.moves:
            shown.append(Line("  no push is waiting, and the repos match the queue", DIM))
        shown += [Line(f"  note: {problem}", Style(color="yellow")) for problem in target.problems]
    return shown


class ReposTable(VirtualTable[Line]):
    def __init__(self, state_of: Callable[[str], str], **kw) -> None:
        super().__init__(**kw)
        self.state_of = state_of

    def _widths(self, width: int) -> dict[str, int]:
        w = {"change": 11, "build": 7, "signer": 16 if width >= 120 else 8, "state": 10}
        w["nevra"] = max(12, width - sum(w.values()) - len(w))
        return w

    def header(self, width: int) -> list[Segment]:
        w = self._widths(width)
        names = {"change": "", "nevra": "NEVRA", "build": "BUILD", "signer": "SIGNER", "state": "STATE"}
        return [Segment(" ".join(cell(names[k], w[k]) for k in names))]

    def line(self, row: Line, width: int) -> list[Segment]:
        if row.package is None:
            return [Segment(cell(row.text, width), row.style)]
        w = self._widths(width)
        p = row.package
        state = self.state_of(p.build)
        return [Segment(cell(row.change or "", w["change"]) + " ", CHANGE.get(row.change[:1], DIM)),
                Segment(cell(p.nevra, w["nevra"]) + " ", CHANGE.get(row.change[:1], Style())),
                Segment(cell(p.build[:7], w["build"]) + " ", DIM),
                Segment(cell(p.signed_by[-w["signer"]:] if p.signed_by else "unsigned", w["signer"]) + " ", DIM),
                Segment(cell(state, w["state"]), states.style(state))]

    def empty(self) -> str:
        return "reading the repos…"


class ReposScreen(ReportsWorkerErrors, Screen):
    SCOPE = "repos"
    NAME = "repos"

    def __init__(self) -> None:
        super().__init__()
        self.found: list[TargetRepos] = []
        self.states: dict[str, str] = {}  # build id -> its state now, from the queue's rows

    def compose(self) -> ComposeResult:
        yield Static("sluice  repos", id="title", classes="title")
        yield ReposTable(self._state_of, id="repos")
        yield Footer()

    def on_mount(self) -> None:
        keys = self.app.services.keys
        if keys.of("repos_open") != "enter":  # enter is the table's own
            self.app.bind_keys(self, keys.of("repos_open"), "open", "open", False)
        self.app.bind_keys(self, keys.of("back"), "back", "back", True)
        self.set_focus(self.query_one(ReposTable))
        self.load()

    def _state_of(self, build: str) -> str:
        return self.states.get(build, "")

    @work(thread=True, exclusive=True, group="repos", exit_on_error=False)
    def load(self) -> None:
        s = self.app.services
        try:
            with s.lock:
                found = s.repos()
        except SluiceError as exc:
            self.app.call_from_thread(self._failed, exc)
            return
        self.app.call_from_thread(self._show, found)

    def _failed(self, exc: SluiceError) -> None:
        self.notify(exc.message + (f"\n{exc.hint}" if exc.hint else ""), title="cannot read the repos",
                    severity="error", timeout=8)

    def _show(self, found: list[TargetRepos]) -> None:
        if not self.is_attached:
            return
        self.found = found
        self.states = {r.id: r.state for r in self.app.rows}
        table = self.query_one(ReposTable)
        table.set_rows(lines(found), table.cursor)
        pending = sum(len(t.moves) for t in found)
        self.query_one("#title", Static).update(
            f"sluice  repos  {len(found)} target{'s' if len(found) != 1 else ''}, "
            f"{pending} change{'s' if pending != 1 else ''} waiting")

    def state_moved(self) -> None:
        self.load()

    def on_virtual_table_chosen(self, message: VirtualTable.Chosen) -> None:
        if message.row.build:
            self.app.open_build(message.row.build)

    def action_open(self) -> None:
        self.query_one(ReposTable).action_choose()

    def action_back(self) -> None:
        self.app.pop_screen()

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        found = [("Reload the repos", "read them again now", self.load)]
        moves = [m for t in self.found for m in t.moves if m.builds]
        found += [(f"Open {m.builds[0][:7]}", f"to {m.command[len('sluice '):]}",
                   lambda b=m.builds[0]: self.app.open_build(b)) for m in moves]
        return found
