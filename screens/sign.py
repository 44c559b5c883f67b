"""Sign: the builds waiting for a signature, several signed in one go.

The rows are the queue's own (the app's poller reloads them when the state
ref moves) in `needsign`. `space` selects, `s` signs the selection (or the
build under the cursor) through `sluice sign`'s service, after a check that
refuses before any dialog (not a signer, a build not ready, a batch member
not ready, no key here), a confirmation whose default is No, and, when the
target's key needs one, the passphrase (see screens/acting.py). A batch is
signed whole, as the CLI signs it: the confirmation lists every build.
"""
from __future__ import annotations

from typing import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

from app import listing
from app.actions import command_for
from app.cli.render import age
from app.errors import SluiceError
from app.keys import TargetKey
from app.lifecycle import BuildView
from app.listing import Row
from app.model import Op, State
from screens.acting import Acts
from screens.table import VirtualTable, cell
from screens.workers import ReportsWorkerErrors

DIM = Style(dim=True)
CHOSEN = Style(color="magenta", bold=True)
NAMED = 8  # builds named in the confirmation; the rest are counted
FOOTER = {"select": "select", "select_all": "all", "sign_selected": "sign"}


class SignTable(VirtualTable[Row]):
    """The needsign builds, a mark on the selected ones."""

    def __init__(self, now: Callable[[], float], chosen: set[str], **kw) -> None:
        super().__init__(**kw)
        self.now, self.chosen = now, chosen

    def _widths(self, width: int) -> dict[str, int]:
        wide = width >= 120
        w = {"mark": 1, "id": 7, "owner": 24 if wide else 10, "target": 12 if wide else 8,
             "batch": 12 if wide else 6, "age": 5}
        w["nvr"] = max(12, width - sum(w.values()) - len(w))
        return w

    def header(self, width: int) -> list[Segment]:
        w = self._widths(width)
        names = {"mark": "", "id": "ID", "nvr": "NVR", "owner": "OWNER", "target": "TARGET", "batch": "BATCH",
                 "age": "AGE"}
        return [Segment(" ".join(cell(names[k], w[k]) for k in names))]

    def line(self, row: Row, width: int) -> list[Segment]:
        w = self._widths(width)
        owner = row.owner if w["owner"] > 10 else row.owner.split("@")[0]
        chosen = row.id in self.chosen
        return [Segment(cell("✓" if chosen else " ", w["mark"]) + " ", CHOSEN),
                Segment(cell(row.id[:7], w["id"]) + " ", DIM),
                Segment(cell(row.nvr, w["nvr"]) + " ", CHOSEN if chosen else Style()),
                Segment(cell(owner, w["owner"]) + " "), Segment(cell(row.target, w["target"]) + " "),
                Segment(cell(row.batch or "", w["batch"]) + " "),
                Segment(cell(age(row.created, self.now()), w["age"]), DIM)]

    def empty(self) -> str:
        return "no build waits for a signature"


class SignScreen(Acts, ReportsWorkerErrors, Screen):
    SCOPE = "sign"
    NAME = "sign"

    def __init__(self) -> None:
        super().__init__()
        self.chosen: set[str] = set()
        self.total = 0

    def compose(self) -> ComposeResult:
        yield Static("sluice  sign", id="title", classes="title")
        yield SignTable(self.app.services.now, self.chosen, id="needsign")
        yield Footer()

    def on_mount(self) -> None:
        keys = self.app.services.keys
        for key in keys.scope("sign"):  # space is the table's page key: the screen's must win
            self.app.bind_keys(self, key.keys, key.action, FOOTER[key.action], True,
                               priority=key.action == "select")
        self.app.bind_keys(self, keys.of("back"), "back", "back", True)
        self.set_focus(self.query_one(SignTable))
        self.show_rows(self.app.rows, self.app.total)

    # ------------------------------------------------------------ rows

    def show_rows(self, rows: Sequence[Row], total: int) -> None:
        """The queue's rows (from the app's poller): keep those in needsign,
        the cursor on its build and the selection on builds still there."""
        table = self.query_one(SignTable)
        current = table.current
        waiting = [r for r in rows if r.state == str(State.NEEDSIGN)]
        self.chosen.intersection_update(r.id for r in waiting)
        at = listing.position(waiting, current.id if current else None)
        table.set_rows(waiting, at if at is not None else 0)
        self.total = total
        self._title()

    def _title(self) -> None:
        shown = len(self.query_one(SignTable).rows)
        text = f"sluice  sign  {shown} build{'s' if shown != 1 else ''} in needsign"
        if self.chosen:
            text += f", {len(self.chosen)} selected"
        self.query_one("#title", Static).update(text)

    def _selection(self) -> list[str]:
        """The selected builds in the table's order, else the one under the cursor."""
        table = self.query_one(SignTable)
        chosen = [r.id for r in table.rows if r.id in self.chosen]
        return chosen or ([table.current.id] if table.current is not None else [])

    # ------------------------------------------------------------ keys

    def action_select(self) -> None:
        table = self.query_one(SignTable)
        if table.current is None:
            return
        self.chosen.symmetric_difference_update({table.current.id})
        table.refresh()
        table.action_cursor(1)
        self._title()

    def action_select_all(self) -> None:
        ids = {r.id for r in self.query_one(SignTable).rows}
        if ids <= self.chosen:
            self.chosen.clear()
        else:
            self.chosen.update(ids)
        self.query_one(SignTable).refresh()
        self._title()

    def action_sign_selected(self) -> None:
        ids = self._selection()
        if not ids:
            self.notify("no build waits for a signature", severity="warning")
            return
        self._check(ids)

    @work(thread=True, group="act", exit_on_error=False)
    def _check(self, ids: list[str]) -> None:
        s = self.app.services
        try:
            with s.lock:
                members, locked = s.ready(Op.SIGN, ids)
        except SluiceError as exc:
            self.app.call_from_thread(self._refused, exc)
            return
        self.app.call_from_thread(self._ask, ids, members, locked)

    def _refused(self, exc: SluiceError) -> None:
        self.notify(exc.message + (f"\n{exc.hint}" if exc.hint else ""), title="sign: refused", severity="error",
                    timeout=8)

    def _ask(self, ids: list[str], members: list[BuildView], locked: list[TargetKey]) -> None:
        names = ", ".join(f"{m.record.nvr} ({m.record.short})" for m in members[:NAMED])
        if len(members) > NAMED:
            names += f" and {len(members) - NAMED} more"
        count = f"{len(members)} build{'s' if len(members) != 1 else ''}"
        self.release(Op.SIGN, ids, command_for(Op.SIGN, ids), f"Sign {count}: {names}?", locked)

    def acted(self) -> None:
        self.chosen.clear()
        self._title()

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_virtual_table_chosen(self, message: VirtualTable.Chosen) -> None:
        self.app.open_build(message.row.id)

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        found = [("Sign the selection", "or the build under the cursor; confirms first", self.action_sign_selected),
                 ("Select every build", "again: none", self.action_select_all)]
        current = self.query_one(SignTable).current
        if current is not None:
            found.append((f"Open {current.id[:7]} {current.nvr}", "the build screen",
                          lambda: self.app.open_build(current.id)))
        return found
