"""The artifact remote: where `sluice sync` moves artifacts to and from.

Re-exported by `backends.base`, which is what `app/` imports. Every method
takes sha256 digests only (checked as 64 lower-case hex digits before they
name a path), never a name that came from package data.
"""
from __future__ import annotations

from typing import Iterable, Protocol


class ArtifactRemote(Protocol):
    """A content-addressed folder (`<root>/sha256/<ab>/<digest>`) shared by
    the clones of a queue: a path here, or a folder on an SSH host."""

    where: str  # for messages: the folder, or user@host:folder

    def present(self, digests: Iterable[str]) -> set[str]:
        """Which of `digests` the remote holds."""
        ...

    def send(self, local: str, sha256: str) -> None:
        """Upload `local` (whose content is `sha256`) under a temporary name,
        renamed into place when whole: a reader never sees half a file."""
        ...

    def fetch(self, sha256: str, local: str) -> None:
        """Download the file named `sha256` to `local`, unchecked: the caller
        checks the digest before anything enters a store."""
        ...

    def close(self) -> None: ...
