"""`sluice run`: claim queued tasks, build them on builder hosts, record it all.

One main thread owns every state change; worker threads only talk to hosts
(see `app.attempt`) and hand back an `Outcome`. Each tick the main thread:

1. when the state ref moved, tells workers whose task was cancelled to kill
   their build, refreshes the index, republishes the buildroot repos and
   supersedes older unsigned builds of newly approved packages;
2. writes a `finish` event for each attempt that ended (a lost host puts the
   task back in the queue for another host, up to `[runner] attempts`); a
   write that fails is kept and tried again, never dropped;
3. starts queued tasks on builders with a free slot for their arch. The
   claim is a `start` event written by compare-and-swap and validated
   against the task's state, so two runners never build one task twice;
4. writes the status file that tells `list` and `show` why tasks wait.

Hosts are connected in the background (`app.hosts`); one that cannot be
reached is down with the reason and tried again later. The main thread does
no remote work, so a cancel is seen within one tick.
"""
from __future__ import annotations

import json
import os
import queue as queues
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from app import attempt, builds, hosts, logs, tasks, waits
from app.attempt import Job, Outcome
from app.builders import Builder, RunnerSettings
from app.buildroot import NEVER, Buildroots
from app.errors import NotFound, SluiceError, StateConflict
from app.hosts import Host, HostState, Leftovers
from app.index import Filters, Index
from app.lifecycle import BuildView
from app.model import MAX_TEXT, Op, State, clean_text, timestamp
from app.queue import Queue
from app.supersede import supersede
from backends.base import (ArtifactStore, BackendError, BuildTool, Disconnected, PackageReader, Progress, Snapshot, StateStore,
                           Transport)

RETRY_DOWN = 30.0  # seconds before a host that was down is tried again
RECHECK = 5.0  # seconds between looks at the queue when nothing happened
GIVE_UP_WRITING = 24  # tries (RECHECK apart) to record a finished attempt before giving up
RUNNER_ID = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Wiring:
    """What the runner needs from outside: hosts, tools, the repo server."""

    connect: Callable[[Builder], Transport]
    tool: Callable[[str], BuildTool]
    serve_repos: Callable[[], int]  # starts the repo server (once); its port here
    progress: Callable[[str], Progress | None] = lambda what: None
    housekeeping: Callable[[], None] = lambda: None  # called every round (the mail outbox's retries)


