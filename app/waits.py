"""Why a queued task waits, and the runner's status file that tells.

A running `sluice run` writes `<gitdir>/sluice/runner.json` on every change:
its builders (up, down and why, slots in use, running tasks, recent load)
and, per queued task, why it is not building. `list`, `show` and the TUI read
it; when no live runner wrote it, they say what they can tell from the queue
and the local config alone (waiting for another build, no builder for the
arch, no runner).
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from typing import Any, Callable, Mapping

from app.builders import RunnerSettings
from app.lifecycle import BuildView
from app.model import State

STATUS_FILE = "runner.json"
STALE_SECONDS = 30.0


def status_path(index_dir: str) -> str:
    return os.path.join(index_dir, STATUS_FILE)


def write_status(path: str, doc: Mapping[str, Any]) -> None:
    """Replace the status file in one step (readers never see half of it)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".runner-")
    with os.fdopen(fd, "w") as out:
        json.dump({**doc, "pid": os.getpid(), "hostname": socket.gethostname(), "written": time.time()}, out)
    os.replace(tmp, path)


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
            return f"waiting for build {after[:7]}, which this clone does not have (sync first)"
        if dep.state in (State.QUEUED, State.BUILDING, State.FAILED_TO_IMPORT):
            return after_reason(dep)
    if not any(arch in b.arches for b in settings.builders):
        return no_builder(arch)
    if not runner:
        return "no runner is running on this machine: start one with `sluice run`"
    return "waiting for the runner to pick it up"
