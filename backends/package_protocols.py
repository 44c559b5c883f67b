"""What sluice reads from RPM headers: source and built packages.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SourcePackage:
    """What sluice needs from an SRPM header, read and digest-checked."""

    name: str
    epoch: int | None
    version: str
    release: str
    buildrequires: tuple[str, ...]
    exclusivearch: tuple[str, ...] = ()
    excludearch: tuple[str, ...] = ()
    sha256: str = ""
    size: int = 0
    filename: str = ""

    @property
    def nvr(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"


@dataclass(frozen=True)
class BinaryPackage:
    """A built RPM (or the rebuilt SRPM, arch "src") as its header says."""

    name: str
    epoch: int | None
    version: str
    release: str
    arch: str
    sourcerpm: str  # the SRPM it was built from ("" for a source package)
    sha256: str = ""
    size: int = 0


class PackageReader(Protocol):
    def read_source(self, path: str) -> SourcePackage: ...

    def read_binary(self, path: str) -> BinaryPackage: ...
