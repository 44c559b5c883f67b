"""The files of a published repo directory that every writer of one shares:
the lock it holds for a whole publish, the swap of a new `repodata/` into
place, and small reads and removals that treat a missing file as nothing.
Used by the publisher (`publisher`) and the buildroot merge (`repomerge`).
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil

from backends.base import BackendError

_RENAME_EXCHANGE = 2


def swap_in(stage: str, live: str, old: str) -> None:
    """Put `stage` at `live` in one step: renameat2(RENAME_EXCHANGE) swaps
    the two directories atomically, so `live` is always one whole
    generation. Where the filesystem cannot exchange (EINVAL, e.g. NFS), the
    old directory is renamed away first, leaving a moment without
    `repodata/` (as createrepo_c's own swap does)."""
    if not os.path.isdir(live) or os.path.islink(live):
        remove(live)
        os.rename(stage, live)
        return
    if _exchange(stage, live):
        shutil.rmtree(stage, ignore_errors=True)
        return
    os.rename(live, old)
    os.rename(stage, live)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(first: str, second: str) -> bool:
    """renameat2(first, second, RENAME_EXCHANGE); False where not supported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise BackendError(f"cannot swap the new metadata into {second}: {os.strerror(code)}",
                       "check permissions and free space of the repo directory, then publish again")


def read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class RepoLock:
    """An exclusive flock on a file, held for a `with` block. The kernel drops
    it when the process dies, so a crash never leaves a repo locked."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "RepoLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BackendError(f"cannot open the repo lock {self.path}: {exc.strerror}",
                               "check permissions of the repo directory") from exc
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock
        self.fd = -1
