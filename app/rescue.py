"""Rescue: import a failed-to-import build's results again, without a rebuild.

A build is failed-to-import when its tasks built but their results could not
be fetched or verified (a dropped connection, a digest that did not match).
The results stay in the builder's result folder; `sluice rescue ID` fetches
and verifies them again from there (recorded in the task's last attempt) and,
when every such task's results pass, writes one `rescue` event: built.
"""
from __future__ import annotations

from typing import Callable

from app import attempt, tasks
from app.attempt import ImportProblem
from app.builders import Builder, RunnerSettings
from app.errors import BackendError, NotFound, SluiceError, StateConflict
from app.lifecycle import BuildView
from app.model import Op, State
from app.queue import Queue
from backends.base import ArtifactStore, PackageReader, Progress, Transport


def rescue(queue: Queue, build: str, settings: RunnerSettings, connect: Callable[[Builder], Transport],
           store: ArtifactStore, reader: PackageReader,
           progress: Callable[[str], Progress | None] = lambda what: None) -> BuildView:
    view = queue.view(build)
    if view.state is not State.FAILED_TO_IMPORT:
        raise StateConflict(f"cannot rescue {view.record.nvr} ({view.record.short}): it is {view.state}",
                            "rescue is for builds whose results could not be imported")
    # refuse early (permission, state) with the same check the write makes
    queue.check(view.id, Op.RESCUE, data=rescue_data(view))
    found, logs, built, done = [], {}, {}, []
    try:
        for arch, state in view.tasks.items():
            if state is not State.FAILED_TO_IMPORT:
                continue
            last = tasks.attempts(view)[arch][-1]
            builder = _builder(settings, last.builder, view, arch)
            host = connect(builder)
            done.append((host, last.resultdir.rsplit("/", 1)[0]))
            try:
                artifacts, arch_logs = attempt.collect(host, last.resultdir, view.record, arch, store, reader,
                                                       progress=progress)
            except ImportProblem as exc:
                raise BackendError(f"still cannot import {view.record.short} on {arch}: {exc}",
                                   f"the results stay in {last.resultdir} on {builder.name}; "
                                   "resubmit the build if they are lost for good") from exc
            found += [a.to_json() for a in artifacts]
            logs[arch] = arch_logs
            built[arch] = str(State.BUILT)
        rescued = queue.record(view.id, Op.RESCUE, data={"tasks": built, "artifacts": found, "logs": logs})
        for host, taskdir in done:  # recorded: the builders' copies are no longer needed
            try:
                host.run(["rm", "-rf", "--", taskdir], timeout=attempt.SLOW_COMMAND)
            except SluiceError:
                pass
        return rescued
    finally:
        for host, _ in done:
            host.close()


def rescue_data(view: BuildView) -> dict:
    """What a rescue changes: every failed-to-import task becomes built."""
    return {"tasks": {arch: str(State.BUILT) for arch, state in view.tasks.items()
                      if state is State.FAILED_TO_IMPORT}}


def _builder(settings: RunnerSettings, name: str, view: BuildView, arch: str) -> Builder:
    for builder in settings.builders:
        if builder.name == name:
            return builder
    raise NotFound(f"{view.record.short} built on {arch} on builder {name!r}, which this machine's config "
                   "does not declare", "run `sluice rescue` where that builder is configured")
