"""One build: summary, tasks, artifacts, the event timeline, why it waits,
and every action the current user may take now, each on a key.

What is shown is `BuildView.detail()` (what `sluice show --json` prints),
rendered as it comes: keys the builders add later (hosts, attempts, artifact
signers, waits) appear when present and are skipped when not. An action is
`app.actions.Action`, checked by `app.cockpit.refusal` before any dialog and
performed by `Queue.perform`, exactly as the CLI does it; sign and push by
the services of `sluice sign` and `sluice push` (see screens/acting.py).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from app import cockpit
from app.actions import DESTRUCTIVE, NEEDS_REASON, Action
from app.cli import render
from app.errors import SluiceError
from app.keys import TargetKey
from app.lifecycle import BuildView
from app.model import Op, State
from screens import states
from screens.acting import Acts
from screens.dialogs import Choose, Confirm, Reason
from screens.workers import ReportsWorkerErrors


def key_action(op: Op) -> str:
    """The keymap's name for an op (push-testing -> push_testing)."""
    return str(op).replace("-", "_")


class BuildScreen(Acts, ReportsWorkerErrors, Screen):
    SCOPE = "build"
    NAME = "build"
    BINDINGS = [Binding("j", "scroll(1)", show=False), Binding("k", "scroll(-1)", show=False)]

    def __init__(self, build_id: str, then: str | None = None) -> None:
        super().__init__()
        self.build_id = build_id
        self.then = then
        self.view: BuildView | None = None
        self.detail: dict[str, Any] = {}
        self.allowed: list[Op] = []
        self._seen: bytes | None = None  # the build's row summary when it was last read

    def compose(self) -> ComposeResult:
        yield Static(f"sluice  build {self.build_id[:7]}", id="title", classes="title")
        with VerticalScroll(id="body"):
            yield Static("loading…", id="summary")
            yield Static("", id="allowed")
            yield Static("", id="tasks")
            yield Static("", id="artifacts")
            yield Static("", id="events")
        yield Footer()

    def on_mount(self) -> None:
        for key in self.app.services.keys.scope("build"):
            if key.action in ("log", "review"):  # screens of their own, not ops
                self.app.bind_keys(self, key.keys, key.action, {"log": "logs"}.get(key.action, key.action), True)
            else:
                self.app.bind_keys(self, key.keys, f"op('{key.action.replace('_', '-')}')",
                                   key.description, False)
        self.app.bind_keys(self, self.app.services.keys.of("back"), "back", "back", True)
        self.set_focus(self.query_one("#body"))
        self.load()

    # ------------------------------------------------------------ loading

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self) -> None:
        s = self.app.services
        try:
            with s.lock:
                view = s.queue.view(self.build_id)
                allowed = s.queue.allowed(view)
                waiting = s.waiting(view)
        except SluiceError as exc:
            self.app.call_from_thread(self._failed_load, exc)
            return
        self.app.call_from_thread(self._show, view, allowed, waiting)

    def _failed_load(self, exc: SluiceError) -> None:
        self.query_one("#summary", Static).update(Text(f"{exc.message}\n{exc.hint}", style="red"))

    def state_moved(self) -> None:
        """Read the build again only when its own row changed (the summary
        carries its newest event): a runner moves the ref all the time."""
        row = next((r for r in self.app.rows if r.id == self.build_id), None)
        if row is not None and row.summary == self._seen:
            return
        self._seen = row.summary if row is not None else None
        self.load()

    def _show(self, view: BuildView, allowed: list[Op], waiting: dict[str, str]) -> None:
        # what `sluice show --json` prints: the detail and why its queued tasks wait
        self.view, self.allowed, self.detail = view, allowed, {**view.detail(), "waiting": waiting}
        d = self.detail
        self.query_one("#title", Static).update(f"sluice  build {d['id'][:7]}  {d.get('nvr', '')}")
        self.query_one("#summary", Static).update(summary(d))
        self.query_one("#allowed", Static).update(self._allowed_text())
        self.query_one("#tasks", Static).update(tasks_table(d.get("tasks") or []))
        self.query_one("#artifacts", Static).update(artifacts_table(d.get("artifacts") or []))
        self.query_one("#events", Static).update(events_table(d.get("events") or []))
        if self.then:
            then, self.then = self.then, None
            self.action_op(then)

    def _allowed_text(self) -> Text:
        keys = self.app.services.keys
        shown = Text("you may: ", style="bold")
        if not self.allowed:
            shown.append("nothing in this state", style="dim")
        for op in self.allowed:
            shown.append(f"[{keys.of(key_action(op))}]", style="bold")
            shown.append(f" {op}  ")
        shown.append(f"   [{keys.of('log')}] logs  [{keys.of('review')}] review  [?] keys", style="dim")
        return shown

    def action_scroll(self, step: int) -> None:
        self.query_one("#body", VerticalScroll).scroll_relative(y=step, animate=False)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_log(self) -> None:
        from screens.logs import LogScreen
        if self.view is not None:
            self.app.push_screen(LogScreen(self.detail))

    def action_review(self) -> None:
        from screens.review import ReviewScreen
        self.app.push_screen(ReviewScreen(self.build_id))

    # ------------------------------------------------------------ actions

    def action_op(self, name: str) -> None:
        if self.view is None:
            return
        self._check(Op(name))

    @work(thread=True, group="act", exit_on_error=False)
    def _check(self, op: Op) -> None:
        s = self.app.services
        view = self.view
        to = (view.contenders[0] if view.contenders else view.state) if op is Op.RESOLVE else None
        probe = Action(op, self.build_id, "-" if op in NEEDS_REASON else "", to)
        locked: list[TargetKey] = []
        with s.lock:
            refused = s.refusal(probe)
            if refused is None and op in cockpit.KEYED_OPS:
                try:
                    locked = s.ready(op, [self.build_id])[1]
                except SluiceError as exc:
                    refused = exc
        self.app.call_from_thread(self._checked, op, refused, locked)

    def _checked(self, op: Op, refused: SluiceError | None, locked: list[TargetKey]) -> None:
        if refused is not None:
            text = refused.message + (f"\n{refused.hint}" if refused.hint else "")
            self.notify(text, title=f"{op}: refused", severity="error", timeout=8)
            return
        name = f"{self.view.record.nvr} ({self.view.record.short})"
        if op in cockpit.KEYED_OPS:
            where = f" to {str(op).split('-')[1]}" if op is not Op.SIGN else ""
            self.release(op, [self.build_id], Action(op, self.build_id).command(),
                         f"{str(op).split('-')[0].capitalize()} {name}{where}?", locked)
        elif op in NEEDS_REASON:
            self.app.push_screen(Reason(f"Why {op} {name}?"),
                                 lambda why: why and self._confirm(op, why))
        elif op is Op.RESOLVE:
            self.app.push_screen(Choose(f"Resolve {name}: which state should it be in?",
                                        [str(s) for s in self.view.contenders]),
                                 lambda to: to and self._confirm(op, "", to))
        else:
            self._confirm(op, "")

    def _confirm(self, op: Op, reason: str, to: str | None = None) -> None:
        action = Action(op, self.build_id, reason, State(to) if to else None)
        if op not in DESTRUCTIVE:
            self._perform(action)
            return
        name = f"{self.view.record.nvr} ({self.view.record.short})"
        self.app.push_screen(Confirm(f"{str(op).capitalize()} {name}?",
                                     f"This is: {action.command()}"),
                             lambda yes: yes and self._perform(action))

    @work(thread=True, group="act", exit_on_error=False)
    def _perform(self, action: Action) -> None:
        s = self.app.services
        try:
            with s.lock:
                views = s.perform(action)
        except SluiceError as exc:
            self.app.call_from_thread(self.report, action.op, action.command(), error=exc)
            return
        self.app.call_from_thread(self.report, action.op, action.command(), views)

    def acted(self) -> None:
        self.load()

    def commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        if self.view is None:
            return []
        short = self.view.record.short
        found = [(f"{str(op).capitalize()} {short}",
                  "allowed now" if op in self.allowed else "not allowed now: shows why",
                  lambda o=op: self.action_op(str(o))) for op in cockpit.PERSON_OPS]
        found.append((f"Logs of {short}", "build, root and state logs", self.action_log))
        found.append((f"Review {short}", "what changed since the last release, and rpmlint", self.action_review))
        found.append((f"History of {short}", "the commits about this build",
                      lambda: self.app.open_history(self.build_id)))
        return found


