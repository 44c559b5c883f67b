"""Artifacts travel with `sluice sync`, through an artifact remote.

After the queue is merged, this clone sends what the queue references and
it has but the remote lacks, and fetches what its user needs and lacks:

- sent: every build's SRPM, its RPMs as built and as signed, and the logs
  of each task's last attempt, when this machine has them;
- fetched, by role (what each role's commands read from the local store):
  admins (the runner) the SRPMs of queued and building builds and the RPMs
  as built of every build in a buildroot (built … stable); signers the RPMs
  as built of the builds in needsign they may sign; signers and admins (who
  push and publish) the signed RPMs of signed, testing, tested and stable
  builds. Scratch builds are fetched only to be built.

Every fetched file is stored only when its sha256 is the digest the queue
names (a damaged copy is refused, reported and not stored). Only digests
become paths. Which builds are looked at: those whose files changed since
the last sync with this remote that moved everything it should (remembered
per remote in the index folder, with the user's roles), plus those whose
artifacts were on neither side then; the first sync looks at every build.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from app import builds, tasks
from app.buildroot import IN_BUILDROOT
from app.errors import NotFound
from app.lifecycle import BuildView
from app.model import State
from app.policy import Policy
from backends.base import ArtifactRemote, ArtifactStore, Person, StateStore, sha256_file, write_atomic

PUBLISHED = (State.SIGNED, State.TESTING, State.TESTED, State.STABLE)
TO_BUILD = (State.QUEUED, State.BUILDING)
_LISTED = 100  # absent artifacts named in --json (all are counted)


@dataclass
class Moved:
    """What one artifact sync did."""

    where: str
    fetched: int = 0
    fetched_bytes: int = 0
    sent: int = 0
    sent_bytes: int = 0
    absent: list[str] = field(default_factory=list)  # needed here, on neither side yet
    refused: list[str] = field(default_factory=list)  # damaged copies on the remote, not stored

    def to_json(self) -> dict:
        return {"remote": self.where, "fetched": self.fetched, "fetched_bytes": self.fetched_bytes,
                "sent": self.sent, "sent_bytes": self.sent_bytes, "absent": self.absent[:_LISTED],
                "absent_count": len(self.absent), "refused": self.refused}

    def summary(self) -> str:
        line = (f"artifacts: fetched {self.fetched} ({size(self.fetched_bytes)}), "
                f"sent {self.sent} ({size(self.sent_bytes)})")
        if self.absent:
            line += f"; {len(self.absent)} needed here are on neither side yet"
        return line


class ArtifactSync:
    def __init__(self, store: StateStore, artifacts: ArtifactStore, actor: Person) -> None:
        self.store, self.artifacts, self.actor = store, artifacts, actor

    def run(self, remote: ArtifactRemote, head: str, everything: bool = False) -> Moved:
        """Move artifacts both ways for the queue at `head`."""
        snap = self.store.snapshot(head)
        policy = builds.load_policy(snap)
        roles = sorted([g.role, *g.packages] for g in policy.grants if g.email == self.actor.email)
        memory = _Memory(self.store.index_dir(), remote.where)
        since = None if everything else memory.since(roles)
        ids = self._builds(head, since, memory.pending if since else [])
        referenced: dict[str, tuple[str, int]] = {}  # digest -> (name, size)
        wanted: dict[str, tuple[str, str]] = {}  # digest -> (name, build id)
        for build_id in ids:
            try:
                view = builds.load_build(snap, build_id)
            except NotFound:
                continue
            referenced.update(_referenced(view))
            wanted.update((a.sha256, (a.name, build_id)) for a in _needed(view, policy, self.actor.email))
        ours = {d for d in referenced if self.artifacts.has(d)}
        lacking = {d for d in wanted if not self.artifacts.has(d)}
        there = remote.present(ours | lacking)
        moved = Moved(remote.where)
        for digest in sorted(ours - there):
            remote.send(self.artifacts.path(digest), digest)
            moved.sent += 1
            moved.sent_bytes += os.path.getsize(self.artifacts.path(digest))
        self._fetch(remote, sorted(lacking & there), wanted, moved)
        absent = sorted(lacking - there)
        moved.absent = [f"{wanted[d][0]} ({wanted[d][1][:7]})" for d in absent]
        if not moved.refused:
            memory.remember(head, roles, sorted({wanted[d][1] for d in absent}))
        return moved

    def _builds(self, head: str, since: str | None, pending: list[str]) -> list[str]:
        snap = self.store.snapshot(head)
        changes = self.store.changes(since, head) if since else None
        if changes is None:
            return list(builds.build_ids(snap))
        found = dict.fromkeys(pending)
        for change in changes:
            parts = change.path.split("/")
            if len(parts) >= 3 and parts[0] == "builds":
                found[parts[2]] = None
        return list(found)

    def _fetch(self, remote: ArtifactRemote, digests: list[str], wanted: dict, moved: Moved) -> None:
        if not digests:
            return
        with self.artifacts.scratch(".fetch-") as work:  # held while it lives: a killed sync is swept
            for digest in digests:
                local = os.path.join(work, digest)
                remote.fetch(digest, local)
                name, build_id = wanted[digest]
                if sha256_file(local) != digest:
                    os.unlink(local)
                    moved.refused.append(f"{name} of build {build_id[:7]} ({digest[:12]}…) "
                                         "is damaged: its sha256 differs; it was not stored")
                    continue
                stored = self.artifacts.adopt(local, digest)  # checked just above: linked, not copied
                moved.fetched += 1
                moved.fetched_bytes += stored.size


def _referenced(view: BuildView) -> dict[str, tuple[str, int]]:
    """The artifacts of the build's current round: SRPM, RPMs as built and as
    signed, and each task's last logs."""
    found = {a.sha256: (a.name, a.size) for a in tasks.artifacts(view, signed=False)}
    found.update((a.sha256, (a.name, a.size)) for a in tasks.rpms(view, signed=True))
    for arch in view.record.arches:
        found.update((digest, (name, 0)) for name, digest in tasks.logs(view, arch).items())
    return found


