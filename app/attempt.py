"""One attempt at one task on one builder host, and importing its results.

This runs in a worker thread of the runner and touches only the host, the
artifact store and the live log file; every state change is the runner's
(main thread) business. The host is not trusted: every result it reports is
a plain file name; it is downloaded, hashed here and compared with the
digest the host gave, and every RPM's header (digest-checked) must say it
was built from this build's SRPM, for this task's arch, under its own file
name, before it enters the artifact store.
"""
from __future__ import annotations

import collections
import errno
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping

from app import provenance
from app.model import BuildRecord, State, clean_text, timestamp
from app.tasks import Artifact, safe_name
from backends.base import (ArtifactStore, BackendError, BadInput, BuildSpec, BuildTool, Disconnected, StoreFull,
                           PackageReader, Progress, Transport, sha256_file)

SRPM_NAME = "source.src.rpm"  # the upload's name on the host: never package-controlled
TAIL_BYTES = 8192  # of the output kept for a failure's event
SLOW_COMMAND = 1800.0  # seconds for host commands over many GB (hashing, removing results)
MARKER = "SLUICE_TASK"  # in the build's environment: how a leftover build is recognised
_LISTING = ('cd -- "$1" || exit 3; for f in *; do '
            'if [ -f "$f" ] && [ ! -L "$f" ]; then sha256sum -- "$f" || exit 4; fi; done')
_SUM = re.compile(r"([0-9a-f]{64}) [ *](.*)")
# What builds say about BuildRequires they could not get: sluice's rpmbuild
# helper, rpmbuild itself, and dnf (4 and 5) inside mock.
_MISSING = re.compile(r"sluice: missing BuildRequires: (.*?)(?: \(not in|$)", re.M)
_NEEDED = re.compile(r"^\s+(\S+)(?: [<>=]+ \S+)? is needed by ", re.M)
_DNF = re.compile(r"(?:No matching package to install: '([^']+)'|No match for argument: (\S+))")
_CHUNK = 1 << 20

Progresses = Callable[[str], Progress | None]


class ImportProblem(Exception):
    """The results could not be fetched or verified: failed-to-import."""


class Cancelled(Exception):
    """The task was cancelled (or the runner stops) during a transfer."""


@dataclass
class Job:
    """What the runner hands a worker: one task, one host, one attempt."""

    record: BuildRecord
    arch: str
    n: int
    builder: str
    taskdir: str  # on the host, absolute
    config: str
    repos: tuple[str, ...]
    live_log: str  # here: the output as it streams
    cancel: threading.Event = field(default_factory=threading.Event)
    started: str = field(default_factory=timestamp)
    stopping: bool = False  # cancelled because the runner stops, not the build
    tries: int = 1  # this attempt's number among those that count against the limit
    retry_at: float = 0.0  # when a finish that could not be written is tried again
    write_failures: int = 0
    pgid: int | None = None  # the build's process group on the host, once started
    transport: Transport | None = None  # the connection it ran on
    origins: Mapping[str, str] = field(default_factory=dict)  # what the buildroot repo offered, from where

    @property
    def resultdir(self) -> str:
        return f"{self.taskdir}/result"


@dataclass(frozen=True)
class Outcome:
    result: State  # built, failed, failed-to-import, queued (host lost), cancelled
    exit: int | None = None
    error: str = ""
    log: str | None = None  # sha256 of the output
    artifacts: tuple[Artifact, ...] = ()
    logs: dict = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    ended: str = field(default_factory=timestamp)
    lost: bool = False  # the connection to the host dropped
    installed: tuple = ()  # [nevra, repo] of each package in the buildroot, from root.log
    full: bool = False  # the store here was full: not the build's fault, not counted, tried later