class Runner:
    def __init__(self, store: StateStore, index: Index, queue: Queue, artifacts: ArtifactStore,
                 reader: PackageReader, settings: RunnerSettings, wiring: Wiring, buildroots: Buildroots,
                 live_root: str, state_dir: str, note: Callable[[str], None], poll: float = 0.5) -> None:
        self.store, self.index, self.queue, self.artifacts, self.reader = store, index, queue, artifacts, reader
        self.settings, self.wiring, self.buildroots = settings, wiring, buildroots
        self.live_root, self.note, self.poll = live_root, note, poll
        self.status_file = waits.status_path(state_dir)
        self.leftovers = Leftovers(os.path.join(state_dir, "leftovers.json"))
        self.hosts = [Host(b) for b in settings.builders]
        self.done: queues.Queue[tuple[Job, Host, Outcome]] = queues.Queue()
        self.wake = threading.Event()
        self.unwritten: list[tuple[Job, Host, Outcome]] = []  # finishes to write again
        self.workers: list[threading.Thread] = []
        self.full_until = 0.0  # no claims before this (monotonic) time: the store was full
        self.seen: str | None = None
        self.waiting: dict[str, dict[str, str]] = {}
        self.dirty = True  # something happened that may let a task start
        self._looked = 0.0
        self._status: tuple[str, float] = ("", 0.0)
        self._status_failed = False

    # ------------------------------------------------------------ the loop

    def run(self, once: bool = False, stop: threading.Event | None = None) -> int:
        """Build until stopped (or, with `once`, until nothing more can start now)."""
        stop = stop or threading.Event()
        try:
            if any(h.builder.transport == "ssh" for h in self.hosts):
                self.wiring.serve_repos()  # started here, once, before any worker asks for it
            snap = self.store.snapshot()
            self.index.refresh(snap)
            hosts.reclaim(self.index, snap, self._write)
            for host in self.hosts:  # builds a dead runner left behind end as soon as possible
                if host.builder.name in self.leftovers.builders():
                    self._connect(host)
            while not stop.is_set():
                if not self.tick() and once:
                    break
                if self.store.head() != self.seen:
                    continue  # our own events moved the ref: catch up at once
                self.wake.wait(self.poll)
                self.wake.clear()
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
        self.wiring.housekeeping()
        busy = any(h.running for h in self.hosts) or any(h.state is HostState.CONNECTING for h in self.hosts)
        return bool(moved or finished or started or busy or self.unwritten or self.store.head() != self.seen)

    def _catch_up(self) -> bool:
        head = self.store.head()
        if head == self.seen:
            return False
        snap = self.store.snapshot(head)
        for host in self.hosts:  # cancels first: nothing below may delay a kill
            for (build_id, arch), job in list(host.running.items()):
                if builds.load_build(snap, build_id).tasks.get(arch) is not State.BUILDING:
                    job.cancel.set()
        self.index.refresh(snap)
        try:
            self.buildroots.publish(snap)
        except (SluiceError, OSError) as exc:  # an unpublishable repo must not stop the builds
            self.note(f"warning: buildroot repos not updated: {exc}")
        supersede(self.index, snap, self._write)
        self.seen = head
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
        """Why `view` may not start yet: its SRPM is elsewhere, or the build it
        comes --after is not in the buildroot (or never will be: cancel)."""
        if time.monotonic() < self.full_until:
            return "the artifact store is full: tried again once there may be room"
        if not self.artifacts.has(str(view.record.srpm.get("sha256"))):
            return ("its SRPM is not in this machine's artifact store (it was submitted on another "
                    "clone): run a runner where it was submitted")
        if not view.record.after:
            return None
        try:
            dep = builds.load_build(snap, view.record.after)
        except NotFound:
            return waits.missing_dep(view.record.after)
        if dep.state in NEVER or dep.record.scratch:
            why = "a scratch build" if dep.record.scratch else str(dep.state)
            self._write(view.id, Op.CANCEL, reason=f"build {dep.record.short} ({dep.record.nvr}) it comes "
                        f"--after is {why} and will never reach the buildroot")
            return f"cancelled: {dep.record.short} is {why}"
        if not self.buildroots.holds(dep.record.target, dep.id):
            if self.buildroots.lacks(dep.id):
                return (f"waiting for build {dep.record.short} ({dep.record.nvr}): it is {dep.state}, but its "
                        "RPMs are not in this machine's artifact store (built on another clone)")
            return waits.after_reason(dep)
        return None

    def _pick(self, view: BuildView, arch: str) -> Host | str:
        candidates = [h for h in self.hosts if arch in h.builder.arches]
        if not candidates:
            return waits.no_builder(arch)
        now = time.monotonic()
        for host in candidates:
            if host.state is HostState.IDLE or (host.state is HostState.DOWN and now >= host.retry_at):
                self._connect(host)
        up = [h for h in candidates if h.state is HostState.UP and h.free > 0]
        if up:
            lost = tasks.lost_on(view, arch)
            return max([h for h in up if h.builder.name not in lost] or up, key=lambda h: h.free)
        if all(h.state is HostState.DOWN for h in candidates):
            return "builders down: " + "; ".join(f"{h.builder.name}: {h.reason}" for h in candidates)
        if any(h.state is HostState.CONNECTING for h in candidates):
            return "connecting to " + ", ".join(h.builder.name for h in candidates
                                                if h.state is HostState.CONNECTING)
        return f"all {sum(h.builder.slots for h in candidates if h.state is HostState.UP)} slots for {arch} are busy"

    def _start(self, snap: Snapshot, view: BuildView, arch: str, host: Host) -> bool:
        record = view.record
        n = tasks.current_round(view, arch) + 1
        taskdir = f"{host.workdir}/{record.id[:12]}-{arch}-{n}"
        target = builds.load_target(snap, record.target)
        data = {"tasks": {arch: str(State.BUILDING)},
                "attempt": {"n": n, "builder": host.builder.name, "host": host.builder.host,
                            "started": timestamp(), "resultdir": f"{taskdir}/result", "runner": RUNNER_ID},
                "buildroot": list(self.buildroots.members.get(record.target, ()))}
        if not self._write(record.id, Op.START, arch=arch, data=data):
            return False
        config = host.builder.mock_config_for(record.target, arch, target.mock_config_for(arch))
        job = Job(record, arch, n, host.builder.name, taskdir, config, (),
                  logs.live_path(self.live_root, record.id, arch, n), started=data["attempt"]["started"],
                  transport=host.transport, tries=tasks.tries(view, arch) + 1,
                  origins=self.buildroots.origins.get(record.target, {}))
        os.makedirs(os.path.dirname(job.live_log), exist_ok=True)
        open(job.live_log, "ab").close()  # `sluice log` finds it from the claim on
        host.running[(record.id, arch)] = job
        self.note(f"building {record.nvr} ({record.short}) for {arch} on {host.builder.name}, attempt {n}")
        worker = threading.Thread(target=self._work, args=(job, host), daemon=True,
                                  name=f"build-{record.short}-{arch}")
        self.workers = [w for w in self.workers if w.is_alive()] + [worker]
        worker.start()
        return True

    def _work(self, job: Job, host: Host) -> None:
        transport, outcome = job.transport, None
        try:
            port = transport.forward(self.wiring.serve_repos()) if host.builder.transport == "ssh" else 0
            job.repos = (host.repo_url(self.buildroots.root, job.record.target, port),)  # external repos merged in
            outcome = attempt.run(job, transport, self.wiring.tool(host.builder.tool), self.artifacts,
                                  self.reader, self.wiring.progress, self.leftovers.add)
        except SluiceError as exc:
            outcome = Outcome(State.QUEUED, error=f"{host.builder.name}: {exc.message}",
                              lost=isinstance(exc, Disconnected))
        except Exception as exc:  # a bug must not lose the task: it goes back to the queue
            outcome = Outcome(State.QUEUED, error=f"internal error on {host.builder.name}: {exc!r}")
        finally:
            outcome = outcome or Outcome(State.QUEUED, error="the build's worker was interrupted")
            if not outcome.lost:
                self.leftovers.drop(job)
            self.done.put((job, host, outcome))  # the result first: clean-up holds up no claim
            self.wake.set()
        if not outcome.lost and outcome.result in (State.BUILT, State.FAILED, State.CANCELLED):
            try:
                transport.run(["rm", "-rf", "--", job.taskdir], timeout=attempt.SLOW_COMMAND)
            except SluiceError:
                pass  # a leftover folder on a host is not worth failing for

    # ------------------------------------------------------------ results

    def _finish_done(self) -> bool:
        pending = [item for item in self.unwritten if time.monotonic() >= item[0].retry_at]
        self.unwritten = [item for item in self.unwritten if item not in pending]
        while True:
            try:
                pending.append(self.done.get_nowait())
            except queues.Empty:
                break
        wrote = False
        for job, host, outcome in pending:
            host.running.pop((job.record.id, job.arch), None)
            wrote |= self._finish(job, host, outcome)
        return wrote

    def _finish(self, job: Job, host: Host, outcome: Outcome) -> bool:
        name = f"{job.record.nvr} ({job.record.short}) on {job.arch}"
        result, error = outcome.result, clean_text(outcome.error, MAX_TEXT)
        if result is State.CANCELLED and not job.stopping:
            self.note(f"cancelled {name}: killed the build on {host.builder.name}")
            self._forget(job)
            return False
        given_back = result is State.CANCELLED or outcome.full  # neither counts against the attempts
        if outcome.full:  # claim nothing until there may be room again
            self.full_until = time.monotonic() + RETRY_DOWN
        if result is State.CANCELLED:
            result, error = State.QUEUED, tasks.STOPPED[0]
        if outcome.lost and host.transport is job.transport and host.state is HostState.UP:
            self._down(host, error)
        if result is State.QUEUED and not given_back and not job.stopping and job.tries >= self.settings.attempts:
            result, error = State.FAILED, f"gave up after {job.tries} attempts: {error}"
        doc = {"n": job.n, "builder": job.builder, "host": host.builder.host, "started": job.started,
               "ended": outcome.ended, "exit": outcome.exit, "log": outcome.log, "error": error[:2000],
               "resultdir": job.resultdir, **({"given_back": True} if given_back else {})}
        data = {"tasks": {job.arch: str(result)}, "attempt": doc,
                "artifacts": [a.to_json() for a in outcome.artifacts], "logs": outcome.logs,
                "missing": list(outcome.missing), **({"installed": outcome.installed} if outcome.installed else {})}
        try:
            written = self._write(job.record.id, Op.FINISH, arch=job.arch, data=data, reason=error)
        except Exception as exc:
            retry = isinstance(exc, (BackendError, OSError)) and job.write_failures < GIVE_UP_WRITING
            if retry:  # the store failed for now (a lock, a full disk): keep the result, try again
                if not job.write_failures:
                    self.note(f"could not record {result} {name} ({exc}); trying again")
                job.write_failures += 1
                job.retry_at = time.monotonic() + RECHECK
                self.unwritten.append((job, host, outcome))
            else:  # refused for good (the runner lost its role, ...), or failing for minutes: say it, go on
                self.note(f"could not record {result} {name}: {exc}; restart `sluice run` (as an admin): "
                          "the task is queued again and rebuilt")
                self._forget(job)
            return False
        if written:
            last = error.splitlines()[-1] if error else ""
            self.note(f"{result} {name}" + (f": {last}" if last else ""))
        self._forget(job)
        return written

    def _forget(self, job: Job) -> None:
        if os.path.exists(job.live_log):
            os.unlink(job.live_log)

    def _write(self, build_id: str, op: Op, **how) -> bool:
        """One runner event; False when the build moved on meanwhile (a
        cancel, another runner's claim), which is said and never fatal."""
        try:
            self.queue.record(build_id, op, **how)
            return True
        except StateConflict as exc:
            self.note(f"skipped {op} of {build_id[:7]}: {exc.message}")
            return False

    # ------------------------------------------------------------ hosts

    def _connect(self, host: Host) -> None:
        host.state, host.reason = HostState.CONNECTING, ""
        threading.Thread(target=self._open, args=(host,), daemon=True, name=f"connect-{host.builder.name}").start()

    def _open(self, host: Host) -> None:
        builder, transport = host.builder, None
        try:
            transport = host.transport or self.wiring.connect(builder)
            host.workdir = hosts.prepare(transport, builder, self.wiring.tool(builder.tool))
            self.leftovers.end(builder.name, transport, self.note)
            host.transport, host.state = transport, HostState.UP
            self.dirty = True
            self.note(f"builder {builder.name} is up")
        except Exception as exc:  # whatever it is, the host is down with the reason and the rest go on
            if transport is not None and transport is not host.transport:
                transport.close()
            self._down(host, hosts.said(exc))
        self.wake.set()

    def _down(self, host: Host, reason: str) -> None:
        if host.transport is not None:
            try:
                host.transport.close()
            except Exception:  # closing a dead connection may fail in many ways; it is closed either way
                pass
        host.transport = None
        host.state, host.reason, host.retry_at = HostState.DOWN, clean_text(reason, 1000), time.monotonic() + RETRY_DOWN
        self.dirty = True
        self.note(f"builder {host.builder.name} is down: {host.reason}")

    # ------------------------------------------------------------ status and upkeep

    def _write_status(self) -> None:
        """The status file, when it changed or every RECHECK seconds (which
        keeps it fresh for readers and samples each builder's load)."""
        doc = {"builders": [h.status() for h in self.hosts], "waiting": self.waiting}
        text, now = json.dumps(doc, sort_keys=True), time.monotonic()
        if text == self._status[0] and now - self._status[1] < RECHECK:
            return
        for entry, host in zip(doc["builders"], self.hosts):
            host.load.append(len(host.running))
            entry["load"] = list(host.load)
        try:
            waits.write_status(self.status_file, doc)
        except OSError as exc:  # a status nobody can read is no reason to stop building
            if not self._status_failed:
                self.note(f"warning: cannot write the runner status {self.status_file}: {exc.strerror}")
            self._status_failed = True
        self._status = (text, now)

    def _shutdown(self) -> None:
        for host in self.hosts:
            for job in host.running.values():
                job.stopping = True
                job.cancel.set()
        deadline = time.monotonic() + 10
        while (any(h.running for h in self.hosts) or self.unwritten) and time.monotonic() < deadline:
            self.wake.wait(0.2)
            self.wake.clear()
            self._finish_done()
        for worker in self.workers:  # let them finish cleaning up the hosts
            worker.join(max(0.0, deadline - time.monotonic()))
        for host in self.hosts:
            if host.transport is not None:
                host.transport.close()
        waits.write_status(self.status_file, {"builders": [], "waiting": {}, "stopped": True})
