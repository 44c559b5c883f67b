"""Content-addressed artifact store: `<root>/sha256/<ab>/<digest>`.

Files are written to a temporary name in the same filesystem, fsynced and
renamed into place, so a reader (or a crash) never sees half a file. The
digest is computed from the bytes actually written, never taken on trust.
Stored files are read-only; repos hard-link them.
"""
from __future__ import annotations

import hashlib
import os
import tempfile

from backends.base import BackendError, BadInput, Stored

_CHUNK = 1 << 20


class FileArtifactStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self._files = os.path.join(root, "sha256")

    def path(self, sha256: str) -> str:
        return f"{self._files}/{sha256[:2]}/{sha256}"  # os.path.join's result; a publish asks 10,000 times

    def incoming(self) -> str:
        """A folder on the store's filesystem for files on their way in."""
        path = os.path.join(self.root, "incoming")
        os.makedirs(path, exist_ok=True)
        return path

    def has(self, sha256: str) -> bool:
        return os.path.exists(self.path(sha256))

    def put(self, path: str, expect: str | None = None) -> Stored:
        """Store a copy of `path` under its sha256; with `expect`, a file
        whose sha256 differs is refused (BadInput) and nothing is stored."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.incoming(), prefix=".put-")
        except OSError as exc:
            raise BackendError(f"cannot write to the artifact store {self.root}: {exc.strerror}",
                               "check that it exists, is writable and has free space") from exc
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
                os.chmod(tmp, 0o444)
                os.rename(tmp, final)
            return Stored(digest, size)
        except OSError as exc:
            _discard(tmp)
            raise BackendError(f"cannot store {path} in {self.root}: {exc.strerror}",
                               "check free space and permissions, then try again") from exc
        except BaseException:
            _discard(tmp)
            raise


def _copy_hashing(path: str, fd: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
