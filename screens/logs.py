"""A task's logs: the live tail while it builds, the finished logs after.

Where a log is comes from `Services.find_log` (app/tasklog.py, the seam to the
builders); this screen only reads what it is given. Lines are read in a worker
and written in batches (`Log.write_lines` about every 50 ms, as Toolong does):
one write per line would take a minute for a 200,000-line build log.
"""
from __future__ import annotations

import time

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Log, Static
from textual.worker import get_current_worker

from app import tasklog
from app.tasklog import LogRef
from screens.workers import ReportsWorkerErrors

BATCH_SECONDS = 0.05


class LogScreen(ReportsWorkerErrors, Screen):
    SCOPE = "log"
    NAME = "log"
    AUTO_FOCUS = None  # never the hidden search box: it would swallow the keys

    def __init__(self, detail: dict, ref: LogRef | None = None) -> None:
        super().__init__()
        self.detail = detail
        self.arches = [t.get("arch") for t in detail.get("tasks") or [] if t.get("arch")] or ["?"]
        self.choice = 0  # index into arches x kinds
        self.ref = ref
        self.given = ref is not None
        self.follow = True
        self.lines_read = 0
        self.done = False

    def compose(self) -> ComposeResult:
        yield Static("", id="title", classes="title")
        with Vertical():
            yield Input(placeholder="search (enter: next match, esc: back to the log)", id="search",
                        classes="hidden", disabled=True)  # disabled while hidden: never takes the focus
            yield Static("", id="nolog")
            yield Log(id="log", highlight=False, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        keys = self.app.services.keys
        for action, label in (("follow", "follow"), ("search", "search"), ("next_match", "next"),
                              ("next_log", "next log")):
            self.app.bind_keys(self, keys.of(action), action, label, True, priority=action == "next_log")
        self.app.bind_keys(self, keys.of("back"), "back", "back", True)
        self.open_log()

    @property
    def arch(self) -> str:
        return self.arches[self.choice // len(tasklog.KINDS) % len(self.arches)]

    @property
    def kind(self) -> str:
        return tasklog.KINDS[self.choice % len(tasklog.KINDS)]

    def open_log(self) -> None:
        log = self.query_one(Log)
        log.clear()
        self.lines_read = 0
        self.done = False
        if not self.given:
            self.ref = self.app.services.find_log(self.detail, self.arch, self.kind)
        nolog = self.query_one("#nolog", Static)
        if self.ref is None:
            nolog.update(f"no log yet for {self.arch} ({tasklog.file_name(self.kind)}): a build's logs "
                         "appear once it starts (`sluice run`); tab shows the next log")
            nolog.remove_class("hidden")
            log.add_class("hidden")
        else:
            nolog.add_class("hidden")
            log.remove_class("hidden")
            self.set_focus(log)
            self.stream(self.ref)
        self._title()

    def _title(self) -> None:
        build = str(self.detail.get("id", ""))[:7]
        state = "following" if self.follow else "paused"
        live = "live, " if self.ref is not None and self.ref.live else ""
        self.query_one("#title", Static).update(
            f"sluice  log {build} {self.arch} {tasklog.file_name(self.kind)}  {self.lines_read:,} lines  ({live}{state})")

    @work(thread=True, exclusive=True, group="log", exit_on_error=False)
    def stream(self, ref: LogRef) -> None:
        """Read the file as it grows; hand lines over in ~50 ms batches."""
        offset, worker, me = 0, self.app.call_from_thread, get_current_worker()
        while not me.is_cancelled:
            try:
                lines, offset = tasklog.follow(ref.path, offset)
            except FileNotFoundError:  # the attempt ended: its output is stored now, the live file gone
                ref = self.app.services.stored_log(ref)
                if ref is None:
                    break
                continue
            if lines:
                worker(self._write, lines)
            elif not ref.live:
                break
            else:
                time.sleep(0.25)
            if not lines:
                continue
            time.sleep(BATCH_SECONDS)
        worker(self._finished)

    def _write(self, lines: list[str]) -> None:
        self.query_one(Log).write_lines(lines, scroll_end=self.follow)
        self.lines_read += len(lines)
        self._title()

    def _finished(self) -> None:
        self.done = True
        self._title()

    # ------------------------------------------------------------ keys

    def action_follow(self) -> None:
        self.follow = not self.follow
        log = self.query_one(Log)
        log.auto_scroll = self.follow
        if self.follow:
            log.scroll_end(animate=False)
        self._title()

    def action_next_log(self) -> None:
        if not self.given:
            self.choice += 1
            self.open_log()

    def action_search(self) -> None:
        box = self.query_one("#search", Input)
        box.disabled = False
        box.remove_class("hidden")
        self.set_focus(box)  # at once: keys typed right after "/" must land in the box

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_next_match()

    def action_next_match(self) -> None:
        """Scroll to the next line holding the search text (wraps around)."""
        text = self.query_one("#search", Input).value.lower()
        log = self.query_one(Log)
        if not text or not log.lines:
            return
        start = int(log.scroll_offset.y) + 1
        total = len(log.lines)
        for step in range(total):
            n = (start + step) % total
            if text in log.lines[n].lower():
                self.follow = False
                log.auto_scroll = False
                log.scroll_to(y=n, animate=False)
                self.notify(f"line {n + 1}: {log.lines[n][:60]}", title="found")
                self._title()
                return
        self.notify(f"{text!r} is not in this log", severity="warning")

    def action_back(self) -> None:
        box = self.query_one("#search", Input)
        if box.has_focus and not box.has_class("hidden"):
            box.add_class("hidden")
            box.disabled = True
            self.set_focus(self.query_one(Log))
            return
        self.workers.cancel_group(self, "log")
        self.app.pop_screen()
