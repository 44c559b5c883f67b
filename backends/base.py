"""The small interfaces the domain (`app/`) uses to reach the outside world.

`app/` imports only this module from `backends/`; the real implementations
live in their own modules (`gitstore`, `gitsync`, `artifacts`, `srpm`) and are
wired together by `app.wiring`.

The root of sluice's exception tree lives here too, so that backends can raise
errors the CLI knows how to report without importing the domain. The whole
tree is drawn once, in `app/errors.py`.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterable, Iterator, Mapping, Protocol, Sequence


class SluiceError(Exception):
    """Something the user must hear about: what happened and what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class BackendError(SluiceError):
    """A backend failed. Keeps the command, its exit status and its output."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "", *, command: Sequence[str] = (),
                 status: int | None = None, output: str = "") -> None:
        super().__init__(message, hint)
        self.command = tuple(command)
        self.status = status
        self.output = output


class BadInput(SluiceError):
    """A file or value given to sluice is not what it must be (exit 2)."""

    exit_code = 2


class RefMoved(Exception):
    """The state ref changed (or was locked) between snapshot and write.

    Internal: the store retries, the user never sees it."""


# ---------------------------------------------------------------- state store

@dataclass(frozen=True)
class Person:
    name: str
    email: str


class Snapshot(Protocol):
    """A read-only view of one commit of the state ref (or of nothing yet)."""

    commit: str | None

    def read(self, path: str) -> bytes | None: ...

    def list(self, path: str) -> list[str]: ...

    def entries(self, path: str) -> list[tuple[str, str]]: ...

    def object_id(self, path: str) -> str | None: ...


@dataclass(frozen=True)
class Change:
    """What one write adds to the state tree, and the commit message for it.

    `files` maps tree paths to their new content; nothing is ever deleted.
    `sign_with` is the fingerprint of the author's key when the commit must
    be signed."""

    files: Mapping[str, bytes]
    message: str
    author: Person
    sign_with: str | None = None


@dataclass(frozen=True)
class Written:
    commit: str
    change: Change
    attempts: int


@dataclass(frozen=True)
class FileChange:
    """One path that a commit changed against its parent."""

    path: str
    old: str | None  # blob id before, None when added
    new: str | None  # blob id after, None when deleted
    mode: int = 0o100644


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author: Person
    committer: Person
    time: int
    message: str


class StateStore(Protocol):
    """The git-backed append-only state: snapshots and compare-and-swap writes."""

    replica: str

    def head(self) -> str | None: ...

    def snapshot(self, commit: str | None = None) -> Snapshot: ...

    def update(self, plan: Callable[[Snapshot], Change]) -> Written: ...

    def changes(self, old: str, new: str) -> list["FileChange"] | None: ...

    def is_ancestor(self, older: str, newer: str) -> bool: ...

    def history(self, start: str | None = None) -> Iterator[CommitInfo]: ...

    def blob(self, blob_id: str) -> bytes: ...

    def index_dir(self) -> str: ...


# ------------------------------------------------------------------------ sync

@dataclass(frozen=True)
class Incoming:
    """A commit fetched from another clone that this clone does not have."""

    info: CommitInfo
    changes: tuple[FileChange, ...]  # against the first parent
    parent: Snapshot  # the first parent's tree (read only when a check needs it)


class SyncTransport(Protocol):
    """Moves `refs/sluice/*` between this repo and a remote (local path or SSH)."""

    def fetch(self, remote: str) -> str | None: ...

    def push(self, remote: str, commit: str) -> bool: ...


class MalformedHistory(BackendError):
    """git's fsck refused fetched objects (a crafted tree or commit); `output` says why."""


class RemoteLocked(BackendError):
    """A push met a lock file on the remote (`age` in s, when it is on this machine)."""

    def __init__(self, message: str, hint: str, lock: str, age: float | None) -> None:
        super().__init__(message, hint)
        self.lock, self.age = lock, age


@dataclass(frozen=True)
class Union:
    """A merge result: the commit, or the paths both sides wrote differently."""

    commit: str | None
    collisions: tuple[str, ...] = ()


class Merger(Protocol):
    def incoming(self, theirs: str, ours: str | None) -> Iterator[Incoming]: ...

    def merge_problems(self, commit: CommitInfo) -> list[str]: ...

    def union(self, ours: str | None, theirs: str, message: str, author: Person,
              prefer_theirs: Iterable[str] = (), sign_with: str | None = None) -> "Union": ...

    def advance(self, old: str | None, new: str) -> bool: ...


# ------------------------------------------------------------------ artifacts

