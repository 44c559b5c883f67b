"""The private buildroot repo of each target: every build from `built` on.

A build is in its target's buildroot repo from the moment it is built until
it is withdrawn or superseded, so that packages which need it can build
before it is released. Scratch builds never are. The repo's content is
derived from the queue, never edited by hand: `publish` makes
`<repos>/<target>/buildroot/` hold exactly the binary RPMs of those builds
(createrepo_c, incremental) and answers which builds it holds, which the
runner records on every task it starts. A build whose RPMs this machine does
not have (it was built on another clone) is left out, and said so once.

A target with external repos gets a merged repo (`backends.repomerge`): its
own builds are published complete in the hidden `buildroot/.local/`, and
`buildroot/` offers them first, then each external repo's packages whose
source package no earlier repo has. The merge is redone when the target's
builds or external repos change, and at most every REFRESH seconds it looks
whether an external repo changed.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Callable, Mapping

from app import builds, tasks
from app.index import Filters, Index
from app.errors import SluiceError
from app.model import State
from backends.base import LOCAL, ArtifactStore, Publisher, RepoMerger, RepoSource, Snapshot

IN_BUILDROOT = (State.BUILT, State.HELD, State.NEEDSIGN, State.SIGNED, State.TESTING, State.TESTED,
                State.STABLE)
# A build that --after waits for, in one of these, will never get there.
NEVER = frozenset({State.FAILED, State.CANCELLED, State.WITHDRAWN, State.SUPERSEDED})
REFRESH = 600.0  # seconds between looks at whether an external repo changed
LOCAL_DIR = ".local"  # where a merged target's own builds are published, inside buildroot/


def repo_dir(root: str, target: str) -> str:
    return os.path.join(root, target, "buildroot")


class Buildroots:
    def __init__(self, index: Index, publisher: Publisher, artifacts: ArtifactStore, root: str,
                 note: Callable[[str], None] = lambda line: None, merger: RepoMerger | None = None) -> None:
        self.index, self.publisher, self.artifacts, self.root, self.note = index, publisher, artifacts, root, note
        self.merger = merger
        self.origins: dict[str, Mapping[str, str]] = {}  # target -> {"name-version-release.arch": repo}
        self._merged_at: dict[str, float] = {}
        self._missing: set[str] = set()  # builds already reported as not publishable here
        self.members: dict[str, tuple[str, ...]] = {}  # target -> build ids, as last published
        self._rpms: dict[str, tuple[str, list]] = {}  # build id -> (updated, its RPMs): read once per change
        self._published: dict[str, tuple] = {}  # target -> (files, externals) as last published by this process

    def publish(self, snap: Snapshot) -> dict[str, tuple[str, ...]]:
        """Bring every target's buildroot repo up to `snap` (the index must be
        refreshed to it); returns the build ids each now holds."""
        wanted: dict[str, dict[str, str]] = {t: {} for t in builds.target_names(snap)}
        members: dict[str, list[str]] = {t: [] for t in wanted}
        seen: set[str] = set()
        for row in self.index.rows(Filters(states=tuple(map(str, IN_BUILDROOT)))):
            if row["scratch"] or row["target"] not in wanted:
                continue
            seen.add(row["id"])
            rpms = self._rpms_of(snap, row)
            absent = [r.name for r in rpms if not self.artifacts.has(r.sha256)]
            if absent:  # built on another clone: its RPMs are in that machine's store
                if row["id"] not in self._missing:
                    self._missing.add(row["id"])
                    self.note(f"buildroot {row['target']}: {row['nvr']} ({row['id'][:7]}) left out, its RPMs "
                              f"are not in this machine's artifact store ({', '.join(absent[:3])}); "
                              "`sluice sync` fetches them")
                continue
            members[row["target"]].append(row["id"])
            for rpm in rpms:
                wanted[row["target"]].setdefault(rpm.name, rpm.sha256)
        for target, files in wanted.items():
            self._publish(snap, target, files)
        self.members = {t: tuple(sorted(ids)) for t, ids in members.items()}
        self._rpms = {i: rpms for i, rpms in self._rpms.items() if i in seen}  # forget builds that left
        return self.members

    def _publish(self, snap: Snapshot, target: str, files: dict[str, str]) -> None:
        folder = repo_dir(self.root, target)
        externals = tuple(RepoSource(r.name, r.url) for r in builds.load_target(snap, target).external_repos)
        if externals and self.merger is None:
            raise RuntimeError("Buildroots needs a merger for targets with external repos")
        local = os.path.join(folder, LOCAL_DIR) if externals else folder
        fresh = time.monotonic() - self._merged_at.get(target, -REFRESH) < REFRESH or not externals
        if (self._published.get(target) == (files, externals) and fresh
                and os.path.exists(os.path.join(folder, "repodata"))):
            return  # the runner's own events move the ref far more often than a build's state
        if not externals and os.path.isdir(os.path.join(folder, LOCAL_DIR)):
            _unmerge(folder)  # the target's external repos were taken out
        result = self.publisher.publish(local, files)
        if result.changed:
            self.note(f"buildroot {target}: +{len(result.added)} -{len(result.removed)} packages")
        if externals:
            self._merged_at[target] = time.monotonic()
            try:
                merged = self.merger.merge(folder, local, externals)
            except SluiceError:  # tried again when the builds change, or after REFRESH
                self._published[target] = (files, externals)
                raise
            self.origins[target] = merged.origins
            if merged.changed:
                self.note(f"buildroot {target}: merged " + ", ".join(
                    f"{name} {n}" + (f" ({merged.masked[name]} hidden by an earlier repo)"
                                     if merged.masked.get(name) else "") for name, n in merged.taken.items()))
        else:
            self.origins[target] = {name[:-len(".rpm")]: LOCAL for name in files}
        self._published[target] = (files, externals)

    def _rpms_of(self, snap: Snapshot, row: dict) -> list:
        known = self._rpms.get(row["id"])
        if known is None or known[0] != row["updated"]:
            known = (row["updated"], tasks.rpms(builds.load_build(snap, row["id"])))
            self._rpms[row["id"]] = known
        return known[1]

    def lacks(self, build_id: str) -> bool:
        """Whether the build is left out because this machine lacks its RPMs."""
        return build_id in self._missing

    def holds(self, target: str, build_id: str) -> bool:
        return build_id in self.members.get(target, ())


def _unmerge(folder: str) -> None:
    """Back to a plain repo: drop the merged metadata and the local copy, so
    createrepo_c starts from nothing it did not write."""
    for name in (LOCAL_DIR, "repodata"):
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    for name in (".merged", ".origins.json", ".published"):
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
