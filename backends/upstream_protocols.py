"""The interfaces of the upstream import: an upstream repo of source RPMs,
and a checker of RPM signatures against a set of trusted public keys.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True)
class UpstreamPackage:
    """A source RPM as the upstream metadata describes it. Every field is the
    upstream's text: shown and compared, never used as a path."""

    name: str
    epoch: str
    version: str
    release: str
    href: str
    checksum_type: str
    checksum: str
    size: int

    @property
    def nvr(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"

    @property
    def nevr(self) -> str:
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}" if self.epoch not in ("", "0") else self.nvr


class UpstreamFetchFailed(Exception):
    """One package could not be fetched as its metadata describes it
    (`checksum` true: the bytes did not match); the others may still be."""

    def __init__(self, reason: str, checksum: bool) -> None:
        super().__init__(reason)
        self.reason, self.checksum = reason, checksum


class UpstreamRepo(Protocol):
    def source_packages(self, url: str) -> list[UpstreamPackage]:
        """The source RPMs (arch src/nosrc) the repo's primary metadata lists.
        Raises `BackendError` when the repo cannot be read or its metadata
        does not match its repomd.xml."""
        ...

    def fetch(self, url: str, package: UpstreamPackage, path: str) -> None:
        """Download `package` to `path`, checked against the metadata's
        checksum; raises `UpstreamFetchFailed`."""
        ...


@dataclass(frozen=True)
class SignatureVerdict:
    """A package's signature check: `signer` is the trusted primary key's
    fingerprint when it passed; otherwise `problem` says why not."""

    signer: str | None
    problem: str = ""


class SignatureChecker(Protocol):
    def fingerprints(self, armored: bytes) -> list[str]:
        """The primary key fingerprints an ASCII-armoured public key file holds
        (raises `BadInput` when it holds none, or secret key material)."""
        ...

    def verify(self, paths: Sequence[str], keys: Mapping[str, bytes]) -> dict[str, SignatureVerdict]:
        """Each file's verdict against only `keys` ({fingerprint: armoured
        public key}): a signature is required, and must be by one of them."""
        ...
