"""Content-addressed artifact store: `<root>/sha256/<ab>/<digest>`.

Files are written to a temporary name in the same filesystem, fsynced and
renamed into place, so a reader (or a crash) never sees half a file. The
digest is computed from the bytes actually written, never taken on trust.
Stored files are read-only; repos hard-link them.

Work in progress lives in `<root>/incoming/` (`.put-*` files, `.results-*`
and `.sign-*` folders), each held under an exclusive `flock` by the process
using it. A process killed mid-import leaves its entry behind, unlocked: the
next store opened on the root removes every entry it can lock, and never one
that a live process still holds (tested by killing sluice hundreds of times).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
from typing import Iterator

from backends.base import BackendError, BadInput, Stored, StoreFull

_CHUNK = 1 << 20
_WORK = (".put-", ".results-", ".sign-", ".fetch-", ".import-")  # prefixes of what is on its way in
# a full store (ENOSPC), a full quota (EDQUOT), a file-size limit (EFBIG)
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class FileArtifactStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self._files = os.path.join(root, "sha256")
        self._swept = False

    def path(self, sha256: str) -> str:
        return f"{self._files}/{sha256[:2]}/{sha256}"  # os.path.join's result; a publish asks 10,000 times

    def incoming(self) -> str:
        """A folder on the store's filesystem for files on their way in;
        the first call removes what killed processes left there."""
        path = os.path.join(self.root, "incoming")
        os.makedirs(path, exist_ok=True)
        if not self._swept:
            self._swept = True
            sweep(path)
        return path

    def has(self, sha256: str) -> bool:
        return os.path.exists(self.path(sha256))

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[str]:
        """A locked folder in `incoming` for work that ends in `put`s; removed afterwards."""
        try:
            while True:
                path = tempfile.mkdtemp(dir=self.incoming(), prefix=prefix)
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
                if _locked(fd, path):
                    break
        except OSError as exc:
            raise _failure(f"cannot write to the artifact store {self.root}", exc,
                           "check that it exists and is writable") from exc
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            os.close(fd)

    def put(self, path: str, expect: str | None = None) -> Stored:
        """Store a copy of `path` under its sha256; with `expect`, a file
        whose sha256 differs is refused (BadInput) and nothing is stored."""
        try:
            fd, tmp = self._temporary()
        except OSError as exc:
            raise _failure(f"cannot write to the artifact store {self.root}", exc,
                           "check that it exists and is writable") from exc
        try:
            digest, size = _copy_hashing(path, fd)
            if expect is not None and digest != expect:
                raise BadInput(f"{path} is not the file it was named for: its sha256 is {digest}, "
                               f"not {expect}; it was not stored", "the copy is damaged or was altered")
            final = self.path(digest)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            if os.path.exists(final):
                os.unlink(tmp)
            else:
                os.fchmod(fd, 0o444)
                os.rename(tmp, final)  # still locked: no sweep can take it first
            return Stored(digest, size)
        except OSError as exc:
            _discard(tmp)
            raise _failure(f"cannot store {path} in {self.root}", exc,
                           "nothing was stored; free space or fix permissions, then try again") from exc
        except BaseException:
            _discard(tmp)
            raise
        finally:
            os.close(fd)

    def adopt(self, path: str, sha256: str | None = None) -> Stored:
        """Store a finished file that lies on the store's filesystem (a live
        log, a download in `scratch`) as a second hard link, not a copy: it
        is hashed (unless the caller just did), fsynced and made read-only,
        then linked under its digest, which appears whole or not at all. The
        caller's name stays until the caller removes it. Elsewhere: `put`."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise _failure(f"cannot read {path} to store it in {self.root}", exc, "check the file") from exc
        try:
            if sha256 is None:
                digest = hashlib.sha256()
                while chunk := os.read(fd, _CHUNK):
                    digest.update(chunk)
                sha256 = digest.hexdigest()
            os.fsync(fd)
            size = os.fstat(fd).st_size
            final = self.path(sha256)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            if not os.path.exists(final):
                os.fchmod(fd, 0o444)
                os.link(path, final)
            return Stored(sha256, size)
        except FileExistsError:
            return Stored(sha256, os.fstat(fd).st_size)  # another process stored the same bytes first
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):  # another filesystem, or no links there
                return self.put(path, sha256)
            raise _failure(f"cannot store {path} in {self.root}", exc,
                           "nothing was stored; free space or fix permissions, then try again") from exc
        finally:
            os.close(fd)

    def _temporary(self) -> tuple[int, str]:
        while True:
            fd, tmp = tempfile.mkstemp(dir=self.incoming(), prefix=".put-")
            if _locked(fd, tmp):
                return fd, tmp


def _failure(what: str, exc: OSError, hint: str) -> BackendError:
    if exc.errno in _FULL:
        return StoreFull(f"{what}: {exc.strerror}",
                         "free space on the artifact store's filesystem (or raise the limit); nothing "
                         "half-written was kept, so the same command works once there is room")
    return BackendError(f"{what}: {exc.strerror}", hint)


def _locked(fd: int, path: str) -> bool:
    """Take `fd`'s lock; False (and `fd` closed) when a sweep removed `path`
    between its creation and the lock, so the caller makes another."""
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        alive = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        alive = False
    if not alive:
        os.close(fd)
    return alive


def sweep(incoming: str) -> list[str]:
    """Remove the entries of `incoming` that no live process holds; returns their names."""
    removed = []
    for name in os.listdir(incoming):
        if not name.startswith(_WORK):
            continue
        path = os.path.join(incoming, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live process is working there
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                _discard(path)
            removed.append(name)
        finally:
            os.close(fd)
    return removed


def _copy_hashing(path: str, fd: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            size += len(chunk)
    os.fsync(fd)
    return digest.hexdigest(), size


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
