"""The private buildroot repo of each target: every build from `built` on.

A build is in its target's buildroot repo from the moment it is built until
it is withdrawn or superseded, so that packages which need it can build
before it is released. Scratch builds never are. The repo's content is
derived from the queue, never edited by hand: `publish` makes
`<repos>/<target>/buildroot/` hold exactly the binary RPMs of those builds
(createrepo_c, incremental) and answers which builds it holds, which the
runner records on every task it starts. A build whose RPMs this machine does
not have (it was built on another clone) is left out, and said so once.
"""
from __future__ import annotations

import os
from typing import Callable

from app import builds, tasks
from app.index import Filters, Index
from app.model import State
from backends.base import ArtifactStore, Publisher, Snapshot

IN_BUILDROOT = (State.BUILT, State.HELD, State.NEEDSIGN, State.SIGNED, State.TESTING, State.TESTED,
                State.STABLE)
# A build that --after waits for, in one of these, will never get there.
NEVER = frozenset({State.FAILED, State.CANCELLED, State.WITHDRAWN, State.SUPERSEDED})


def repo_dir(root: str, target: str) -> str:
    return os.path.join(root, target, "buildroot")


class Buildroots:
    def __init__(self, index: Index, publisher: Publisher, artifacts: ArtifactStore, root: str,
                 note: Callable[[str], None] = lambda line: None) -> None:
        self.index, self.publisher, self.artifacts, self.root, self.note = index, publisher, artifacts, root, note
        self._missing: set[str] = set()  # builds already reported as not publishable here
        self.members: dict[str, tuple[str, ...]] = {}  # target -> build ids, as last published
        self._rpms: dict[str, tuple[str, list]] = {}  # build id -> (updated, its RPMs): read once per change
        self._published: dict[str, dict[str, str]] = {}  # target -> files, as last published by this process

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
            folder = repo_dir(self.root, target)
            if self._published.get(target) == files and os.path.exists(os.path.join(folder, "repodata")):
                continue  # the runner's own events move the ref far more often than a build's state
            result = self.publisher.publish(folder, files)
            self._published[target] = files
            if result.changed:
                self.note(f"buildroot {target}: +{len(result.added)} -{len(result.removed)} packages")
        self.members = {t: tuple(sorted(ids)) for t, ids in members.items()}
        self._rpms = {i: rpms for i, rpms in self._rpms.items() if i in seen}  # forget builds that left
        return self.members

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