# ---------------------------------------------------------------- rendering


def summary(d: dict) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    state = states.text(d.get("state", "?"), bool(d.get("contested")))
    if d.get("contested"):
        state.append(f"  {' vs '.join(d.get('contenders') or [])}: resolve with x")
    grid.add_row("build", f"{d['id'][:7]}  {escape(d.get('nevr') or d.get('nvr', ''))}")
    grid.add_row("state", state)
    grid.add_row("owner", escape(d.get("owner", "")))
    where = d.get("target", "")
    if d.get("batch"):
        where += f"   batch {d['batch']}"
    if d.get("scratch"):
        where += "   scratch"
    grid.add_row("target", escape(where))
    grid.add_row("created", f"{d.get('created', '')[:19].replace('T', ' ')}   updated "
                            f"{d.get('updated', '')[:19].replace('T', ' ')}")
    if d.get("after"):
        grid.add_row("after", d["after"][:7])
    for n, (arch, why) in enumerate(sorted((d.get("waiting") or {}).items())):  # arch -> why
        grid.add_row("waiting" if n == 0 else "", Text(f"{arch} because {why}", style="yellow"))
    return grid


def tasks_table(tasks: Sequence[dict]) -> Table:
    table = Table(title="tasks", title_justify="left", expand=True, box=None, header_style="bold")
    for name in ("arch", "state", "host", "attempts", "took"):
        table.add_column(name, no_wrap=name != "host")
    for t in tasks:
        attempts = t.get("attempts") or []
        table.add_row(t.get("arch", "?"), states.text(t.get("state", "?")), escape(str(t.get("host") or "—")),
                      str(len(attempts)), _took(attempts))
    return table


