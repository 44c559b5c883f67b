"""Build logs: the live output while a task builds, the stored logs after.

While an attempt runs, the runner appends the build's output, as it streams
from the host, to `<artifacts>/live/<build id>/<arch>-<attempt>.log`. When
the attempt ends the output goes into the artifact store and its digest into
the `finish` event (`attempt.log`), with the tool's own logs (`build.log`,
`root.log`, `state.log`) beside it. `sluice log ID --follow` (and the TUI)
read the live file from the start and keep reading until the task's attempt
has finished, so no line is missed between the two.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from app import tasks
from app.errors import NotFound, UsageError
from app.lifecycle import BuildView
from app.model import State
from backends.base import ArtifactStore

OUTPUT = "output"  # the stream the build printed (what --follow shows)
_CHUNK = 1 << 16


def live_path(root: str, build_id: str, arch: str, n: int) -> str:
    return os.path.join(root, build_id, f"{arch}-{n}.log")


@dataclass(frozen=True)
class LogRef:
    """Where one log of one task is: a live file still growing, or stored."""

    arch: str
    name: str
    path: str
    live: bool


def locate(view: BuildView, arch: str | None, name: str, live_root: str, store: ArtifactStore) -> LogRef:
    """The log `name` of the task `arch` (the only or first building arch
    when not given), live while its attempt runs."""
    arch = arch or _default_arch(view)
    if arch not in view.record.arches:
        raise UsageError(f"{view.record.short} has no {arch} task", f"its arches are {', '.join(view.record.arches)}")
    attempts = tasks.attempts(view).get(arch, [])
    if not attempts:
        raise NotFound(f"{view.record.nvr} ({view.record.short}) has not started building on {arch} yet",
                       "see why it waits with `sluice show`")
    last = attempts[-1]
    if last.ended is None and name == OUTPUT and view.tasks.get(arch) is State.BUILDING:
        path = live_path(live_root, view.id, arch, last.n)
        if not os.path.exists(path):
            raise NotFound(f"{view.record.short} is building on {arch} on {last.builder} ({last.host}) for "
                           "another machine's runner: its live log is there",
                           "read it on the machine that runs the build, or wait until it ends and sync")
        return LogRef(arch, name, path, True)
    stored = tasks.logs(view, arch)
    if name not in stored:
        known = ", ".join(sorted(stored)) or "none"
        raise NotFound(f"no {name} for {view.record.short} on {arch} (logs: {known})",
                       "the tool's logs are there once an attempt has ended")
    if not store.has(stored[name]):
        raise NotFound(f"the {name} of {view.record.short} ({stored[name][:12]}) is not in this machine's "
                       "artifact store", "read it on the machine that ran the build")
    return LogRef(arch, name, store.path(stored[name]), False)


def _default_arch(view: BuildView) -> str:
    for wanted in (State.BUILDING, State.FAILED, State.FAILED_TO_IMPORT):
        for arch, state in view.tasks.items():
            if state is wanted:
                return arch
    return view.record.arches[0]


def copy(path: str, write: Callable[[bytes], None]) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            write(chunk)


def follow(path: str, finished: Callable[[], bool], write: Callable[[bytes], None], poll: float = 0.05) -> None:
    """Write the file from its start, then what is appended, until
    `finished()` says the attempt ended and everything was read."""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if chunk:
                write(chunk)
                continue
            if finished():
                rest = f.read()
                if rest:
                    write(rest)
                return
            time.sleep(poll)
