"""The cockpit: a Textual app over the same services as the CLI.

The app owns what every screen shares: the services, the rows of the queue
(reloaded by a poller whenever the state ref moves, from a runner, another
terminal or a sync), the log of CLI commands equivalent to what it did, and
the keys. Everything that blocks runs in thread workers; results come back
through `call_from_thread`, so the UI never waits on git or SQLite.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from textual import work
from textual.app import App, SystemCommand
from textual.keys import _character_to_key
from textual.screen import Screen

from app import listing
from app.errors import SluiceError
from app.listing import Row
from screens.services import Services
from screens.workers import ReportsWorkerErrors

FIRST_PAGE = 200


@dataclass(frozen=True)
class Logged:
    """One action the cockpit performed, as the CLI command that does the same."""

    at: float
    command: str
    outcome: str  # "done: built -> held" or "refused: …"


def textual_keys(keys: str) -> str:
    """The config's keys ("?", "ctrl+h,H") in Textual's names ("question_mark")."""
    return ",".join(_character_to_key(k) if len(k) == 1 else k for k in (p.strip() for p in keys.split(",")))


class SluiceApp(ReportsWorkerErrors, App):
    CSS_PATH = Path(__file__).with_name("sluice.tcss")
    TITLE = "sluice"
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, services: Services, *, poll_every: float | None = 1.0) -> None:
        super().__init__()
        self.services = services
        self.poll_every = poll_every
        self.rows: Sequence[Row] = ()
        self.head: str | None = None
        self.total = 0  # builds in the queue (rows may still be the first page)
        self.commands_run: list[Logged] = []
        self._polling = False
        self._again = False
        self._problems: set[str] = set()

    # ------------------------------------------------------------ start

    def on_mount(self) -> None:
        self.theme = "ansi-dark"
        keys = self.services.keys
        self.bind_keys(self, keys.of("help"), "help", "help", True)
        self.bind_keys(self, keys.of("command_log"), "command_log", "commands", True)
        if keys.of("palette") != "ctrl+p":
            self.bind_keys(self, keys.of("palette"), "command_palette", "palette", False)
        from screens.queue import QueueScreen
        self.push_screen(QueueScreen())
        for note in self.services.notes:
            self.notify(note, severity="warning")
        self.poll(force=True)
        if self.poll_every:
            self.set_interval(self.poll_every, self.poll)

    def bind_keys(self, node: App | Screen, keys: str, action: str, description: str, show: bool,
                  priority: bool = False) -> None:
        """Bind keys named as the config names them (remapped by `[keys]`);
        `priority` for keys Textual itself uses (tab moves the focus)."""
        node._bindings.bind(textual_keys(keys), action, description, show=show, priority=priority)
        if isinstance(node, Screen) and node.is_mounted:
            node.refresh_bindings()

    # ------------------------------------------------------------ the poller

    def poll(self, force: bool = False) -> None:
        """Reload the queue if the state ref moved (cheap when it did not)."""
        if self._polling:
            self._again = self._again or force  # reload once the running poll is done
            return
        self._polling = True
        self._poll(force)

    @work(thread=True, group="poll", exit_on_error=False)
    def _poll(self, force: bool) -> None:
        """Reload when the ref moved. The first load paints the newest
        screenful before reading the rest, so the queue shows at once."""
        s = self.services
        try:
            with s.lock:
                head = s.store.head()
                if head == self.head and not force:
                    return
                s.index.refresh()
                rows = None
                if not self.rows:
                    first, total = listing.load(s.index, FIRST_PAGE), s.index.count()
                    if total > len(first):
                        self.call_from_thread(self._loaded, first, head, [], total)
                    else:
                        rows = first  # that was all of it: never read twice
                rows = rows if rows is not None else listing.load(s.index)
                problems = s.index.problems
            self.call_from_thread(self._loaded, rows, head, problems, len(rows))
        except SluiceError as exc:
            self.call_from_thread(self.notify, exc.message, title="cannot read the queue", severity="error")
        except RuntimeError:
            if self.is_running:  # otherwise the app closed while this read: nothing to show it on
                raise
        finally:
            self._polling = False
            if self._again and self.is_running:
                self._again = False
                self.call_from_thread(self.poll, True)

    def _loaded(self, rows: Sequence[Row], head: str | None, problems: list[str], total: int) -> None:
        moved = head != self.head
        self.rows, self.head, self.total = rows, head, total
        for problem in problems:
            if problem not in self._problems:  # once, not on every reload
                self._problems.add(problem)
                self.notify(problem, severity="warning")
        for screen in self.screen_stack:
            if hasattr(screen, "show_rows"):
                screen.show_rows(rows, total)
            elif moved and hasattr(screen, "state_moved"):
                screen.state_moved()

    # ------------------------------------------------------------ navigation

    def open_build(self, build_id: str, then: str | None = None) -> None:
        from screens.build import BuildScreen
        self.push_screen(BuildScreen(build_id, then=then))

    def open_history(self, build: str | None = None) -> None:
        from screens.history import HistoryScreen
        self.push_screen(HistoryScreen(build))

    def open_builders(self) -> None:
        from screens.builders import BuildersScreen
        if not isinstance(self.screen, BuildersScreen):
            self.push_screen(BuildersScreen())

    def open_repos(self) -> None:
        from screens.repos import ReposScreen
        if not isinstance(self.screen, ReposScreen):
            self.push_screen(ReposScreen())

    def open_sign(self) -> None:
        from screens.sign import SignScreen
        if not isinstance(self.screen, SignScreen):
            self.push_screen(SignScreen())

    def action_help(self) -> None:
        from screens.dialogs import HelpScreen
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_command_log(self) -> None:
        from screens.dialogs import CommandLogScreen
        if not isinstance(self.screen, CommandLogScreen):
            self.push_screen(CommandLogScreen(self.commands_run))

    def logged(self, command: str, outcome: str) -> None:
        self.commands_run.append(Logged(self.services.now(), command, outcome))

    # ------------------------------------------------------------ palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        for title, help_text, callback in getattr(screen, "commands", lambda: [])():
            yield SystemCommand(title, help_text, callback)
        yield SystemCommand("Keys", "the keys of this screen", self.action_help)
        yield SystemCommand("Command log", "the CLI commands equivalent to what the cockpit did",
                            self.action_command_log)
        yield SystemCommand("Quit", "leave sluice", self.exit)


def run(services: Services) -> int:
    """Open the cockpit on a terminal; returns the exit code."""
    SluiceApp(services).run()
    return 0
