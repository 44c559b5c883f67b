"""Why a queued task waits, and the runner's status file that tells.

A running `sluice run` writes `<gitdir>/sluice/runner.json` on every change:
its builders (up, down and why, slots in use, running tasks, recent load)
and, per queued task, why it is not building. `list`, `show` and the TUI read
it; when no live runner wrote it, they say what they can tell from the queue
and the local config alone (waiting for another build, no builder for the
arch, no runner).

The file is written by another process (perhaps another version of sluice),
so `builders_status` reads it defensively into plain values: a field that is
missing or of the wrong type shows as empty, never as a crash.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from app.builders import RunnerSettings
from app.errors import ConfigError, SluiceError
from app.lifecycle import BuildView
from app.model import State
from backends.base import write_atomic

STATUS_FILE = "runner.json"
STALE_SECONDS = 30.0
NO_RUNNER = "no runner is running on this machine: start one with `sluice run`"


def status_path(index_dir: str) -> str:
    return os.path.join(index_dir, STATUS_FILE)


def write_status(path: str, doc: Mapping[str, Any]) -> None:
    """Replace the status file in one step (readers never see half of it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stamped = {**doc, "pid": os.getpid(), "hostname": socket.gethostname(), "written": time.time()}
    write_atomic(path, json.dumps(stamped).encode())


def read_status(path: str) -> dict[str, Any] | None:
    """The live runner's status, or None when no runner is running here."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("hostname") != socket.gethostname() or doc.get("stopped"):
        return None
    if time.time() - float(doc.get("written", 0)) > STALE_SECONDS or not alive(doc.get("pid")):
        return None
    return doc


def alive(pid: Any) -> bool:
    """Whether process `pid` (an int or its digits) runs on this machine."""
    if isinstance(pid, str) and pid.isdigit():
        pid = int(pid)
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def explain(view: BuildView, find: Callable[[str], BuildView], settings: Callable[[], RunnerSettings],
            status: Mapping[str, Any] | None) -> dict[str, str]:
    """arch -> why that queued task of `view` waits, as `show` and the cockpit
    say it. `find` looks a build up (for `--after`); `settings` is a callable
    because a broken builder table must not break listing: it becomes the
    reason instead."""
    def dependency(build_id: str) -> BuildView | None:
        try:
            return find(build_id)
        except SluiceError:
            return None
    try:
        chosen = settings()
    except ConfigError as exc:
        return {arch: f"the local config is broken: {exc.message}" for arch in queued_tasks(view)}
    return waiting(view, chosen, status, dependency)


def waiting(view: BuildView, settings: RunnerSettings, status: Mapping[str, Any] | None,
            dependency: Callable[[str], BuildView | None]) -> dict[str, str]:
    """arch -> why that queued task of `view` is not building yet."""
    queued = queued_tasks(view)
    if not queued:
        return {}
    told = ((status or {}).get("waiting") or {}).get(view.id) or {}
    found = {}
    for arch in queued:
        if isinstance(told.get(arch), str):
            found[arch] = told[arch]
        else:
            found[arch] = static_reason(view, arch, settings, dependency, runner=status is not None)
    return found


def after_reason(dep: BuildView) -> str:
    return f"waiting for build {dep.record.short} ({dep.record.nvr}) to reach the buildroot; it is {dep.state}"


def missing_dep(build_id: str) -> str:
    return f"waiting for build {build_id[:7]}, which this clone does not have (sync first)"


def no_builder(arch: str) -> str:
    return f"no builder for {arch}: add a [[builder]] with arches = [\"{arch}\"] to the local config"


def queued_tasks(view: BuildView) -> list[str]:
    """The arches of `view` that wait to be built."""
    if view.state not in (State.QUEUED, State.BUILDING):
        return []
    return [arch for arch, state in view.tasks.items() if state is State.QUEUED]


def static_reason(view: BuildView, arch: str, settings: RunnerSettings,
                  dependency: Callable[[str], BuildView | None], runner: bool) -> str:
    after = view.record.after
    if after:
        dep = dependency(after)
        if dep is None:
            return missing_dep(after)
        if dep.state in (State.QUEUED, State.BUILDING, State.FAILED_TO_IMPORT):
            return after_reason(dep)
    if not any(arch in b.arches for b in settings.builders):
        return no_builder(arch)
    if not runner:
        return NO_RUNNER
    return "waiting for the runner to pick it up"


# ---------------------------------------------------------------- the builders, as the runner tells


@dataclass(frozen=True)
class RunningTask:
    builder: str
    build: str  # the full build id
    nvr: str
    arch: str
    attempt: int
    started: str  # a timestamp, as events write them


@dataclass(frozen=True)
class BuilderStatus:
    name: str
    transport: str  # local or ssh
    host: str
    tool: str
    arches: tuple[str, ...]
    slots: int
    state: str = ""  # up, down, connecting, idle; "" when no runner tells
    reason: str = ""  # why it is down (the runner's words)
    busy: int = 0
    running: tuple[RunningTask, ...] = ()
    load: tuple[int, ...] = ()  # busy slots at each of the runner's recent status writes, oldest first
    note: str = ""  # what else to know (a builder the runner or the config does not have)


@dataclass(frozen=True)
class BuildersStatus:
    runner: bool  # a live runner on this machine wrote the status
    builders: tuple[BuilderStatus, ...]
    problem: str = ""  # why the configured builders cannot be read

    @property
    def running(self) -> tuple[RunningTask, ...]:
        return tuple(t for b in self.builders for t in b.running)


def builders_status(settings: Callable[[], RunnerSettings], status: Mapping[str, Any] | None) -> BuildersStatus:
    """Each builder's health, slots and running tasks: the live runner's
    word when there is one (`read_status`), else the local config's builders.
    A builder only one of them has is listed with a note saying so."""
    try:
        configured, problem = settings().builders, ""
    except ConfigError as exc:
        configured, problem = (), f"the local config is broken: {exc.message}"
    if status is None:
        return BuildersStatus(False, tuple(BuilderStatus(b.name, b.transport, b.host, b.tool, b.arches, b.slots)
                                           for b in configured), problem)
    told = [_told(entry) for entry in _list(status.get("builders")) if isinstance(entry, dict)]
    names = {b.name for b in told}
    if configured and not problem:
        known = {b.name for b in configured}
        told = [b if b.name in known else replace(b, note="not in the local config any more") for b in told]
        told += [BuilderStatus(b.name, b.transport, b.host, b.tool, b.arches, b.slots,
                               note="not used by the running runner: restart `sluice run` to use it")
                 for b in configured if b.name not in names]
    return BuildersStatus(True, tuple(told), problem)


def _told(entry: Mapping[str, Any]) -> BuilderStatus:
    name = _str(entry.get("name")) or "?"
    running = tuple(RunningTask(name, _str(t.get("build")), _str(t.get("nvr")), _str(t.get("arch")),
                                _int(t.get("n")), _str(t.get("started")))
                    for t in _list(entry.get("running")) if isinstance(t, dict))
    return BuilderStatus(name, _str(entry.get("transport")), _str(entry.get("host")), _str(entry.get("tool")),
                         tuple(_str(a) for a in _list(entry.get("arches"))), _int(entry.get("slots")),
                         _str(entry.get("state")), _str(entry.get("reason")), _int(entry.get("busy")), running,
                         tuple(_int(n) for n in _list(entry.get("load"))))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
