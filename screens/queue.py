"""The queue: every build, newest first, filtered as you type.

The rows come from `app.listing` (the index, loaded once per state commit by
the app's poller); this screen only chooses what to show and keeps the cursor
on the same build when the rows change under it.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from app import cockpit, listing
from app.cli.render import age
from app.listing import Query, Row
from screens import states
from screens.table import VirtualTable, cell

DIM = Style(dim=True)


@lru_cache(maxsize=4096)
def _arches(summary: bytes) -> tuple[tuple[str, str], ...]:
    return tuple(json.loads(summary).get("arches", {}).items())


class QueueTable(VirtualTable[Row]):
    """The builds; columns narrow to fit 80 cells."""

    def __init__(self, now: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.now = now

    def _widths(self, width: int) -> dict[str, int]:
        wide = width >= 120
        w = {"id": 7, "owner": 24 if wide else 10, "target": 12 if wide else 8, "state": 16,
             "arches": 28 if wide else 6, "age": 5}
        w["nvr"] = max(12, width - sum(w.values()) - len(w))
        return w

    def header(self, width: int) -> list[Segment]:
        w = self._widths(width)
        names = ("ID", "NVR", "OWNER", "TARGET", "STATE", "ARCHES", "AGE")
        keys = ("id", "nvr", "owner", "target", "state", "arches", "age")
        return [Segment(" ".join(cell(n, w[k]) for n, k in zip(names, keys)))]

    def line(self, row: Row, width: int) -> list[Segment]:
        w = self._widths(width)
        owner = row.owner if w["owner"] > 10 else row.owner.split("@")[0]
        state = row.state + ("!" if row.contested else "")
        segs = [Segment(cell(row.id[:7], w["id"]) + " ", DIM),
                Segment(cell(row.nvr, w["nvr"]) + " "),
                Segment(cell(owner, w["owner"]) + " "),
                Segment(cell(row.target, w["target"]) + " "),
                Segment(cell(state, w["state"]) + " ", states.style(row.state))]
        segs += self._arch_cells(row, w["arches"])
        segs.append(Segment(" " + cell(age(row.created, self.now()), w["age"]), DIM))
        return segs

    def _arch_cells(self, row: Row, width: int) -> list[Segment]:
        arches = _arches(row.summary)
        segs: list[Segment] = []
        used = 0
        for arch, state in arches:
            piece = f"{arch}:{state} " if width > 10 else states.task_mark(state)
            if used + len(piece) > width:
                break
            segs.append(Segment(piece, states.style(state)))
            used += len(piece)
        segs.append(Segment(" " * (width - used)))
        return segs

    def empty(self) -> str:
        return "no builds match (esc clears the filter, 0 shows every state)"


class FilterBox(Input):
    """The filter box. Enter gives the keys back to the table before the
    next key is read, so "/kde<enter><enter>" typed ahead opens a build."""

    async def action_submit(self) -> None:
        await super().action_submit()
        self.screen.set_focus(self.screen.query_one(QueueTable))


class QueueScreen(Screen):
    """Every build; `enter` opens one."""

    def __init__(self) -> None:
        super().__init__()
        self.all_rows: Sequence[Row] = ()
        self.query_ = Query()
        self.selected: str | None = None  # the build under the cursor, kept across refreshes
        self.loaded = False
        self.total = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title")
        yield FilterBox(placeholder="filter: words, owner:, state:, target:, package:  (enter keeps, esc clears)",
                        id="filter", classes="hidden")
        yield QueueTable(self.app.services.now, id="queue")
        yield Footer()

    def on_mount(self) -> None:
        keys = self.app.services.keys
        for key in keys.scope("queue"):
            action = key.action
            if action.startswith("state_"):
                self._bind(key.keys, f"quick('{action[6:]}')", key.description, show=False)
            elif action == "open":
                if key.keys != "enter":  # enter is the table's own
                    self._bind(key.keys, "open", key.description, show=False)
            else:
                self._bind(key.keys, action, key.description, show=action in ("filter", "mine", "history"))
        self._bind(keys.of("back"), "back", "quit", show=False)
        self.set_focus(self.query_one(QueueTable))
        if self.app.rows:
            self.show_rows(self.app.rows, self.app.total)
        self._title()

    def _bind(self, keys: str, action: str, description: str, show: bool) -> None:
        self.app.bind_keys(self, keys, action, description, show)

    # ------------------------------------------------------------ rows

    def show_rows(self, rows: Sequence[Row], total: int) -> None:
        """New rows from the poller: re-filter, keep the cursor on its build."""
        self.all_rows = rows
        self.total = total
        self.loaded = True
        self._apply()

    def _apply(self) -> None:
        table = self.query_one(QueueTable)
        shown = self.query_.select(self.all_rows)
        at = listing.position(shown, self.selected)
        table.set_rows(shown, at if at is not None else 0)
        self._title()

    def _title(self) -> None:
        table = self.query_one(QueueTable)
        if not self.loaded:
            text = "sluice  loading the queue…"
        else:
            text = f"sluice  {len(table.rows):,} of {self.total:,} builds"
            if self.total > len(self.all_rows):
                text += " (reading the rest…)"
        described = self.query_.describe()
        if described:
            text += f"  filter: {described}"
        self.query_one("#title", Static).update(text)

    def on_virtual_table_moved(self, message: VirtualTable.Moved) -> None:
        if message.row is not None:
            self.selected = message.row.id

    def on_virtual_table_chosen(self, message: VirtualTable.Chosen) -> None:
        self.app.open_build(message.row.id)

    # ------------------------------------------------------------ filters

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        self.set_focus(box)  # at once: keys typed right after "/" must land in the box

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_ = Query(event.value, self.query_.owner, self.query_.states)
            self._apply()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.add_class("hidden")
            self.set_focus(self.query_one(QueueTable))

    def clear_filter(self) -> bool:
        """esc in the filter box: drop the typed words. Returns whether it did."""
        box = self.query_one("#filter", Input)
        if box.has_focus or box.value:
            box.value = ""
            box.add_class("hidden")
            self.set_focus(self.query_one(QueueTable))
            return True
        return False

    def action_mine(self) -> None:
        me = self.app.services.actor.email
        self.query_ = Query(self.query_.text, None if self.query_.owner else me, self.query_.states)
        self._apply()

    def action_quick(self, group: str) -> None:
        states_ = listing.STATE_GROUPS.get(group, ())
        self.query_ = Query(self.query_.text, self.query_.owner, states_)
        self._apply()

    def action_open(self) -> None:
        self.query_one(QueueTable).action_choose()

    def action_history(self) -> None:
        self.app.open_history()

    def action_builders(self) -> None:
        self.app.open_builders()

    def action_repos(self) -> None:
        self.app.open_repos()

    def action_sign_screen(self) -> None:
        self.app.open_sign()

    def action_refresh(self) -> None:
        self.app.poll(force=True)

    def action_back(self) -> None:
        if not self.clear_filter():
            self.app.exit()

    # ------------------------------------------------------------ palette

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        found = [("Filter the queue", "type words, owner:, state:, target:, package:", self.action_filter),
                 ("Only my builds", "toggle the mine filter", self.action_mine),
                 ("History", "the state ref's log", self.action_history),
                 ("Builders", "health, slots, running tasks, load", self.action_builders),
                 ("Repos", "what each repo holds, what a push would change", self.action_repos),
                 ("Sign", "the builds waiting for a signature: select, sign in one go", self.action_sign_screen),
                 ("Refresh", "reload the queue now", self.action_refresh)]
        for group, shown in listing.STATE_GROUPS.items():
            found.append((f"Show {group} builds", ", ".join(shown), lambda g=group: self.action_quick(g)))
        found.append(("Show every state", "drop the state filter", lambda: self.action_quick("all")))
        row = self.query_one(QueueTable).current
        if row is not None:
            found.append((f"Open {row.id[:7]} {row.nvr}", "the build screen",
                          lambda r=row: self.app.open_build(r.id)))
            for op in cockpit.PERSON_OPS:  # opens the build, then acts as its key does
                found.append((f"{str(op).capitalize()} {row.id[:7]} {row.nvr}", "on the build screen",
                              lambda r=row, o=op: self.app.open_build(r.id, then=str(o))))
        return found
