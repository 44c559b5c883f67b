"""`sluice run`: claim queued tasks, build them on builder hosts, record it all.

One main thread owns every state change; worker threads only talk to hosts
(see `app.attempt`) and hand back an `Outcome`. Each tick the main thread:

1. when the state ref moved, refreshes the index, republishes the buildroot
   repos and tells workers whose task was cancelled to kill their build;
2. writes a `finish` event for each attempt that ended (a lost host puts the
   task back in the queue for another host, up to `[runner] attempts`);
3. starts queued tasks on builders with a free slot for their arch. The
   claim is a `start` event written by compare-and-swap and validated
   against the task's state, so two runners never build one task twice;
4. writes the status file that tells `list` and `show` why tasks wait.

Hosts are connected in the background; a host that cannot be reached is
marked down with the reason and tried again later, and the others go on.
"""
from __future__ import annotations

import collections
import json
import os
import queue as queues
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from app import attempt, builds, logs, tasks, waits
from app.attempt import Job, Outcome
from app.builders import Builder, RunnerSettings
from app.buildroot import NEVER, Buildroots, repo_dir
from app.errors import NotFound, SluiceError, StateConflict
from app.index import Filters, Index
from app.lifecycle import BuildView
from app.model import MAX_TEXT, Op, State, timestamp
from app.queue import Queue
from backends.base import ArtifactStore, BuildTool, PackageReader, Progress, Snapshot, StateStore, Transport

RETRY_DOWN = 30.0  # seconds before a host that was down is tried again
RECHECK = 5.0  # seconds between looks at the queue when nothing happened
RUNNER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Host:
    """A builder as the runner sees it: connection, slots, running jobs."""

    builder: Builder
    transport: Transport | None = None
    state: str = "idle"  # idle, connecting, up, down
    reason: str = ""
    retry_at: float = 0.0
    workdir: str = ""
    repo_port: int = 0
    running: dict[tuple[str, str], Job] = field(default_factory=dict)
    load: collections.deque = field(default_factory=lambda: collections.deque(maxlen=60))

    @property
    def free(self) -> int:
        return self.builder.slots - len(self.running)

    def repo_url(self, root: str, target: str) -> str:
        if self.builder.transport == "local":
            return "file://" + repo_dir(root, target)
        return f"http://127.0.0.1:{self.repo_port}/{target}/buildroot/"


@dataclass(frozen=True)
class Wiring:
    """What the runner needs from outside: hosts, tools, the repo server."""

    connect: Callable[[Builder], Transport]
    tool: Callable[[str], BuildTool]
    serve_repos: Callable[[], int]  # starts the repo server (once); its port here
    progress: Callable[[str], Progress | None] = lambda what: None


