"""Submitting source packages: SRPM in, queued builds out.

Everything that can be refused is refused before anything is stored: every
SRPM's header and digests are read first, then the target, policy, arches,
`--after` and duplicate NVRs are checked against the current state. Only then
are the SRPMs copied into the artifact store, and all builds of one submit are
written in one commit (a batch lands together or not at all).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Sequence

from app import audit, builds, lifecycle
from app.errors import BadInput, BackendError, StateConflict, UsageError
from app.index import Index
from app.lifecycle import BuildView, fold
from app.model import BuildRecord, Event, Op, State, StoredEvent, canonical, timestamp
from app.targets import check_name
from backends.base import ArtifactStore, Change, PackageReader, Person, Snapshot, SourcePackage, StateStore

# A new build of an NVR is refused while an earlier one of it is alive here.
ALIVE = frozenset(State) - {State.FAILED, State.CANCELLED, State.WITHDRAWN, State.SUPERSEDED}


@dataclass(frozen=True)
class Submission:
    paths: Sequence[str]
    target: str = "default"
    arches: Sequence[str] = ()
    scratch: bool = False
    batch: str | None = None
    after: str | None = None


class Submitter:
    def __init__(self, store: StateStore, artifacts: ArtifactStore, reader: PackageReader,
                 index: Index, actor: Person) -> None:
        self.store, self.artifacts, self.reader = store, artifacts, reader
        self.index, self.actor = index, actor

    def submit(self, request: Submission) -> list[BuildView]:
        if not request.paths:
            raise UsageError("nothing to submit", "name one or more .src.rpm files")
        if request.batch is not None:
            check_name(request.batch, "batch")
        packages = [self.reader.read_source(path) for path in request.paths]
        _no_duplicates(packages, request.paths)
        ids = [secrets.token_hex(20) for _ in packages]
        created = timestamp()
        self.plan(request, packages, ids, created)(self.store.snapshot())  # refuse early
        for path, package in zip(request.paths, packages):
            stored = self.artifacts.put(path)
            if stored.sha256 != package.sha256:
                raise BackendError(f"{path} changed while it was being submitted", "submit it again")
        written = self.store.update(self.plan(request, packages, ids, created))
        snap = self.store.snapshot(written.commit)
        return [builds.load_build(snap, build_id) for build_id in ids]

    def plan(self, request: Submission, packages: list[SourcePackage], ids: list[str], created: str):
        """The write of `packages` as builds `ids`, checked against the state it
        lands on (the upstream import adds its record to the same commit)."""
        def plan(snap: Snapshot) -> Change:
            policy = builds.load_policy(snap)
            target = builds.load_target(snap, request.target)
            after = self._after(snap, request.after, target.name)
            files, views, events = {}, [], []
            for build_id, package in zip(ids, packages):
                if not request.scratch:
                    self._not_built_yet(snap, request.target, package)
                record = BuildRecord(
                    id=build_id, package=package.name, epoch=package.epoch, version=package.version,
                    release=package.release, target=target.name,
                    arches=target.task_arches(package, request.arches), owner=self.actor.email,
                    created=created, srpm={"name": package.filename, "sha256": package.sha256,
                                           "size": package.size},
                    buildrequires=package.buildrequires, scratch=request.scratch,
                    batch=request.batch, after=after)
                event = Event(Op.SUBMIT, None, State.QUEUED, self.actor.email, self.store.replica, 1, (),
                              created, "", None, {"tasks": {a: str(State.QUEUED) for a in record.arches}})
                lifecycle.check(None, record, event, policy)
                event_id, body = event.encode()
                files[builds.record_path(build_id)] = canonical(record.to_json())
                files[builds.event_path(build_id, event_id)] = body
                views.append(fold(record, [StoredEvent(event_id, event)]))
                events.append(event)
            return Change(files, audit.build_message(views, events), self.actor)
        return plan

    def _after(self, snap: Snapshot, prefix: str | None, target: str) -> str | None:
        if prefix is None:
            return None
        view = builds.load_build(snap, builds.resolve(snap, prefix))
        if view.record.scratch:
            raise StateConflict(f"--after {view.record.nvr} ({view.record.short}): it is a scratch build and "
                                "never enters the buildroot", "submit it without --scratch, or drop --after")
        if view.record.target != target:
            raise UsageError(f"--after {view.record.nvr} ({view.record.short}): it builds for target "
                             f"{view.record.target}, not {target}, so it never reaches this build's buildroot",
                             f"submit with --target {view.record.target}, or drop --after")
        if view.state not in ALIVE:
            raise StateConflict(f"--after {view.record.nvr} ({view.record.short}): it is {view.state} "
                                "and will never reach the buildroot",
                                "resubmit it first, or drop --after")
        return view.id

    def _not_built_yet(self, snap: Snapshot, target: str, package: SourcePackage) -> None:
        self.index.refresh(snap)
        for build_id, state in self.index.same_nvr(target, package.nvr):
            if state in ALIVE:
                raise StateConflict(f"{package.nvr} is already in target {target} as {build_id[:7]} ({state})",
                                    "bump the release (rpmdev-bumpspec), or submit with --scratch")


def _no_duplicates(packages: list[SourcePackage], paths: Sequence[str]) -> None:
    seen: dict[str, str] = {}
    for package, path in zip(packages, paths):
        if package.nvr in seen:
            raise BadInput(f"{path} and {seen[package.nvr]} are both {package.nvr}", "submit each NVR once")
        seen[package.nvr] = path
