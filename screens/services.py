"""The services the cockpit calls: the CLI's own, wired the CLI's way.

The screens hold no rules; they call these from worker threads. One lock
serialises the calls, because the git store and the index connection are
shared by the poller, the loaders and the actions, and none of them is
meant to be used by two threads at once.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from app import keymap, tasklog, waits
from app.actions import Action
from app.builders import RunnerSettings
from app.errors import NotAvailable, SluiceError
from app.index import Index
from app.lifecycle import BuildView
from app.model import Op
from app.queue import Queue
from app.rescue import rescue
from backends.base import Person, StateStore


@dataclass
class Services:
    store: StateStore
    index: Index
    queue: Queue
    actor: Person
    repo: str
    keys: keymap.Keymap = field(default_factory=keymap.default)
    artifact_path: Callable[[str], str] = lambda digest: ""
    live_root: str = ""  # where this machine's runner writes the output of running builds
    rescuer: Callable[[str], BuildView] | None = None  # `sluice rescue`'s service, wired to this machine
    status_file: str = ""  # the status file of this machine's runner (app/waits.py); "" for none
    settings: Callable[[], RunnerSettings] = lambda: RunnerSettings(())  # the local config's builders
    now: Callable[[], float] = time.time  # fixed in snapshot tests, so ages do not move
    lock: threading.RLock = field(default_factory=threading.RLock)
    notes: list[str] = field(default_factory=list)  # warnings the CLI would print to stderr

    def perform(self, action: Action) -> list[BuildView]:
        """An action as the CLI performs it: rescue re-imports results
        through its own service, every other op is one `Queue.perform`."""
        if action.op is Op.RESCUE:
            if self.rescuer is None:
                raise NotAvailable("this cockpit has no builders configured to rescue from",
                                   f"run `sluice rescue {action.build[:7]}` in a shell")
            return [self.rescuer(action.build)]
        return self.queue.perform(action)

    def find_log(self, detail: dict, arch: str, kind: str) -> tasklog.LogRef | None:
        """The seam to the builders' logs (see app/tasklog.py)."""
        return tasklog.locate(detail, arch, kind, self.artifact_path, self.live_root)

    def stored_log(self, live: tasklog.LogRef) -> tasklog.LogRef | None:
        """The stored copy of a live log whose attempt has ended (the same
        bytes, so a reader goes on from where it was), or None."""
        try:
            with self.lock:
                detail = self.queue.view(live.build).detail()
        except SluiceError:
            return None
        found = self.find_log(detail, live.arch, live.kind)
        return found if found is not None and not found.live else None

    def runner_status(self) -> dict | None:
        """What the live runner on this machine last wrote, or None."""
        return waits.read_status(self.status_file) if self.status_file else None

    def builders(self) -> waits.BuildersStatus:
        """The builders' health, slots and running tasks (a file read: no lock needed)."""
        return waits.builders_status(self.settings, self.runner_status())

    def waiting(self, view: BuildView) -> dict[str, str]:
        """Why each queued task of `view` waits, as `sluice show` says it.
        Call under `lock`: an `--after` build is read from the store."""
        return waits.explain(view, self.queue.view, self.settings, self.runner_status())

    @classmethod
    def from_context(cls, ctx, notes: list[str] | None = None) -> "Services":
        """From the CLI's `Context` (app/cli/context.py): same repo, identity,
        config and backends as every other command."""
        ctx.ready()
        keys = keymap.load(ctx.config)
        artifacts = ctx.backends.artifacts
        def rescuer(build: str) -> BuildView:
            return rescue(ctx.queue, build, ctx.settings, ctx.connect, artifacts, ctx.backends.reader)
        return cls(ctx.backends.store, ctx.index, ctx.queue, ctx.actor, ctx.paths.repo, keys,
                   artifacts.path, ctx.live_root, rescuer,
                   status_file=waits.status_path(ctx.backends.store.index_dir()),
                   settings=lambda: ctx.settings, notes=notes if notes is not None else [])
