"""Signing keys: one per target, Copr-style.

The secret key lives in this machine's GnuPG home (see `config.paths`); the
target's config in the state tree records its fingerprint (`signing_key`),
so every clone knows which key must have signed the target's RPMs, and the
change is an admin's commit like any other config change. The public key is
exported as `<repos>/<target>/RPM-GPG-KEY-sluice-<target>` for the repos,
together with the public keys of the target's retired keys whose signatures
its testing and stable repos still hold (see `app.keyrotation`).
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import re
from dataclasses import dataclass

from app import audit, builds, manifests
from app.errors import BadInput, StateConflict, UsageError
from app.targets import Target, target_path
from backends.base import Change, KeyInfo, Keyring, Person, Snapshot, StateStore, write_atomic

WARN_DAYS = 30
EXPIRES = re.compile(r"0|[1-9][0-9]{0,4}[dwmy]?")


@dataclass(frozen=True)
class TargetKey:
    """A target's signing key as this machine sees it."""

    target: str
    fingerprint: str
    key: KeyInfo | None  # None: the secret key is not in this machine's keyring
    status: str = "current"  # or "retired": never signs again
    in_repos: bool = True  # a retired key: its signatures are still in the target's repos

    def days_left(self, now: datetime.datetime | None = None) -> int | None:
        if self.key is None or self.key.expires is None:
            return None
        moment = now or datetime.datetime.now(datetime.timezone.utc)
        return (_parse(self.key.expires) - moment).days

    def warning(self) -> str | None:
        days = self.days_left()
        if days is None or days >= WARN_DAYS or self.status != "current":  # a retired key may expire
            return None
        when = f"expired on {self.key.expires}" if days < 0 else f"expires on {self.key.expires} (in {days} days)"
        return f"the signing key {self.fingerprint} of target {self.target} {when}"

    def to_json(self) -> dict:
        k = self.key
        return {"target": self.target, "fingerprint": self.fingerprint, "here": k is not None,
                "uid": k.uid if k else None, "algorithm": k.algorithm if k else None,
                "created": k.created if k else None, "expires": k.expires if k else None,
                "days_left": self.days_left(), "warning": self.warning(), "status": self.status,
                "in_repos": self.in_repos}


def key_file_name(target: str) -> str:
    return f"RPM-GPG-KEY-sluice-{target}"


