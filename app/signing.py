"""`sluice sign`: needsign -> signed, with real signatures checked first.

Everything that can be refused is refused before a file is touched: the
role and the state of every build (and every member of its batch: all or
nothing), the target's key, the RPMs being in this machine's artifact
store, and the passphrase. Then the RPMs are copied out of the store,
signed with one `rpmsign` call per key, checked against the target's public
key alone, and stored as new artifacts (a signature changes the bytes, so
the sha256 too). Only then is one `sign` event per build written, carrying
the signed artifacts with `signed_by`; the unsigned ones stay in the store.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Callable

from app import tasks
from app.errors import BackendError, BadInput, NotPermitted, StateConflict, UsageError
from app.index import Filters, Index
from app.keys import Keys, TargetKey
from app.lifecycle import BuildView
from app.model import Op, State
from app.queue import Queue
from backends.base import ArtifactStore, Signer

# (fingerprint, uid) -> the passphrase, or None when none can be had here
Passphrase = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Group:
    """The builds one `sign` commit covers: a build, or its whole batch."""

    members: tuple[BuildView, ...]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(m.id for m in self.members)


class Signing:
    def __init__(self, queue: Queue, index: Index, keys: Keys, signer: Signer, artifacts: ArtifactStore) -> None:
        self.queue, self.index, self.keys, self.signer, self.artifacts = queue, index, keys, signer, artifacts

    def plan(self, ids: list[str], every: bool) -> list[Group]:
        """The groups to sign, checked against role and state (nothing written)."""
        if every:
            self.index.refresh()
            ids = [row["id"] for row in self.index.rows(Filters(states=(str(State.NEEDSIGN),)))]
        elif not ids:
            raise UsageError("name the builds to sign", "sluice sign ID… or sluice sign --all")
        groups: dict[frozenset[str], Group] = {}
        self.skipped: list[str] = []
        refused: list[NotPermitted] = []
        for build in ids:
            try:
                group = Group(tuple(self.queue.check(build, Op.SIGN)))
            except (StateConflict, NotPermitted) as exc:
                if not every:
                    raise
                if isinstance(exc, NotPermitted):  # --all signs what this signer may sign
                    refused.append(exc)
                else:
                    self.skipped.append(exc.message)  # --all signs what is ready, says what is not
                continue
            groups.setdefault(group.ids, group)
        if refused and not groups:
            raise refused[0]  # nothing this user may sign: say why, never "nothing to sign"
        return list(groups.values())

    def sign(self, groups: list[Group], passphrase: Passphrase) -> list[BuildView]:
        keys = self._keys(groups)
        phrases = self._passphrases(keys.values(), passphrase)
        with self.artifacts.scratch(".sign-") as work:
            copies = self._copy_out(groups, work)
            targets = {m.id: m.record.target for g in groups for m in g.members}
            for fingerprint in {k.fingerprint for k in keys.values()}:
                mine = [path for (build, _), path in copies.items()
                        if keys[targets[build]].fingerprint == fingerprint]
                if mine:
                    self.signer.sign(mine, fingerprint, phrases[fingerprint])
                    self.signer.verify(mine, self.keys.keyring.export(fingerprint))
            stored = {where: self.artifacts.put(path) for where, path in copies.items()}
        done: list[BuildView] = []
        for group in groups:
            data = {}
            for member in group.members:
                key = keys[member.record.target]
                data[member.id] = {"key": key.fingerprint, "artifacts": [
                    {"name": a.name, "arch": a.arch, "sha256": stored[(member.id, a.name)].sha256,
                     "size": stored[(member.id, a.name)].size, "signed_by": key.fingerprint}
                    for a in tasks.rpms(member)]}
            done += self.queue.record_each(group.members[0].id, Op.SIGN, data)
        return done

    def _keys(self, groups: list[Group]) -> dict[str, TargetKey]:
        targets = {m.record.target for g in groups for m in g.members}
        return {t: self.keys.for_target(t) for t in sorted(targets)}

    def _passphrases(self, keys, passphrase: Passphrase) -> dict[str, str | None]:
        """Each key's passphrase, checked before anything is signed."""
        found: dict[str, str | None] = {}
        for key in keys:
            if key.fingerprint in found:
                continue
            if self.keys.keyring.unlocks(key.fingerprint, None):
                found[key.fingerprint] = None
                continue
            phrase = passphrase(key.fingerprint, key.key.uid if key.key else "")
            if phrase is None:
                raise UsageError(f"the signing key {key.fingerprint} of target {key.target} has a passphrase",
                                 "pass --passphrase-file FILE, or run sign on a terminal to be asked")
            if not self.keys.keyring.unlocks(key.fingerprint, phrase):
                raise BackendError(f"wrong passphrase for the signing key {key.fingerprint} of target "
                                   f"{key.target}; nothing was signed", "try again with the right passphrase")
            found[key.fingerprint] = phrase
        return found

    def _copy_out(self, groups: list[Group], work: str) -> dict[tuple[str, str], str]:
        """(build id, RPM name) -> a writable copy of the stored RPM."""
        copies = {}
        for group in groups:
            for member in group.members:
                folder = os.path.join(work, member.id)
                os.makedirs(folder)
                for artifact in tasks.rpms(member):
                    if not self.artifacts.has(artifact.sha256):
                        raise BadInput(f"{artifact.name} of {member.record.nvr} ({member.record.short}) is not "
                                       "in this machine's artifact store; nothing was signed",
                                       "`sluice sync` fetches it from the artifact remote once the machine "
                                       "that built it has synced; or sign there")
                    path = os.path.join(folder, artifact.name)
                    shutil.copyfile(self.artifacts.path(artifact.sha256), path)
                    copies[(member.id, artifact.name)] = path
        return copies

