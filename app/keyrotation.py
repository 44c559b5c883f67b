"""`sluice key rotate --target T -m WHY`: a new signing key for a target.

A key expires, or is suspected of being compromised, or a policy says keys
live two years: the admin makes a new key, and from that commit on it is
the only key that signs the target's RPMs and repo metadata. The old key
moves to the target's `retired_keys` and never signs again (`sign`,
`push` and `publish` only ever use `signing_key`). What it signed stays
valid: the RPMs in testing and stable keep their signatures, and the key
file beside the repos (`RPM-GPG-KEY-sluice-<target>`) holds the old public
key for as long as their latest manifests list a package it signed, so dnf
with `gpgcheck=1` still installs them. `repomd.xml` of this machine's
testing and stable repos is signed again with the new key at once.

One admin commit records it (`Sluice-Op: key-rotate`, the new key and the
retired one as trailers, the reason as the body), so `git log` says when and
why a target changed keys; sync checks it as any target change (admins only).
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
from dataclasses import dataclass

from app import audit
from app.errors import StateConflict, UsageError
from app.keys import Keys, TargetKey, check_expires, in_repos
from app.targets import Target, target_path
from backends.base import Change, Snapshot, write_atomic

REPOS = ("testing", "stable")


@dataclass(frozen=True)
class Rotated:
    target: str
    new: TargetKey
    retired: str
    still_in_repos: bool  # the retired key's signatures are in the repos: its public key stays published
    resigned: tuple[str, ...]  # the repos whose repomd.xml the new key signed here
    key_file: str

    def to_json(self) -> dict:
        return {**self.new.to_json(), "retired": self.retired, "retired_in_repos": self.still_in_repos,
                "resigned": list(self.resigned), "key_file": self.key_file}


class Rotation:
    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def rotate(self, target: str, reason: str, passphrase: str | None, rsa: bool = False,
               expires: str = "5y") -> Rotated:
        """Retire the target's key and make a new one its signing key.
        Refused before a key is made: not an admin, no key yet, no reason,
        or the public key of signatures in the repos not here."""
        if not reason.strip():
            raise UsageError("say why the key is rotated", "sluice key rotate --target T -m WHY")
        check_expires(expires)
        keys = self.keys
        snap = keys.store.snapshot()
        old = self._current(snap, target).signing_key
        keys.require_public(target, in_repos(snap, target))
        info = keys.new_key(target, passphrase, rsa, expires)

        def plan(snap: Snapshot) -> Change:
            current = self._current(snap, target)
            if current.signing_key != old:
                raise StateConflict(f"the signing key of target {target} changed to {current.signing_key} "
                                    "while this rotation ran", "see `sluice key list`; rotate again if needed")
            changed = dataclasses.replace(current, signing_key=info.fingerprint,
                                          retired_keys=(*current.retired_keys, old))
            text = audit.message(f"key: rotate the signing key of target {target}: {old[-16:]} -> "
                                 f"{info.fingerprint[-16:]}", reason,
                                 [("Op", "key-rotate"), ("Target", target), ("Key", info.fingerprint),
                                  ("Retired", old), ("Actor", keys.actor.email)])
            return Change({target_path(target): changed.dump()}, text, keys.actor)
        keys.store.update(plan)
        path = keys.export(target)
        resigned = tuple(repo for repo in REPOS
                         if self._resign(os.path.join(keys.repos, target, repo), info.fingerprint, passphrase))
        return Rotated(target, TargetKey(target, info.fingerprint, info), old,
                       old in in_repos(keys.store.snapshot(), target), resigned, path)

    def _current(self, snap: Snapshot, target: str) -> Target:
        current = self.keys.admin_target(snap, target, "rotate signing keys")
        if not current.signing_key:
            raise StateConflict(f"target {target} has no signing key to rotate",
                                f"create its first one with `sluice key create --target {target}`")
        return current

    def _resign(self, folder: str, fingerprint: str, passphrase: str | None) -> bool:
        """Sign the repo's current repomd.xml with the new key, holding the
        publisher's lock so that no publish swaps the metadata meanwhile."""
        repomd = os.path.join(folder, "repodata", "repomd.xml")
        if not os.path.exists(repomd):
            return False
        with open(os.path.join(folder, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(repomd, "rb") as f:
                data = f.read()
            write_atomic(repomd + ".asc", self.keys.keyring.sign_detached(fingerprint, data, passphrase))
        return True