def run(job: Job, host: Transport, tool: BuildTool, store: ArtifactStore, reader: PackageReader,
        progress: Progresses = lambda what: None, started: Callable[[Job], None] = lambda job: None) -> Outcome:
    """Upload, build, stream, collect: never raises for what a host can do."""
    watched = _watching(job, progress)
    tail: collections.deque[bytes] = collections.deque()
    try:
        status = _build(job, host, tool, store, tail, watched, started)
    except Cancelled:
        status = None
    except Disconnected as exc:
        return Outcome(State.QUEUED, error=f"lost {job.builder}: {exc.message}", log=_keep(store, job.live_log),
                       lost=True)
    except BadInput as exc:  # the build cannot be made on this builder, however often it is tried
        return Outcome(State.FAILED, error=f"{job.builder}: {exc}", log=_keep(store, job.live_log))
    except BackendError as exc:
        return Outcome(State.QUEUED, error=f"{job.builder}: {exc.message}", log=_keep(store, job.live_log))
    except OSError as exc:  # the live log here could not be written: a full disk, most likely
        return Outcome(State.QUEUED, error=f"{job.builder}: cannot write the build's log {job.live_log}: "
                       f"{exc.strerror}; free space there, the task is tried again",
                       full=exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
    try:
        log = _keep(store, job.live_log)
    except StoreFull as exc:
        return Outcome(State.QUEUED, status, f"{job.builder}: {exc.message}; the task is tried again", full=True)
    if status is None:
        return Outcome(State.CANCELLED, error="cancelled", log=log)
    text = text_of(b"".join(tail))
    if status != 0:
        return _failed(job, host, store, reader, status, text, log)
    try:
        artifacts, logs = collect(host, job.resultdir, job.record, job.arch, store, reader, progress=watched)
    except Cancelled:
        if job.stopping:  # the build succeeded: keep its results for rescue
            return Outcome(State.FAILED_TO_IMPORT, status, "the runner stopped while fetching the results; "
                           "`sluice rescue` fetches them", log)
        return Outcome(State.CANCELLED, error="cancelled", log=log)
    except StoreFull as exc:  # not the build's fault, nor the host's: build it again once there is room
        return Outcome(State.QUEUED, status, f"{job.builder}: {exc.message}; the task is tried again", log,
                       full=True)
    except Disconnected as exc:
        return Outcome(State.FAILED_TO_IMPORT, status, f"lost {job.builder} while fetching results: "
                       f"{exc.message}; `sluice rescue` fetches them again", log)
    except (ImportProblem, BackendError) as exc:
        return Outcome(State.FAILED_TO_IMPORT, status, clean_text(str(exc), 2000), log)
    return Outcome(State.BUILT, status, "", log, tuple(artifacts), logs,
                   installed=tuple(provenance.installed(_root_log(store, logs), job.origins)))


def _failed(job: Job, host: Transport, store: ArtifactStore, reader: PackageReader, status: int, text: str,
            log: str | None) -> Outcome:
    logs: dict[str, str] = {}
    try:
        _, logs = collect(host, job.resultdir, job.record, job.arch, store, reader, logs_only=True)
    except (ImportProblem, BackendError, Cancelled):
        pass  # the failure is what matters; its logs are a bonus
    root = _root_log(store, logs)
    text += "\n" + root if root else ""
    return Outcome(State.FAILED, status, last_lines(text), log, logs=logs, missing=missing_requires(text),
                   installed=tuple(provenance.installed(root, job.origins)))


def _root_log(store: ArtifactStore, logs: Mapping[str, str]) -> str:
    root = logs.get("root.log")
    if not (root and store.has(root)):
        return ""
    with open(store.path(root), "rb") as f:
        return text_of(f.read(4 * _CHUNK))


def _watching(job: Job, progress: Progresses) -> Progresses:
    """Progress callbacks that also stop a transfer when the task is cancelled."""
    def make(what: str) -> Progress:
        shown = progress(what)

        def update(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled(what)
            if shown is not None:
                shown(done, total)
        return update
    return make


def _build(job: Job, host: Transport, tool: BuildTool, store: ArtifactStore, tail: collections.deque[bytes],
           progress: Progresses, started: Callable[[Job], None]) -> int | None:
    """The exit status of the build, or None when it was cancelled."""
    # a fresh folder: never results of an earlier attempt with the same number
    _checked(host, ["sh", "-c", 'rm -rf -- "$1" && mkdir -p -- "$1/result"', "sh", job.taskdir],
             "make the build folder")
    remote = f"{job.taskdir}/{SRPM_NAME}"
    host.put(store.path(str(job.record.srpm.get("sha256"))), remote,
             progress(f"upload {job.record.nvr}.src.rpm to {job.builder}"))
    spec = BuildSpec(remote, job.resultdir, job.arch, job.config, job.repos)
    command = ["env", f"{MARKER}={job.taskdir}", *tool.command(spec)]
    kept = 0
    with open(job.live_log, "ab") as out:
        process = host.start(command)
        job.pgid = getattr(process, "pgid", None)
        started(job)
        while True:
            if job.cancel.is_set():
                process.kill()
                return None
            chunk = process.read(0.25)
            if chunk is None:
                continue
            if not chunk:
                break
            out.write(chunk)
            out.flush()
            tail.append(chunk)
            kept += len(chunk)
            while kept - len(tail[0]) >= TAIL_BYTES:
                kept -= len(tail.popleft())
        while (status := process.wait(0.25)) is None:
            if job.cancel.is_set():
                process.kill()
                return None
    return status


def collect(host: Transport, resultdir: str, record: BuildRecord, arch: str, store: ArtifactStore,
            reader: PackageReader, *, logs_only: bool = False,
            progress: Progresses = lambda what: None) -> tuple[list[Artifact], dict[str, str]]:
    """Fetch and verify the results in `resultdir`: (RPMs, logs name -> sha256).
    The SRPM the tool wrote back is not imported: the build's own is the one."""
    listed = host.run(["sh", "-c", _LISTING, "sh", resultdir], timeout=SLOW_COMMAND)
    if listed.status != 0:
        raise ImportProblem(f"cannot list the results in {resultdir} on {host.host} "
                            f"(exit {listed.status}): {text_of(listed.stderr).strip()[:300]}")
    reported = parse_listing(text_of(listed.stdout))
    wanted = {n: d for n, d in reported.items() if n.endswith(".log") or
              (not logs_only and n.endswith(".rpm") and not n.endswith(".src.rpm"))}
    if not logs_only and not any(n.endswith(".rpm") for n in wanted):
        raise ImportProblem(f"the build on {host.host} reported no binary RPMs in {resultdir}")
    artifacts, logs = [], {}
    with store.scratch(".results-") as scratch:
        for name, digest in sorted(wanted.items()):
            local = os.path.join(scratch, name)
            try:
                host.get(f"{resultdir}/{name}", local, progress(f"download {name} from {host.host}"))
            except BackendError as exc:
                cause = exc.__cause__
                if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise StoreFull(f"cannot download {name} into the artifact store: {cause.strerror}",
                                    "free space on the artifact store's filesystem") from exc
                raise
            got = sha256_file(local)
            if got != digest:
                raise ImportProblem(f"{name} from {host.host} does not match its digest: the host said "
                                    f"{digest[:16]}…, the file is {got[:16]}…")
            if name.endswith(".rpm"):
                built_for = _verified(reader, local, name, record, arch)
            stored = store.adopt(local, got)  # hashed just above, in our own scratch folder
            if name.endswith(".log"):
                logs[name] = stored.sha256
            else:
                artifacts.append(Artifact(name, built_for, stored.sha256, stored.size))
    return artifacts, logs


def parse_listing(text: str) -> dict[str, str]:
    """`sha256sum` lines from the host -> {name: digest}; any name that is not
    a plain file name (a path, `..`, an escaped odd character) is refused."""
    found = {}
    for line in text.splitlines():
        match = _SUM.fullmatch(line)
        if not match:
            raise ImportProblem(f"the builder reported a result line sluice cannot read: {line[:120]!r}")
        digest, name = match.groups()
        if not safe_name(name):
            raise ImportProblem(f"the builder reported a result named {name[:120]!r}: refused, results must "
                                "be plain file names (no '/', no '..')")
        found[name] = digest
    return found


def _verified(reader: PackageReader, path: str, name: str, record: BuildRecord, arch: str) -> str:
    """The arch an RPM result was built for, once its header proves it is
    this build's, for this task, under its own name."""
    try:
        package = reader.read_binary(path)
    except BadInput as exc:
        raise ImportProblem(f"{name} is not a valid RPM: {exc.message}") from exc
    source = f"{record.nvr}.src.rpm"
    if package.arch == "src" or package.sourcerpm != source:
        raise ImportProblem(f"{name} was not built from {source} (its header says "
                            f"{package.sourcerpm or 'it is a source package'}): refused")
    if package.arch not in (arch, "noarch"):
        raise ImportProblem(f"{name} is built for {package.arch}, but this task builds {arch}: refused "
                            "(check the builder's mock config for this arch)")
    expected = f"{package.name}-{package.version}-{package.release}.{package.arch}.rpm"
    if name != expected:
        raise ImportProblem(f"{name} is named unlike its header ({expected}): refused")
    return package.arch


def _checked(host: Transport, argv: list[str], what: str) -> None:
    result = host.run(argv)
    if result.status != 0:
        raise BackendError(f"cannot {what} on {host.host}: {clean_text(text_of(result.stderr).strip(), 300)}",
                           "check the builder's workdir and free space (`sluice builders --check`)")


def _keep(store: ArtifactStore, path: str) -> str | None:
    """The finished live log, into the store without a copy (a 1 GiB log
    would otherwise be copied and fsynced again)."""
    if not os.path.exists(path):
        return None
    return store.adopt(path).sha256


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def last_lines(text: str, lines: int = 40) -> str:
    """The end of a build's output, fit for an event's reason (no control characters)."""
    return clean_text("\n".join(clean_text(text).splitlines()[-lines:]), TAIL_BYTES)


def missing_requires(text: str) -> tuple[str, ...]:
    """The BuildRequires a build said it could not find."""
    found = [n.strip() for m in _MISSING.finditer(text) for n in m.group(1).split(",")]
    found += _NEEDED.findall(text)
    found += [a or b for a, b in _DNF.findall(text)]
    return tuple(dict.fromkeys(n for n in found if n))