def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one step: a reader sees the old file or
    the new one, never half of it; a failed write leaves no temporary file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def secret_line(path: str) -> str:
    """The first line of a file holding a secret (a passphrase or password
    file), without its line end; OSError/UnicodeDecodeError for the caller
    to word. One reader, so every secret file is read the same way."""
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n")


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes: the one way sluice names and checks files."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    sha256: str
    size: int


class ArtifactStore(Protocol):
    """Content-addressed files (SRPMs, RPMs, logs) outside git."""

    def put(self, path: str, expect: str | None = None) -> Stored:
        """Store a copy of `path`; with `expect`, refuse (BadInput, nothing
        stored) a file whose sha256 is not `expect`."""
        ...

    def adopt(self, path: str, sha256: str | None = None) -> Stored:
        """Store `path` without copying it (a hard link, when it is on the
        store's filesystem); `sha256` when the caller just hashed the file."""
        ...

    def path(self, sha256: str) -> str: ...

    def has(self, sha256: str) -> bool: ...

    def incoming(self) -> str: ...

    def scratch(self, prefix: str) -> ContextManager[str]:
        """A folder in `incoming` for work that ends in `put`s, held by this
        process (a store opened after a crash removes what nobody holds)."""
        ...


class StoreFull(BackendError):
    """The artifact store's filesystem is full (or a file-size limit was hit):
    nothing was stored, and the same work may succeed once there is room."""


# ------------------------------------------------------------------- builders

@dataclass(frozen=True)
class Completed:
    """A short command that ran to the end on a builder host."""

    status: int
    stdout: bytes
    stderr: bytes


Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


class Process(Protocol):
    """A long command running on a builder host (a build), in its own process
    group, with stdout and stderr merged into one stream."""

    def read(self, timeout: float) -> bytes | None:
        """The next chunk of output; None when nothing came within `timeout`,
        b"" once the stream has ended."""
        ...

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status, or None while it still runs after `timeout`.
        Raises `Disconnected` when the host went away mid-build."""
        ...

    def kill(self) -> None:
        """End the whole process group on the host (TERM, then KILL); returns
        within 5 seconds with nothing of it left running."""
        ...


class Disconnected(BackendError):
    """The connection to a builder host dropped or could not be made."""


class HostKeyRefused(BackendError):
    """A builder host's key is unknown or changed; never added on its own."""

    exit_code = 1


class Transport(Protocol):
    """One builder host: run commands and move files. `local` runs here,
    `ssh` (paramiko) reuses one connection per host. Arguments are argv
    lists; the transport quotes them, nothing is ever joined unquoted."""

    host: str

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Completed: ...

    def start(self, argv: Sequence[str]) -> Process: ...

    def put(self, local: str, remote: str, progress: Progress | None = None) -> None: ...

    def get(self, remote: str, local: str, progress: Progress | None = None) -> None: ...

    def end_group(self, pgid: int) -> None:
        """TERM, then KILL, process group `pgid` on the host (a leftover build)."""
        ...

    def forward(self, local_port: int) -> int:
        """Make 127.0.0.1:`local_port` here reachable from the host; returns
        the port to use on the host (a reverse port forward for ssh)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class BuildSpec:
    """One task's build, in the host's own paths."""

    srpm: str  # the uploaded SRPM on the host
    resultdir: str  # where results and logs go (created by the runner)
    arch: str
    config: str  # mock's -r (mock only)
    repos: tuple[str, ...]  # buildroot repo URLs as the host reaches them


class BuildTool(Protocol):
    """What runs a build on a host: `mock` or plain `rpmbuild`."""

    name: str

    def command(self, spec: BuildSpec) -> list[str]: ...

    def probe(self) -> list[str]:
        """A command that exits 0 when the tool is usable on the host."""
        ...


# ------------------------------------------------------ the other Protocols

# They live in their own modules (base.py stays small); app/ still imports
# them from here.
from backends.signing_protocols import KeyInfo, Keyring, Signer  # noqa: E402,F401
from backends.repo_protocols import LOCAL, Merged, Published, Publisher, RepoMerger, RepoSource  # noqa: E402,F401,E501
from backends.notify_protocols import Mail, MailRefused, Notifier  # noqa: E402,F401
from backends.artifact_protocols import ArtifactRemote  # noqa: E402,F401
from backends.review_protocols import ChangelogEntry, ContentsReader, LintFinding, Linter, RpmContents  # noqa: E402,F401,E501
from backends.trust_protocols import (BAD, GOOD, UNKNOWN_KEY, UNSIGNED, CommitSigner,  # noqa: E402,F401
                                      CommitVerifier, Verdict)
from backends.upstream_protocols import UpstreamFetchFailed, UpstreamPackage, UpstreamRepo, SignatureChecker, SignatureVerdict  # noqa: E402,F401,E501
from backends.package_protocols import BinaryPackage, PackageReader, SourcePackage  # noqa: E402,F401
