"""The signing interfaces: a keyring of target keys, and an RPM signer.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class KeyInfo:
    """A signing key as the keyring holds it (times as ISO 8601, UTC)."""

    fingerprint: str
    uid: str
    created: str
    expires: str | None  # None: never
    algorithm: str = ""


class Keyring(Protocol):
    """The signing keys (secret keys) of this machine: one current key per
    target, plus the public keys of retired ones."""

    def create(self, uid: str, passphrase: str | None, rsa: bool, expires: str) -> KeyInfo: ...

    def keys(self) -> list[KeyInfo]: ...

    def export(self, *fingerprints: str) -> bytes:
        """The ASCII-armoured public keys, in one block."""
        ...

    def has_public(self, fingerprint: str) -> bool:
        """Whether the keyring holds the public key (a retired key's may be
        all that is left of it here)."""
        ...

    def unlocks(self, fingerprint: str, passphrase: str | None) -> bool:
        """Whether `passphrase` (None: none) lets the key sign."""
        ...

    def sign_detached(self, fingerprint: str, data: bytes, passphrase: str | None) -> bytes:
        """An ASCII-armoured detached signature of `data` (for repomd.xml.asc)."""
        ...


class Signer(Protocol):
    """Signs RPM files in place with a keyring's key, then checks them."""

    def sign(self, paths: Sequence[str], fingerprint: str, passphrase: str | None) -> None: ...

    def verify(self, paths: Sequence[str], public_key: bytes) -> None:
        """Raise `BackendError` unless every file carries a good signature by `public_key`."""
        ...