def _took(attempts: Sequence[dict]) -> str:
    """How long the last attempt took, or has run so far (+)."""
    if not attempts:
        return "—"
    last = attempts[-1]
    took = render.duration(last.get("started", ""), last.get("ended"))
    return took if last.get("ended") else f"{took}+"


def artifacts_table(artifacts: Sequence[dict]) -> Table:
    table = Table(title="artifacts", title_justify="left", expand=True, box=None, header_style="bold")
    for name in ("name", "arch", "sha256", "signer"):
        table.add_column(name, no_wrap=True, overflow="ellipsis")
    for a in artifacts:
        table.add_row(escape(str(a.get("name") or "?")), str(a.get("arch") or ""),
                      str(a.get("sha256") or "")[:16], escape(str(a.get("signed_by") or "unsigned")))
    return table


def events_table(events: Sequence[dict]) -> Table:
    table = Table(title="events", title_justify="left", expand=True, box=None, header_style="bold")
    table.add_column("when", no_wrap=True)
    table.add_column("who", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("op", no_wrap=True)
    table.add_column("change", no_wrap=True)
    table.add_column("why", overflow="fold")
    for e in events:
        change = Text(f"{e.get('from') or 'new'} -> ")
        change.append_text(states.text(e.get("to", "?")))
        table.add_row(e.get("at", "")[:16].replace("T", " "), escape(e.get("actor", "")), e.get("op", ""),
                      change, escape(e.get("reason") or ""))
    return table
