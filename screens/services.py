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

from app import keymap, tasklog
from app.index import Index
from app.queue import Queue
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
    now: Callable[[], float] = time.time  # fixed in snapshot tests, so ages do not move
    lock: threading.RLock = field(default_factory=threading.RLock)
    notes: list[str] = field(default_factory=list)  # warnings the CLI would print to stderr

    def find_log(self, detail: dict, arch: str, kind: str) -> tasklog.LogRef | None:
        """The seam to the builders' logs (see app/tasklog.py)."""
        return tasklog.locate(detail, arch, kind, self.artifact_path)

    @classmethod
    def from_context(cls, ctx, notes: list[str] | None = None) -> "Services":
        """From the CLI's `Context` (app/cli/context.py): same repo, identity,
        config and backends as every other command."""
        ctx.ready()
        keys = keymap.load(ctx.config)
        artifacts = ctx.backends.artifacts
        return cls(ctx.backends.store, ctx.index, ctx.queue, ctx.actor, ctx.paths.repo, keys,
                   artifacts.path, notes=notes if notes is not None else [])