class Keys:
    def __init__(self, store: StateStore, keyring: Keyring, actor: Person, repos: str, home: str) -> None:
        self.store, self.keyring, self.actor, self.repos, self.home = store, keyring, actor, repos, home

    def create(self, target: str, passphrase: str | None, rsa: bool = False, expires: str = "5y") -> TargetKey:
        """Make the target's key (admins only, once per target) and record it."""
        check_expires(expires)
        self._check(self.store.snapshot(), target)
        info = self.new_key(target, passphrase, rsa, expires)

        def plan(snap: Snapshot) -> Change:
            current = self._check(snap, target)
            text = audit.message(f"key: create signing key {info.fingerprint} for target {target}", "",
                                 [("Op", "key-create"), ("Target", target), ("Key", info.fingerprint),
                                  ("Actor", self.actor.email)])
            changed = dataclasses.replace(current, signing_key=info.fingerprint)
            return Change({target_path(target): changed.dump()}, text, self.actor)
        self.store.update(plan)
        self.export(target)
        return TargetKey(target, info.fingerprint, info)

    def new_key(self, target: str, passphrase: str | None, rsa: bool, expires: str) -> KeyInfo:
        """A new secret key in this machine's keyring (nothing recorded yet)."""
        return self.keyring.create(f"sluice {target} signing key <{self.actor.email}>", passphrase, rsa, expires)

    def admin_target(self, snap: Snapshot, target: str, what: str) -> Target:
        """The target, when the actor is an admin (only admins change keys)."""
        builds.load_policy(snap).require_admin(self.actor.email, what)
        return builds.load_target(snap, target)

    def _check(self, snap: Snapshot, target: str) -> Target:
        current = self.admin_target(snap, target, "create signing keys")
        if current.signing_key:
            raise StateConflict(f"target {target} already has a signing key, {current.signing_key}",
                                "one key per target: see it with `sluice key list`, replace it with "
                                f"`sluice key rotate --target {target} -m WHY`")
        return current

    def list(self) -> list[TargetKey]:
        """Each target's current key, then its retired ones, newest first."""
        snap = self.store.snapshot()
        here = {k.fingerprint: k for k in self.keyring.keys()} if os.path.isdir(self.home) else {}
        found = []
        for name in builds.target_names(snap):
            target = builds.load_target(snap, name)
            if target.signing_key:
                found.append(TargetKey(name, target.signing_key, here.get(target.signing_key)))
            used = in_repos(snap, name) if target.retired_keys else set()
            found += [TargetKey(name, f, here.get(f), "retired", f in used) for f in reversed(target.retired_keys)]
        return found

    def for_target(self, target: str) -> TargetKey:
        """The usable key of `target` here, or a clear error (exit 2)."""
        fingerprint = builds.load_target(self.store.snapshot(), target).signing_key
        if not fingerprint:
            raise BadInput(f"target {target} has no signing key",
                           f"an admin creates one with `sluice key create --target {target}`")
        here = {k.fingerprint: k for k in self.keyring.keys()}
        key = TargetKey(target, fingerprint, here.get(fingerprint))
        if key.key is None:
            raise BadInput(f"the signing key {fingerprint} of target {target} is not on this machine",
                           f"import its secret key: `gpg --homedir {self.home} --import SECRET-KEY.asc`, "
                           "or sign where it was created")
        days = key.days_left()
        if days is not None and days < 0:
            raise BadInput(f"the signing key {fingerprint} of target {target} expired on {key.key.expires}",
                           f"extend it: `gpg --homedir {self.home} --quick-set-expire {fingerprint} 1y`, "
                           "then sign again (rpmsign refuses an expired key)")
        return key

    def locked(self, targets) -> list[TargetKey]:
        """The keys of `targets` that need a passphrase here (a key that
        unlocks without one, unprotected or through gpg-agent, is left out),
        so that a UI asks before the work starts, not in the middle of it.
        Raises what `for_target` raises for a target without a usable key."""
        found: dict[str, TargetKey] = {}
        for target in sorted(set(targets)):
            key = self.for_target(target)
            if key.fingerprint not in found and not self.keyring.unlocks(key.fingerprint, None):
                found[key.fingerprint] = key
        return list(found.values())

    def export(self, target: str) -> str:
        """Write the target's key file under the repos root, for dnf's
        `gpgkey=` (the repo publisher calls this too); returns the path."""
        self.for_target(target)
        data = self.key_file(target)
        folder = os.path.join(self.repos, target)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, key_file_name(target))
        write_atomic(path, data)
        return path

    def key_file(self, target: str, signers: set[str] | frozenset[str] = frozenset()) -> bytes:
        """The public keys dnf needs for the target's repos: the current key
        (it signs repomd.xml) and every retired key whose signatures the
        repos still hold, or that signed one of `signers` (a rebuilt repo's
        packages). A key whose public half is not here is bad input."""
        snap = self.store.snapshot()
        config = builds.load_target(snap, target)
        used = (in_repos(snap, target) if config.retired_keys else set()) | set(signers)
        wanted = [config.signing_key, *(f for f in reversed(config.retired_keys) if f in used)]
        wanted += sorted(used - set(wanted))
        self.require_public(target, wanted)
        return self.keyring.export(*wanted)

    def require_public(self, target: str, fingerprints) -> None:
        for fingerprint in fingerprints:
            if not self.keyring.has_public(fingerprint):
                raise BadInput(f"the public key {fingerprint}, whose signatures are in the repos of target "
                               f"{target}, is not on this machine, so dnf could not check them",
                               f"import it: `gpg --homedir {self.home} --import KEY.asc` (an earlier "
                               f"{key_file_name(target)} holds it); nothing was changed")


def check_expires(expires: str) -> None:
    if not EXPIRES.fullmatch(expires):
        raise UsageError(f"--expires {expires!r} is not a duration",
                         "use 0 (never), a number of days, or e.g. 90d, 12w, 6m, 2y")


def in_repos(snap: Snapshot, target: str) -> set[str]:
    """The keys that signed a package of the target's testing or stable
    repo, as their latest manifests list them."""
    found = set()
    for repo in ("testing", "stable"):
        latest = manifests.latest(snap, target, repo)
        found |= {p.signed_by for p in latest.packages} if latest else set()
    return found


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
