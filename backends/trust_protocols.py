"""The commit-signature interfaces: signing state commits with a person's
own OpenPGP key, and reading back who signed one.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

UNSIGNED, GOOD, BAD, UNKNOWN_KEY = "unsigned", "good", "bad", "unknown-key"


@dataclass(frozen=True)
class Verdict:
    """What a commit's signature says. `fingerprints` holds the primary key's
    and the signing subkey's fingerprints for a good signature, the key id
    the signature names for an unknown key."""

    status: str  # UNSIGNED, GOOD, BAD or UNKNOWN_KEY
    fingerprints: tuple[str, ...] = ()
    detail: str = ""


class CommitSigner(Protocol):
    """Signs commit objects with a key of the user's own keyring."""

    def sign(self, payload: bytes, fingerprint: str) -> bytes:
        """An ASCII-armoured detached signature of `payload` (git's `gpgsig`)."""
        ...


class CommitVerifier(Protocol):
    """Checks a commit's `gpgsig` against the public keys of a keyring."""

    def check(self, commit: str) -> Verdict: ...
