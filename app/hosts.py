"""Builder hosts as the runner sees them: connection, slots, leftovers.

A host is made ready once per connection (`prepare`: the build tool answers,
the workdir exists); `builders --check` runs the same steps plus a disk
check. Builds that outlive their runner or their connection (the runner was
killed, the connection dropped) keep running on the host; their process
groups are remembered in `<gitdir>/sluice/leftovers.json` and ended the next
time sluice connects to that host, once the group is proven to be that
build (its environment names the task's folder).
"""
from __future__ import annotations

import collections
import enum
import fcntl
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from app import builds, tasks
from app.attempt import MARKER, Job, text_of
from app.builders import Builder
from app.buildroot import repo_dir
from app.errors import SluiceError
from app.index import Filters, Index
from app.model import Op, State, clean_text, timestamp
from app.waits import alive
from backends.base import BuildTool, Snapshot, Transport, write_atomic

MIN_FREE_GB = 5
# Is a process of group $1 a build of task folder $2? (its environment says so)
_OURS = """\
g=$1; want=$2
for stat in /proc/[0-9]*/stat; do
  pid=${stat#/proc/}; pid=${pid%/stat}
  pgrp=$(sed 's/^.*) //' "$stat" 2>/dev/null | cut -d' ' -f3)
  [ "$pgrp" = "$g" ] || continue
  tr '\\0' '\\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF -- "$want" && exit 0
done
exit 1
"""


class HostState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


@dataclass
class Host:
    builder: Builder
    transport: Transport | None = None
    state: HostState = HostState.IDLE
    reason: str = ""
    retry_at: float = 0.0
    workdir: str = ""
    running: dict[tuple[str, str], Job] = field(default_factory=dict)
    load: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))

    @property
    def free(self) -> int:
        return self.builder.slots - len(self.running)

    def status(self) -> dict[str, Any]:
        """This builder in the runner's status file (see app/waits.py)."""
        b = self.builder
        return {"name": b.name, "transport": b.transport, "host": b.host, "tool": b.tool, "arches": list(b.arches),
                "state": str(self.state), "reason": self.reason, "slots": b.slots, "busy": len(self.running),
                "running": [{"build": j.record.id, "nvr": j.record.nvr, "arch": j.arch, "n": j.n,
                             "started": j.started} for j in self.running.values()]}

    def repo_url(self, root: str, target: str, port: int) -> str:
        """The target's buildroot repo as this host reaches it."""
        if self.builder.transport == "local":
            return "file://" + repo_dir(root, target)
        return f"http://127.0.0.1:{port}/{target}/buildroot/"


def prepare(transport: Transport, builder: Builder, tool: BuildTool) -> str:
    """Check the tool and make the workdir; returns the workdir's absolute path."""
    probe = transport.run(tool.probe())
    if probe.status != 0:
        said = clean_text(text_of(probe.stderr + probe.stdout).strip(), 300)
        other = ", or set tool = \"rpmbuild\" for this builder" if builder.tool == "mock" else ""
        raise SluiceError(f"{builder.tool} is not usable on {builder.host}" + (f": {said}" if said else ""),
                          f"install {builder.tool} there (builder {builder.name}){other}")
    made = transport.run(["sh", "-c", 'mkdir -p -- "$1" && cd -- "$1" && pwd -P', "sh", builder.workdir])
    if made.status != 0:
        raise SluiceError(f"cannot use workdir {builder.workdir} on {builder.host}: "
                          f"{clean_text(text_of(made.stderr).strip(), 200)}",
                          "set workdir for this builder to a folder its user may write")
    return text_of(made.stdout).strip()