class Runner:
    def __init__(self, store: StateStore, index: Index, queue: Queue, artifacts: ArtifactStore,
                 reader: PackageReader, settings: RunnerSettings, wiring: Wiring, buildroots: Buildroots,
                 live_root: str, status_file: str, note: Callable[[str], None], poll: float = 0.5) -> None:
        self.store, self.index, self.queue, self.artifacts, self.reader = store, index, queue, artifacts, reader
        self.settings, self.wiring, self.buildroots = settings, wiring, buildroots
        self.live_root, self.status_file, self.note, self.poll = live_root, status_file, note, poll
        self.hosts = [Host(b) for b in settings.builders]
        self.done: queues.Queue[tuple[Job, Host, Outcome]] = queues.Queue()
        self.seen: str | None = None
        self.waiting: dict[str, dict[str, str]] = {}
        self.dirty = True  # something happened that may let a task start
        self._looked = 0.0  # when the queue was last looked at
        self._status: tuple[str, float] = ("", 0.0)  # what was last written, when

    # ------------------------------------------------------------ the loop

    def run(self, once: bool = False, stop: threading.Event | None = None) -> int:
        """Build until stopped (or, with `once`, until nothing more can start now)."""
        stop = stop or threading.Event()
        try:
            if any(h.builder.transport == "ssh" for h in self.hosts):
                self.wiring.serve_repos()  # started here, once, before any worker asks for it
            self._reclaim_orphans()
            while not stop.is_set():
                busy = self.tick()
                if once and not busy:
                    break
                self._await(self.poll)
        finally:
            self._shutdown()
        return 0

    def tick(self) -> bool:
        """One round; False when nothing runs, connects or is due to start."""
        moved = self._catch_up()
        finished = self._finish_done()
        started = False
        if self.dirty or moved or finished or time.monotonic() - self._looked > RECHECK:
            self.dirty, self._looked = False, time.monotonic()
            started = self._dispatch()
        self._write_status()
        running = any(h.running for h in self.hosts) or any(h.state == "connecting" for h in self.hosts)
        return bool(moved or finished or started or running or self.store.head() != self.seen)

    def _await(self, seconds: float) -> None:
        try:
            item = self.done.get(timeout=seconds)
        except queues.Empty:
            return
        self.done.put(item)  # handled by the next tick, in order

    def _catch_up(self) -> bool:
        head = self.store.head()
        if head == self.seen:
            return False
        snap = self.store.snapshot(head)
        self.index.refresh(snap)
        self.buildroots.publish(snap)
        self.seen = head
        for host in self.hosts:
            for (build_id, arch), job in list(host.running.items()):
                if builds.load_build(snap, build_id).tasks.get(arch) is not State.BUILDING:
                    job.cancel.set()
        return True

    # ------------------------------------------------------------ dispatch

    def _dispatch(self) -> bool:
        snap = self.store.snapshot(self.seen)
        running = {key for h in self.hosts for key in h.running}
        rows = self.index.rows(Filters(states=(str(State.QUEUED), str(State.BUILDING))))
        waiting: dict[str, dict[str, str]] = {}
        started = False
        for row in reversed(rows):  # oldest first
            view = builds.load_build(snap, row["id"])
            due = [a for a, s in view.tasks.items() if s is State.QUEUED and (view.id, a) not in running]
            if not due or view.contested:
                continue
            blocked = self._blocked(snap, view)
            for arch in due:
                chosen = blocked or self._pick(view, arch)
                if isinstance(chosen, Host):
                    started |= self._start(snap, view, arch, chosen)
                else:
                    waiting.setdefault(view.id, {})[arch] = chosen
        self.waiting = waiting
        return started

    def _blocked(self, snap: Snapshot, view: BuildView) -> str | None:
        """Why `view` may not start yet because of the build it comes --after."""
        if not self.artifacts.has(str(view.record.srpm.get("sha256"))):
            return ("its SRPM is not in this machine's artifact store (it was submitted on another "
                    "clone): run a runner where it was submitted")
        if not view.record.after:
            return None
        try:
            dep = builds.load_build(snap, view.record.after)
        except NotFound:
            return f"waiting for build {view.record.after[:7]}, which this clone does not have (sync first)"
        if dep.state in NEVER:
            self._write(view.id, Op.CANCEL, reason=f"build {dep.record.short} ({dep.record.nvr}) it comes "
                        f"--after is {dep.state} and will never reach the buildroot")
            return f"cancelled: {dep.record.short} is {dep.state}"
        if not self.buildroots.holds(dep.record.target, dep.id):
            return f"waiting for build {dep.record.short} ({dep.record.nvr}) to reach the buildroot; it is {dep.state}"
        return None

    def _pick(self, view: BuildView, arch: str) -> Host | str:
        hosts = [h for h in self.hosts if arch in h.builder.arches]
        if not hosts:
            return f"no builder for {arch}: add a [[builder]] with arches = [\"{arch}\"] to the local config"
        now = time.monotonic()
        for host in hosts:
            if host.state == "idle" or (host.state == "down" and now >= host.retry_at):
                self._connect(host)
        up = [h for h in hosts if h.state == "up" and h.free > 0]
        if up:
            lost = {a.builder for a in tasks.current_round(view, arch) if a.result == str(State.QUEUED)}
            return max([h for h in up if h.builder.name not in lost] or up, key=lambda h: h.free)
        if all(h.state == "down" for h in hosts):
            return "builders down: " + "; ".join(f"{h.builder.name}: {h.reason}" for h in hosts)
        if any(h.state == "connecting" for h in hosts):
            return "connecting to " + ", ".join(h.builder.name for h in hosts if h.state == "connecting")
        return f"all {sum(h.builder.slots for h in hosts if h.state == 'up')} slots for {arch} are busy"

    def _start(self, snap: Snapshot, view: BuildView, arch: str, host: Host) -> bool:
        record = view.record
        n = len(tasks.current_round(view, arch)) + 1
        taskdir = f"{host.workdir}/{record.id[:12]}-{arch}-{n}"
        target = builds.load_target(snap, record.target)
        data = {"tasks": {arch: str(State.BUILDING)},
                "attempt": {"n": n, "builder": host.builder.name, "host": host.builder.host,
                            "started": timestamp(), "resultdir": f"{taskdir}/result", "runner": RUNNER_ID},
                "buildroot": list(self.buildroots.members.get(record.target, ()))}
        if not self._write(record.id, Op.START, arch=arch, data=data):
            return False
        repos = tuple(r.url for r in target.external_repos)  # the buildroot goes first, in _work
        config = host.builder.mock_config_for(record.target, arch, target.mock_config_for(arch))
        job = Job(record, arch, n, host.builder.name, taskdir, config, repos,
                  logs.live_path(self.live_root, record.id, arch, n), started=data["attempt"]["started"])
        host.running[(record.id, arch)] = job
        self.note(f"building {record.nvr} ({record.short}) for {arch} on {host.builder.name}, attempt {n}")
        threading.Thread(target=self._work, args=(job, host), daemon=True,
                         name=f"build-{record.short}-{arch}").start()
        return True

    def _work(self, job: Job, host: Host) -> None:
        try:
            if host.builder.transport == "ssh":  # a forward lives as long as its connection: ask each time
                host.repo_port = host.transport.forward(self.wiring.serve_repos())
            job.repos = (host.repo_url(self.buildroots.root, job.record.target), *job.repos)
            outcome = attempt.run(job, host.transport, self.wiring.tool(host.builder.tool), self.artifacts,
                                  self.reader, self.wiring.progress)
        except SluiceError as exc:
            outcome = Outcome(State.QUEUED, error=f"{host.builder.name}: {exc.message}")
        except Exception as exc:  # a bug must not lose the task: it goes back to the queue
            outcome = Outcome(State.QUEUED, error=f"internal error on {host.builder.name}: {exc!r}")
        self.done.put((job, host, outcome))

    # ------------------------------------------------------------ results

    def _finish_done(self) -> bool:
        wrote = False
        while True:
            try:
                job, host, outcome = self.done.get_nowait()
            except queues.Empty:
                return wrote
            host.running.pop((job.record.id, job.arch), None)
            wrote |= self._finish(job, host, outcome)

    def _finish(self, job: Job, host: Host, outcome: Outcome) -> bool:
        name = f"{job.record.nvr} ({job.record.short}) on {job.arch}"
        result, error = outcome.result, outcome.error
        if result is State.CANCELLED and not job.stopping:
            self.note(f"cancelled {name}: killed the build on {host.builder.name}")
            self._clean(host, job)
            return False
        if result is State.CANCELLED:
            result, error = State.QUEUED, "the runner stopped; queued again"
        if result is State.QUEUED and outcome.error and not job.stopping:
            self._down(host, outcome.error)
            if job.n >= self.settings.attempts:
                result, error = State.FAILED, f"gave up after {job.n} attempts: {outcome.error}"
        doc = {"n": job.n, "builder": job.builder, "host": host.builder.host, "started": job.started,
               "ended": outcome.ended, "exit": outcome.exit, "log": outcome.log, "error": error[:1000],
               "resultdir": job.resultdir}
        data = {"tasks": {job.arch: str(result)}, "attempt": doc,
                "artifacts": [a.to_json() for a in outcome.artifacts], "logs": outcome.logs,
                "missing": list(outcome.missing)}
        if not self._write(job.record.id, Op.FINISH, arch=job.arch, data=data, reason=error[:MAX_TEXT]):
            return False
        self.note(f"{result} {name}" + (f": {error.splitlines()[-1] if error else ''}" if error else ""))
        if result in (State.BUILT, State.FAILED):
            self._clean(host, job)
        return True

    def _write(self, build_id: str, op: Op, **how) -> bool:
        """One runner event; False when the build moved on meanwhile (a
        cancel, another runner's claim), which is said and never fatal."""
        try:
            self.queue.record(build_id, op, **how)
            return True
        except StateConflict as exc:
            self.note(f"skipped {op} of {build_id[:7]}: {exc.message}")
            return False

    def _clean(self, host: Host, job: Job) -> None:
        if host.transport is not None and host.state == "up":
            try:
                host.transport.run(["rm", "-rf", "--", job.taskdir])
            except SluiceError:
                pass  # a leftover folder on a host is not worth failing for
        if os.path.exists(job.live_log):
            os.unlink(job.live_log)

    # ------------------------------------------------------------ hosts

    def _connect(self, host: Host) -> None:
        host.state, host.reason = "connecting", ""
        threading.Thread(target=self._open, args=(host,), daemon=True, name=f"connect-{host.builder.name}").start()

    def _open(self, host: Host) -> None:
        builder = host.builder
        try:
            transport = host.transport or self.wiring.connect(builder)
            tool = self.wiring.tool(builder.tool)
            probe = transport.run(tool.probe())
            if probe.status != 0:
                raise SluiceError(f"{builder.tool} is not usable on {builder.host}",
                                  f"install {builder.tool} there, or set tool = \"rpmbuild\" for this builder")
            made = transport.run(["sh", "-c", 'mkdir -p -- "$1" && cd -- "$1" && pwd -P', "sh", builder.workdir])
            if made.status != 0:
                raise SluiceError(f"cannot use workdir {builder.workdir} on {builder.host}: "
                                  f"{attempt.text_of(made.stderr).strip()[:200]}")
            host.workdir = attempt.text_of(made.stdout).strip()
            host.transport, host.state = transport, "up"
            self.dirty = True
            self.note(f"builder {builder.name} is up")
        except SluiceError as exc:
            self._down(host, str(exc))

    def _down(self, host: Host, reason: str) -> None:
        if host.transport is not None:
            try:
                host.transport.close()
            except Exception:  # closing a dead connection may fail in many ways; it is closed either way
                pass
        host.transport = None
        host.state, host.reason, host.retry_at = "down", reason, time.monotonic() + RETRY_DOWN
        self.dirty = True
        self.note(f"builder {host.builder.name} is down: {reason}")

    # ------------------------------------------------------------ status and upkeep

    def _write_status(self) -> None:
        """The status file, when it changed or every RECHECK seconds (which
        keeps it fresh for readers and samples each builder's load)."""
        doc = {"builders": [{"name": h.builder.name, "transport": h.builder.transport, "host": h.builder.host,
                             "tool": h.builder.tool, "arches": list(h.builder.arches), "state": h.state,
                             "reason": h.reason, "slots": h.builder.slots, "busy": len(h.running),
                             "running": [{"build": j.record.id, "nvr": j.record.nvr, "arch": j.arch, "n": j.n,
                                          "started": j.started} for j in h.running.values()]}
                            for h in self.hosts],
               "waiting": self.waiting}
        text, now = json.dumps(doc, sort_keys=True), time.monotonic()
        if text == self._status[0] and now - self._status[1] < RECHECK:
            return
        if now - self._status[1] >= RECHECK:
            for host in self.hosts:
                host.load.append(len(host.running))
        for entry, host in zip(doc["builders"], self.hosts):
            entry["load"] = list(host.load)
        waits.write_status(self.status_file, doc)
        self._status = (text, now)

    def _reclaim_orphans(self) -> None:
        """Tasks this machine's runner claimed but never finished (it was
        killed) go back to the queue, so nothing waits forever."""
        snap = self.store.snapshot()
        self.index.refresh(snap)
        me = socket.gethostname() + ":"
        for row in self.index.rows(Filters(states=(str(State.BUILDING),))):
            view = builds.load_build(snap, row["id"])
            for arch, state in view.tasks.items():
                started = [s.event for s in view.events if s.event.op is Op.START and s.event.arch == arch]
                runner = str(started[-1].data.get("attempt", {}).get("runner", "")) if started else ""
                if state is State.BUILDING and runner.startswith(me) and not waits.alive(runner[len(me):]):
                    self._write(view.id, Op.FINISH, arch=arch, reason="the runner that claimed it stopped",
                                data={"tasks": {arch: str(State.QUEUED)}})

    def _shutdown(self) -> None:
        jobs = [(job, host) for host in self.hosts for job in host.running.values()]
        for job, _ in jobs:
            job.stopping = True
            job.cancel.set()
        deadline = time.monotonic() + 10
        while any(h.running for h in self.hosts) and time.monotonic() < deadline:
            self._await(0.2)
            self._finish_done()
        for host in self.hosts:
            if host.transport is not None:
                host.transport.close()
        waits.write_status(self.status_file, {"builders": [], "waiting": {}, "stopped": True})
