"""The testing and stable repos of each target, derived from the queue.

`<repos>/<target>/testing` holds the signed RPMs of the target's builds in
testing and tested, `<repos>/<target>/stable` those in stable; nothing
unsigned ever enters them. As with the buildroot repo, the content comes
from the state ref, and `publish` makes each directory match it (hard links,
metadata, and `repomd.xml.asc` by the target's key, signed before the new
metadata goes live), exports the public key beside the repos, and, when the
content differs from the repo's last manifest, commits a new manifest (see
`app.manifests`). A push (`push testing|stable`) is the lifecycle event
followed by a publish of the target; everything that can be refused is
refused before the event is written.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable

from app import advisories, audit, builds, evr, manifests, tasks, updateinfo
from app.advisories import Advisory
from app.actions import Action
from app.errors import BadInput, BackendError, SluiceError, StateConflict, UsageError
from app.index import Filters, Index
from app.keys import Keys, TargetKey
from app.lifecycle import BuildView
from app.manifests import Manifest, Package, nevra
from app.model import Op, State, timestamp
from app.queue import Queue
from backends.base import ArtifactStore, Change, Person, Publisher, Snapshot

STAGES = {"testing": (State.TESTING, State.TESTED), "stable": (State.STABLE,)}
PUSH = {"testing": Op.PUSH_TESTING, "stable": Op.PUSH_STABLE}
Passphrase = Callable[[str, str], "str | None"]  # (fingerprint, uid) -> passphrase or None


def repo_dir(root: str, target: str, stage: str) -> str:
    return os.path.join(root, target, stage)


class Releases:
    def __init__(self, queue: Queue, index: Index, keys: Keys, publisher: Publisher, artifacts: ArtifactStore,
                 root: str, note: Callable[[str], None] = lambda line: None) -> None:
        self.queue, self.index, self.keys, self.publisher = queue, index, keys, publisher
        self.artifacts, self.root, self.note = artifacts, root, note
        # called with each advisory a publish puts into a stable repo for the first time
        self.announce: Callable[[Advisory], None] = lambda advisory: None

    @property
    def store(self):
        return self.queue.store

    @property
    def actor(self) -> Person:
        return self.queue.actor

    # ------------------------------------------------------------ push

    def push(self, stage: str, ids: list[str], passphrase: Passphrase, partial: bool = False) -> list[BuildView]:
        """Push builds (whole batches) to `stage`, then publish their targets.
        To stable, an advisory's builds go together (or are there already)
        unless `partial`: the advisory then waits for the rest."""
        if stage not in PUSH:
            raise UsageError(f"there is no {stage!r} repo to push to", "push testing ID… or push stable ID…")
        if not ids:
            raise UsageError("name the builds to push", f"sluice push {stage} ID…")
        op = PUSH[stage]
        groups: dict[frozenset[str], list[BuildView]] = {}
        for build in ids:
            members = self.queue.check(build, op)  # role, state, batch: raises what perform would
            groups.setdefault(frozenset(m.id for m in members), members)
        members = [m for group in groups.values() for m in group]
        snap = self.store.snapshot()
        if stage == "stable":
            self._never_older(snap, members)
            if not partial:
                _whole_advisories(snap, members)
        targets = sorted({m.record.target for m in members})
        phrases = self._ready(targets, passphrase, members)
        for target in targets:  # what is in the repos already must be publishable here too
            for repo in STAGES:
                self.wanted(snap, target, repo)
        done: list[BuildView] = []
        try:
            for group in groups.values():
                done += self.queue.perform(Action(op, group[0].id))
            for line in self._publish(targets, phrases):
                self.note(line)
        except (SluiceError, OSError) as exc:
            if not done:
                raise
            pushed = ", ".join(v.record.short for v in done)
            raise BackendError(f"pushed {pushed} to {stage}, but then: {exc}",
                               "the push stands; run `sluice publish` to bring the repos up to the queue") from exc
        return done

    def _never_older(self, snap: Snapshot, members: list[BuildView]) -> None:
        self.index.refresh(snap)
        for member in members:
            rec = member.record
            for build_id in self.index.of_package(rec.target, rec.package, (str(State.STABLE),)):
                have = builds.load_build(snap, build_id).record
                if evr.compare((rec.epoch, rec.version, rec.release), (have.epoch, have.version, have.release)) < 0:
                    raise StateConflict(
                        f"{rec.nevr} ({rec.short}) is older than {have.nevr} ({have.short}), which the stable "
                        f"repo of target {rec.target} already has",
                        "stable never goes back to an older NEVR: build a newer release instead")

    # ------------------------------------------------------------ publish

    def publish(self, targets: list[str] | None, passphrase: Passphrase) -> list[str]:
        """Bring the testing and stable repos of `targets` (all: None) up to
        the queue; returns one line per repo that changed."""
        snap = self.store.snapshot()
        names = builds.target_names(snap)
        for target in targets or ():
            builds.load_target(snap, target)  # a clear error for an unknown target
        chosen = sorted(targets or [t for t in names if builds.load_target(snap, t).signing_key])
        if not chosen:
            raise BadInput("no target has a signing key, so there is no repo to publish",
                           "an admin creates one with `sluice key create --target T`")
        return self._publish(chosen, self._ready(chosen, passphrase, []))

    def _ready(self, targets: list[str], passphrase: Passphrase, members: list[BuildView]) -> dict:
        """Everything a publish needs, checked before anything is written:
        the role, each target's key and passphrase, writable repo folders,
        and the signed RPMs of `members` in this machine's store."""
        builds.load_policy(self.store.snapshot()).require_publisher(self.actor.email, "publish repos")
        ready = {}
        for target in targets:
            key = self.keys.for_target(target)
            ready[target] = (key, self.passphrase(key, passphrase))
            self.keys.key_file(target)  # a retired key's public half missing here: refused now, not after
            for stage in STAGES:
                _check_writable(repo_dir(self.root, target, stage))
        for member in members:
            self._signed_rpms(member)
        return ready

    def repomd_signer(self, fingerprint: str, phrase: str | None) -> Callable[[str], bytes]:
        """What the publisher calls on the new repomd.xml before it goes live."""
        def sign(repomd: str) -> bytes:
            with open(repomd, "rb") as f:
                return self.keys.keyring.sign_detached(fingerprint, f.read(), phrase)
        return sign

    def passphrase(self, key: TargetKey, passphrase: Passphrase) -> str | None:
        """The key's passphrase (None when it needs none), checked before anything is written."""
        keyring = self.keys.keyring
        if keyring.unlocks(key.fingerprint, None):
            return None
        phrase = passphrase(key.fingerprint, key.key.uid if key.key else "")
        if phrase is None:
            raise UsageError(f"the signing key {key.fingerprint} of target {key.target} has a passphrase, "
                             "and publishing signs repomd.xml with it",
                             "pass --passphrase-file FILE, or run on a terminal to be asked")
        if not keyring.unlocks(key.fingerprint, phrase):
            raise BackendError(f"wrong passphrase for the signing key {key.fingerprint} of target {key.target}",
                               "try again with the right passphrase")
        return phrase

    def _publish(self, targets: list[str], ready: dict) -> list[str]:
        snap = self.store.snapshot()
        self.index.refresh(snap)
        lines = []
        for target in targets:
            key, phrase = ready[target]
            wanted = {stage: self.wanted(snap, target, stage) for stage in STAGES}
            for stage, packages in wanted.items():
                line = self._publish_repo(target, stage, packages, key, phrase)
                if line:
                    lines.append(line)
            self.keys.export(target)
        return lines

    def wanted(self, snap: Snapshot, target: str, stage: str) -> tuple[Package, ...]:
        """The signed RPMs the repo must hold, from the queue."""
        found: dict[str, Package] = {}
        for row in self.index.rows(Filters(states=tuple(map(str, STAGES[stage])), target=target)):
            if row["scratch"]:
                continue
            view = builds.load_build(snap, row["id"])
            for artifact in self._signed_rpms(view):
                found.setdefault(artifact.name, Package(artifact.name, nevra(artifact.name, view.record.epoch),
                                                        artifact.sha256, artifact.signed_by, row["id"]))
        return tuple(sorted(found.values()))

    def _signed_rpms(self, view: BuildView) -> list[tasks.Artifact]:
        rpms = tasks.rpms(view, signed=True)
        for artifact in rpms:
            if not artifact.signed_by:
                raise BadInput(f"{artifact.name} of {view.record.nvr} ({view.record.short}) is not signed; "
                               "nothing was published", "only signed RPMs enter testing and stable: sign it")
            if not self.artifacts.has(artifact.sha256):
                raise BadInput(f"the signed {artifact.name} of {view.record.nvr} ({view.record.short}) is not "
                               "in this machine's artifact store; nothing was published",
                               "`sluice sync` fetches it once the signer's machine has synced; or publish there")
        return rpms

    def _publish_repo(self, target: str, stage: str, packages: tuple[Package, ...], key: TargetKey,
                      phrase: str | None) -> str | None:
        sign = self.repomd_signer(key.fingerprint, phrase)
        published = self._advisories(target, packages) if stage == "stable" else []
        extra = {}
        if published:
            snap = self.store.snapshot()
            sources = {b: f"{builds.load_build(snap, b).record.nvr}.src.rpm" for a in published for b in a.builds}
            extra["updateinfo"] = updateinfo.render(published, packages, sources)
        result = self.publisher.publish(repo_dir(self.root, target, stage), {p.name: p.sha256 for p in packages},
                                        sign=sign, extra=extra)
        before = manifests.latest(self.store.snapshot(), target, stage)
        ids = tuple(a.id for a in published)
        written = self._record(target, stage, packages, key.fingerprint, ids)
        if written:
            for advisory in published:
                if advisory.id not in (before.advisories if before else ()):
                    self.announce(advisory)
        if written is None and not result.changed:
            return None
        return (f"{stage} {target}: {len(packages)} packages (+{len(result.added)} -{len(result.removed)})"
                + (f", manifest {written}" if written else ""))

    def _advisories(self, target: str, packages: tuple[Package, ...]) -> list[Advisory]:
        """The target's advisories whose builds are all in the stable repo."""
        return advisories.complete(self.store.snapshot(), target, {p.build for p in packages})

    def _record(self, target: str, stage: str, packages: tuple[Package, ...], key: str,
                ids: tuple[str, ...] = ()) -> str | None:
        """Commit a manifest when the content differs from the last one."""
        written: list[str] = []

        def plan(snap: Snapshot) -> Change:
            last = manifests.latest(snap, target, stage)
            if ((last.packages, last.advisories) if last else ((), ())) == (packages, ids):  # none yet: empty
                raise _Same()
            manifest = Manifest(target, stage, (last.number + 1) if last else 1, packages, key,
                                self.actor.email, timestamp(), ids)
            data = manifest.encode()
            path = manifests.path_of(manifest, data)
            written[:] = [path]
            text = audit.message(f"publish: {stage} repo of {target}, {len(packages)} packages", "",
                                 [("Op", "publish"), ("Target", target), ("Repo", stage),
                                  ("Manifest", path.rsplit("/", 1)[1]), ("Actor", self.actor.email)])
            return Change({path: data}, text, self.actor)
        try:
            self.store.update(plan)
        except _Same:
            return None
        return written[0].rsplit("/", 1)[1]


def _whole_advisories(snap: Snapshot, members: list[BuildView]) -> None:
    """Refuse a push to stable that would leave an advisory half-released."""
    for advisory, left in advisories.missing_for_push(snap, {m.id: m for m in members}):
        named = ", ".join(f"{v.record.nvr} ({v.record.short}, {v.state})" for v in left)
        raise StateConflict(f"advisory {advisory.id} ({advisory.title}) also names {named}, which is neither in "
                            "this push nor in stable; nothing was pushed",
                            "push its builds together (`sluice push stable` with every id), or add --partial to "
                            "push these now and publish the advisory when the rest reach stable")


class _Same(Exception):
    """Internal: the repo's last manifest already lists these packages."""


def _check_writable(folder: str) -> None:
    """Prove the repo folder can be written (root ignores modes, so try it)."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BadInput(f"cannot write the repo directory {folder}: {exc.strerror}; nothing was pushed or published",
                       "fix its permissions, or set `repos` in the local config (or SLUICE_REPOS) to a "
                       "writable folder") from exc