def check(builder: Builder, connect: Callable[[Builder], Transport],
          tool_for: Callable[[str], BuildTool]) -> dict[str, Any]:
    """`builders --check` for one builder: {problems: [...], summary}."""
    try:
        host = connect(builder)
        try:
            workdir = prepare(host, builder, tool_for(builder.tool))
            df = host.run(["df", "-Pk", "--", workdir])
            fields = text_of(df.stdout).splitlines()[-1].split() if df.status == 0 and df.stdout else []
            free = int(fields[3]) // (1024 * 1024) if len(fields) > 3 and fields[3].isdigit() else None
        finally:
            host.close()
    except Exception as exc:  # whatever fails, the check says so and the other builders go on
        return {"problems": [said(exc)], "summary": ""}
    verified = "host key verified, " if builder.transport == "ssh" else ""
    summary = f"{verified}{builder.tool} found, {free} GB free in {workdir}"
    if free is None:
        return {"problems": [f"cannot tell the free space in {workdir} on {builder.host}"], "summary": summary}
    if free < MIN_FREE_GB:
        return {"problems": [f"only {free} GB free in {workdir} on {builder.host}; builds need more"],
                "summary": summary}
    return {"problems": [], "summary": summary}


def reclaim(index: Index, snap: Snapshot, write: Callable[..., bool]) -> None:
    """Tasks this machine's runner claimed but never finished (it was
    killed) go back to the queue, so nothing waits forever; their builds
    are ended when their hosts are next connected (`Leftovers`)."""
    me = socket.gethostname() + ":"
    for row in index.rows(Filters(states=(str(State.BUILDING),))):
        view = builds.load_build(snap, row["id"])
        found = tasks.attempts(view)
        for arch, state in view.tasks.items():
            runner = found[arch][-1].runner if found.get(arch) else ""
            if state is State.BUILDING and runner.startswith(me) and not alive(runner[len(me):]):
                doc = {**found[arch][-1].to_json(), "ended": timestamp(), "error": tasks.STOPPED[1],
                       "given_back": True}
                write(view.id, Op.FINISH, arch=arch, reason=tasks.STOPPED[1],
                      data={"tasks": {arch: str(State.QUEUED)}, "attempt": doc})


def said(exc: Exception) -> str:
    """An error as the user reads it (a bug shows its type)."""
    return str(exc) if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"


class Leftovers:
    """Builds running on hosts that no runner watches any more. The file is
    shared by every runner of this repo on this machine: each change is a
    read-modify-write under an exclusive lock. It is a best effort: when it
    cannot be written, builds are not lost, only possibly left running."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def add(self, job: Job) -> None:
        if job.pgid is not None:
            self._change(lambda entries: entries + [{"builder": job.builder, "pgid": job.pgid,
                                                     "taskdir": job.taskdir, "runner": os.getpid()}])

    def drop(self, job: Job) -> None:
        self._change(lambda entries: [e for e in entries if e.get("taskdir") != job.taskdir])

    def builders(self) -> set[str]:
        return {str(e.get("builder")) for e in self._read()}

    def end(self, builder: str, transport: Transport, note: Callable[[str], None]) -> None:
        """End every leftover build of `builder` (called once connected): the
        ones whose runner is gone, or is this one (its connection dropped).
        One that cannot be ended is said and forgotten, never fatal."""
        mine = os.getpid()
        for entry in [e for e in self._read() if e.get("builder") == builder
                      and (e.get("runner") == mine or not alive(e.get("runner")))]:
            pgid, taskdir = entry.get("pgid"), str(entry.get("taskdir"))
            try:
                if isinstance(pgid, int) and pgid > 1:
                    ours = transport.run(["sh", "-c", _OURS, "sh", str(pgid), f"{MARKER}={taskdir}"])
                    if ours.status == 0:
                        transport.end_group(pgid)
                        note(f"ended a leftover build on {builder} ({taskdir})")
            except SluiceError as exc:
                note(f"could not end a leftover build on {builder} ({taskdir}, process group {pgid}): "
                     f"{exc}; end it by hand")
            self._change(lambda entries: [e for e in entries if e.get("taskdir") != taskdir])

    def _read(self) -> list[dict]:
        try:
            with open(self.path) as f:
                entries = json.load(f)
        except (OSError, ValueError):
            return []
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def _change(self, edit: Callable[[list[dict]], list[dict]]) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with self.lock, open(self.path + ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                write_atomic(self.path, json.dumps(edit(self._read())).encode())
        except OSError:
            pass  # see the class docstring