def _needed(view: BuildView, policy: Policy, email: str) -> list[tasks.Artifact]:
    """What this user's roles need of the build here (see the module's doc)."""
    state, record = view.state, view.record
    admin = policy.is_admin(email)
    if state in TO_BUILD:
        return [a for a in tasks.artifacts(view, signed=False) if a.arch == "src"][:1] if admin else []
    if record.scratch:
        return []
    found = []
    if (admin and state in IN_BUILDROOT) or (state is State.NEEDSIGN and policy.has(email, "signer", record.package)):
        found += tasks.rpms(view)
    if state in PUBLISHED and policy.may_publish(email):
        found += tasks.rpms(view, signed=True)
    return found


class _Memory:
    """Per artifact remote: the commit up to which everything moved, the
    roles it was moved for, and the builds whose artifacts were missing."""

    def __init__(self, folder: str, where: str) -> None:
        self.path = os.path.join(folder, "artifact-sync.json")
        self.key = hashlib.sha256(where.encode()).hexdigest()[:16]
        try:
            with open(self.path, encoding="utf-8") as f:
                self.doc = json.load(f)
        except (OSError, ValueError):
            self.doc = {}
        mine = self.doc.get(self.key) if isinstance(self.doc, dict) else None
        self.mine = mine if isinstance(mine, dict) else {}
        pending = self.mine.get("pending")
        self.pending = [p for p in pending if isinstance(p, str)] if isinstance(pending, list) else []

    def since(self, roles: list) -> str | None:
        commit = self.mine.get("commit")
        return commit if isinstance(commit, str) and self.mine.get("roles") == roles else None

    def remember(self, head: str, roles: list, pending: list[str]) -> None:
        doc = self.doc if isinstance(self.doc, dict) else {}
        doc[self.key] = {"commit": head, "roles": roles, "pending": pending}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_atomic(self.path, json.dumps(doc, indent=1).encode())
        except OSError:
            pass  # only a cache: the next sync looks at more builds


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
