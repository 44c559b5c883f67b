"""One attempt at one task on one builder host, and importing its results.

This runs in a worker thread of the runner and touches only the host, the
artifact store and the live log file; every state change is the runner's
(main thread) business. The host is not trusted: every result it reports is
a plain file name, downloaded, hashed here and compared with the digest the
host gave, and every RPM's header must say it was built from this build's
SRPM, before anything enters the artifact store.
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import Callable

from app.model import BuildRecord, State, timestamp
from app.tasks import Artifact, safe_name
from backends.base import (ArtifactStore, BackendError, BadInput, BuildSpec, BuildTool, Disconnected,
                           PackageReader, Progress, Transport)

SRPM_NAME = "source.src.rpm"  # the upload's name on the host: never package-controlled
TAIL_BYTES = 8192  # of the output kept for a failure's event
_LISTING = ('cd -- "$1" || exit 3; for f in *; do '
            'if [ -f "$f" ] && [ ! -L "$f" ]; then sha256sum -- "$f" || exit 4; fi; done')
_SUM = re.compile(r"([0-9a-f]{64}) [ *](.*)")
_MISSING = re.compile(r"sluice: missing BuildRequires: (.*?)(?: \(not in|$)")
_NEEDED = re.compile(r"^\s+(\S+)(?: [<>=]+ \S+)? is needed by ", re.M)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class ImportProblem(Exception):
    """The results could not be fetched or verified: failed-to-import."""


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


def run(job: Job, host: Transport, tool: BuildTool, store: ArtifactStore, reader: PackageReader,
        progress: Callable[[str], Progress | None] = lambda what: None) -> Outcome:
    """Upload, build, stream, collect: never raises for what a host can do."""
    tail: collections.deque[bytes] = collections.deque()
    try:
        status = _build(job, host, tool, store, tail, progress)
    except Disconnected as exc:
        return Outcome(State.QUEUED, error=f"lost {job.builder}: {exc.message}", log=_keep(store, job.live_log))
    except BackendError as exc:
        return Outcome(State.QUEUED, error=f"{job.builder}: {exc.message}", log=_keep(store, job.live_log))
    log = _keep(store, job.live_log)
    if status is None:
        return Outcome(State.CANCELLED, error="cancelled", log=log)
    text = text_of(b"".join(tail))
    if status != 0:
        logs = {}
        try:
            _, logs = collect(host, job.resultdir, job.record, store, reader, logs_only=True)
        except (ImportProblem, BackendError):
            pass  # the failure is what matters; its logs are a bonus
        return Outcome(State.FAILED, status, last_lines(text), log, logs=logs, missing=missing_requires(text))
    try:
        artifacts, logs = collect(host, job.resultdir, job.record, store, reader, progress=progress)
    except Disconnected as exc:
        return Outcome(State.FAILED_TO_IMPORT, status, f"lost {job.builder} while fetching results: "
                       f"{exc.message}; `sluice rescue` fetches them again", log)
    except (ImportProblem, BackendError) as exc:
        return Outcome(State.FAILED_TO_IMPORT, status, str(exc), log)
    return Outcome(State.BUILT, status, "", log, tuple(artifacts), logs)


def _build(job: Job, host: Transport, tool: BuildTool, store: ArtifactStore,
           tail: collections.deque[bytes], progress: Callable[[str], Progress | None]) -> int | None:
    """The exit status of the build, or None when it was cancelled."""
    _checked(host, ["mkdir", "-p", "--", job.resultdir], "make the build folder")
    remote = f"{job.taskdir}/{SRPM_NAME}"
    host.put(store.path(str(job.record.srpm.get("sha256"))), remote,
             progress(f"upload {job.record.nvr}.src.rpm to {job.builder}"))
    spec = BuildSpec(remote, job.resultdir, job.arch, job.config, job.repos)
    os.makedirs(os.path.dirname(job.live_log), exist_ok=True)
    kept = 0
    with open(job.live_log, "ab") as out:
        process = host.start(tool.command(spec))
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


def collect(host: Transport, resultdir: str, record: BuildRecord, store: ArtifactStore, reader: PackageReader,
            *, logs_only: bool = False, progress: Callable[[str], Progress | None] = lambda what: None
            ) -> tuple[list[Artifact], dict[str, str]]:
    """Fetch and verify the results in `resultdir`: (RPMs, logs name -> sha256)."""
    listed = host.run(["sh", "-c", _LISTING, "sh", resultdir])
    if listed.status != 0:
        raise ImportProblem(f"cannot list the results in {resultdir} on {host.host} "
                            f"(exit {listed.status}): {text_of(listed.stderr).strip()[:300]}")
    reported = parse_listing(text_of(listed.stdout))
    wanted = {n: d for n, d in reported.items() if n.endswith(".log") or (not logs_only and n.endswith(".rpm"))}
    if not logs_only and not any(n.endswith(".rpm") and not n.endswith(".src.rpm") for n in wanted):
        raise ImportProblem(f"the build on {host.host} reported no binary RPMs in {resultdir}")
    artifacts, logs = [], {}
    scratch = tempfile.mkdtemp(dir=store.incoming(), prefix=".results-")
    try:
        for name, digest in sorted(wanted.items()):
            local = os.path.join(scratch, name)
            host.get(f"{resultdir}/{name}", local, progress(f"download {name} from {host.host}"))
            stored = store.put(local)
            if stored.sha256 != digest:
                raise ImportProblem(f"{name} from {host.host} does not match its digest: the host said "
                                    f"{digest[:16]}…, the file is {stored.sha256[:16]}…")
            if name.endswith(".log"):
                logs[name] = stored.sha256
            else:
                artifacts.append(_verified(reader, local, name, record, stored.sha256, stored.size))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
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


def _verified(reader: PackageReader, path: str, name: str, record: BuildRecord, sha256: str,
              size: int) -> Artifact:
    try:
        package = reader.read_binary(path)
    except BadInput as exc:
        raise ImportProblem(f"{name} is not a valid RPM: {exc.message}") from exc
    source = f"{record.nvr}.src.rpm"
    ours = (package.name, package.version, package.release) == (record.package, record.version, record.release) \
        if package.arch == "src" else package.sourcerpm == source
    if not ours:
        raise ImportProblem(f"{name} was not built from {source} (its header says "
                            f"{package.sourcerpm or package.name + '-' + package.version}): refused")
    return Artifact(name, package.arch, sha256, size)


def _checked(host: Transport, argv: list[str], what: str) -> None:
    result = host.run(argv)
    if result.status != 0:
        raise BackendError(f"cannot {what} on {host.host}: {text_of(result.stderr).strip()[:300]}",
                           "check the builder's workdir and free space (`sluice builders --check`)")


def _keep(store: ArtifactStore, path: str) -> str | None:
    if not os.path.exists(path):
        return None
    return store.put(path).sha256


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def last_lines(text: str, lines: int = 40) -> str:
    """The end of a build's output, fit for an event's reason (no control characters)."""
    kept = "\n".join(text.replace("\r\n", "\n").replace("\r", "\n").splitlines()[-lines:])
    return _CONTROL.sub("?", kept)[-TAIL_BYTES:]


def missing_requires(text: str) -> tuple[str, ...]:
    """The BuildRequires a build said it could not find."""
    found = [n.strip() for m in _MISSING.finditer(text) for n in m.group(1).split(",")]
    found += _NEEDED.findall(text)
    return tuple(dict.fromkeys(n for n in found if n))
