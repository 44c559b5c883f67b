"""`sluice sync`: share the queue with another clone, trusting nothing fetched.

Before anything fetched is merged, every commit the remote has and we do not
is checked, oldest first, against the state and policy in force at its parent:
only known paths, nothing modified or deleted, config changed only by admins,
each event valid for its build as folded then, allowed to its actor by that
policy, and written by the commit's author. One bad commit refuses the whole
sync (`HistoryRefused`, exit 3) and leaves this clone as it was.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from typing import Iterable

from app import audit, builds, import_record, lifecycle, manifests
from app.errors import BackendError, BadInput, HistoryRefused, NotFound, SluiceError, StateConflict
from app.lifecycle import BuildView, extend
from app.model import EVENT_ID, NAME, decode_event, decode_record
from app.policy import POLICY_PATH, Policy
from app.targets import Target
from backends.base import Incoming, Merger, Person, Snapshot, StateStore, SyncTransport

_PATHS = {
    "policy": re.compile(re.escape(POLICY_PATH)),
    "target": re.compile(rf"config/targets/({NAME.pattern})\.toml"),
    "record": re.compile(r"builds/([0-9a-f]{2})/(\1[0-9a-f]{38})/build\.json"),
    "event": re.compile(rf"builds/([0-9a-f]{{2}})/(\1[0-9a-f]{{38}})/events/({EVENT_ID.pattern})\.json"),
    "manifest": manifests.PATH,
    "import": import_record.PATH,
    "key": import_record.KEY_PATH,
}
_LIMITS = {"policy": 1 << 20, "target": 1 << 20, "record": 1 << 18, "event": 1 << 18, "manifest": 1 << 24,
           "import": 1 << 24, "key": 1 << 20}
_WRITE_ONCE = ("record", "event", "manifest", "import")
_REGULAR = 0o100644
_ATTEMPTS = 10
_SHOWN = 40


@dataclass(frozen=True)
class SyncResult:
    remote: str
    commits: int  # received
    events: int  # received
    sent: bool
    head: str | None
    attempts: int


class Syncer:
    def __init__(self, store: StateStore, transport: SyncTransport, merger: Merger, actor: Person) -> None:
        self.store, self.transport, self.merger, self.actor = store, transport, merger, actor

    def sync(self, remote: str, prefer_theirs: Iterable[str] = ()) -> SyncResult:
        prefer = tuple(prefer_theirs)
        for attempt in range(1, _ATTEMPTS + 1):
            theirs = self.transport.fetch(remote)
            ours = self.store.head()
            merged, commits, events = ours, 0, 0
            if theirs is not None and theirs != ours and not (ours and self.store.is_ancestor(theirs, ours)):
                commits, events = self.verify(remote, theirs, ours)
                merged = self._merge(remote, ours, theirs, commits, prefer)
                if merged != ours and not self.merger.advance(ours, merged):
                    continue  # a local write landed meanwhile: start over
            if merged is None:
                raise StateConflict(f"neither this clone nor {remote} holds a sluice queue",
                                    "run `sluice init` on one of them")
            if merged == theirs:
                return SyncResult(remote, commits, events, False, merged, attempt)
            if self.transport.push(remote, merged):
                return SyncResult(remote, commits, events, True, merged, attempt)
            time.sleep(random.uniform(0.05, 0.2 * attempt))
        raise BackendError(f"sync with {remote} gave up after {_ATTEMPTS} attempts: it kept changing",
                           "try again in a moment")

    def _merge(self, remote: str, ours: str | None, theirs: str, commits: int,
               prefer: tuple[str, ...]) -> str:
        text = audit.message(f"sync: merge {commits} commits from {remote}", "",
                             [("Op", "sync"), ("Remote", remote), ("Actor", self.actor.email)])
        union = self.merger.union(ours, theirs, text, self.actor, prefer)
        if union.commit is not None:
            return union.commit
        config = [p for p in union.collisions if p.startswith("config/")]
        if config and len(config) == len(union.collisions):
            raise StateConflict(f"both this clone and {remote} changed {', '.join(config)}",
                                f"keep theirs with `sluice sync {remote} --theirs {config[0]}`, "
                                "then make your change again")
        raise HistoryRefused(f"refused {remote}: it wrote different content at paths this clone has",
                             list(union.collisions), "someone rewrote shared history; nothing was merged")

    # ------------------------------------------------------------ checks

    def verify(self, remote: str, theirs: str, ours: str | None) -> tuple[int, int]:
        """Check every incoming commit; returns (commits, events) or raises."""
        findings: list[str] = []
        replay: _Replay | None = None
        commits = events = 0
        for incoming in self.merger.incoming(theirs, ours):
            commits += 1
            info = incoming.info
            where = f"{info.id[:10]} by {info.author.email}"
            problems: list[str] = []
            if len(info.parents) > 1:
                problems = self.merger.merge_problems(info)
            elif not info.parents and ours is not None:
                problems = [f"{remote}'s queue began on its own (root commit); it shares no history with this one"]
            else:
                parent = info.parents[0] if info.parents else None
                if replay is None or replay.commit != parent:
                    replay = _Replay(parent, incoming.parent)
                problems, added = self._check_commit(incoming, replay)
                events += added
                replay.commit = info.id if not problems else None
            findings += [f"{where}: {problem}" for problem in problems]
        if findings:
            shown = findings[:_SHOWN] + ([f"... and {len(findings) - _SHOWN} more"] if len(findings) > _SHOWN else [])
            raise HistoryRefused(f"refused {remote}'s history: {len(findings)} problem(s); nothing was merged",
                                 shown, f"ask whoever pushed to {remote} to repair it, or sync with another clone")
        return commits, events

    def _check_commit(self, incoming: Incoming, replay: "_Replay") -> tuple[list[str], int]:
        """The commit's problems against the queue as `replay` holds it; when
        there are none, `replay` takes the commit's changes."""
        author = incoming.info.author.email
        problems: list[str] = []
        found: dict[str, list] = {"record": [], "event": []}
        policy: Policy | None = None
        for change in incoming.changes:
            kind, match = _classify(change.path)
            if kind is None:
                problems.append(f"adds {change.path}, which is no part of a sluice queue")
            elif change.new is None:
                problems.append(f"deletes {change.path}")
            elif change.mode != _REGULAR:
                problems.append(f"{change.path} is not a regular file")
            elif change.old is not None and kind in _WRITE_ONCE:
                problems.append(f"modifies {change.path}, which was written before and may never change")
            else:
                data = self._file(change.new)
                if data is None:
                    problems.append(f"{change.path} is not a regular file")
                elif len(data) > _LIMITS[kind]:
                    problems.append(f"{change.path} is {len(data)} bytes, over the {_LIMITS[kind]} limit")
                elif kind in found:
                    found[kind].append((match, data))
                elif kind == "manifest":
                    problems += _check_manifest(match, data, replay, author)
                elif kind in ("import", "key"):
                    problems += _check_import(kind, match, data, replay, author)
                else:
                    found_problems, parsed = _check_config(kind, match, data, replay, author)
                    problems += found_problems
                    policy = parsed or policy
        if problems:
            return problems, 0
        problems, views = self._check_builds(replay, author, found)
        if not problems:
            replay.views.update(views)
            replay.policy = policy or replay.policy
        return problems, len(views)

    def _file(self, blob_id: str) -> bytes | None:
        try:
            return self.store.blob(blob_id)
        except BadInput:
            return None

    def _check_builds(self, replay: "_Replay", author: str,
                      found: dict[str, list]) -> tuple[list[str], dict[str, BuildView]]:
        problems: list[str] = []
        records = {}
        for match, data in found["record"]:
            try:
                records[match.group(2)] = decode_record(match.group(2), data)
            except BadInput as exc:
                problems.append(str(exc))
        views: dict[str, BuildView] = {}
        for match, data in found["event"]:
            build_id = match.group(2)
            if build_id in views:
                problems.append(f"writes two events for build {build_id[:7]} in one commit")
                continue
            try:
                stored = decode_event(match.group(3), data)
                view = None if build_id in records else replay.view(build_id)
                record = records.get(build_id) or (view.record if view else None)
                if record is None:
                    raise BadInput(f"event {stored.id} is for build {build_id[:7]}, which does not exist")
                if stored.event.actor != author:
                    raise BadInput(f"event {stored.id} claims actor {stored.event.actor}, "
                                   f"but the commit's author is {author}")
                lifecycle.check(view, record, stored.event, replay.current_policy())
                views[build_id] = extend(view, record, stored)
            except SluiceError as exc:
                problems.append(exc.message)
        for build_id, record in records.items():
            if build_id not in views:
                problems.append(f"adds build {build_id[:7]} without its submit event")
            elif record.owner != author:
                problems.append(f"build {build_id[:7]} names owner {record.owner}, but {author} submitted it")
        return problems, views


class _Replay:
    """The queue as of the commit checked last. Along a line of commits (the
    usual history) it carries the folded builds and the policy forward, so
    checking a commit reads only what that commit added: looking builds up in
    each commit's own tree would read a new version of a 25 KiB shard tree
    per commit on a 100k-build queue. After a merge or a refused commit it
    starts again from the parent's tree."""

    def __init__(self, commit: str | None, snapshot: Snapshot) -> None:
        self.commit, self.snapshot = commit, snapshot
        self.views: dict[str, BuildView] = {}
        self.policy: Policy | None = None

    def view(self, build_id: str) -> BuildView | None:
        if build_id in self.views:
            return self.views[build_id]
        try:
            return builds.load_build(self.snapshot, build_id)
        except NotFound:
            return None

    def current_policy(self) -> Policy:
        if self.policy is None:
            self.policy = builds.load_policy(self.snapshot)
        return self.policy

    def has_policy(self) -> bool:
        return self.policy is not None or self.snapshot.commit is not None


def _check_config(kind: str, match: re.Match, data: bytes, replay: _Replay,
                  author: str) -> tuple[list[str], Policy | None]:
    """Problems with a change to the policy or a target, and the new policy."""
    had_policy = replay.has_policy()
    try:
        if had_policy and not replay.current_policy().is_admin(author):
            return [f"{author} changed {match.group(0)} but is not an admin"], None
        if kind == "policy":
            policy = Policy.parse(data, match.group(0))
            if not had_policy and not policy.is_admin(author):
                return [f"the first policy does not make its author {author} an admin"], None
            return [], policy
        Target.parse(match.group(1), data, match.group(0))
    except SluiceError as exc:
        return [str(exc)], None
    return [], None


def _check_manifest(match: re.Match, data: bytes, replay: _Replay, author: str) -> list[str]:
    """A repo manifest: written by a signer or admin, well-formed, its own."""
    policy = replay.current_policy()
    if not any(policy.has(author, role) for role in ("admin", "signer")):
        return [f"{author} published {match.group(0)} but is neither a signer nor an admin"]
    try:
        manifest = manifests.parse(match.group(0), data)
    except SluiceError as exc:
        return [exc.message]
    if manifest.actor != author:
        return [f"{match.group(0)} claims actor {manifest.actor}, but the commit's author is {author}"]
    return []


def _check_import(kind: str, match: re.Match, data: bytes, replay: _Replay, author: str) -> list[str]:
    """An import record or a trusted upstream key: an admin's, well-formed."""
    if not replay.current_policy().is_admin(author):
        return [f"{author} wrote {match.group(0)} but is not an admin"]
    try:
        if kind == "key":
            import_record.check_key_file(match.group(0), data)
        elif import_record.parse(match.group(0), data)["actor"] != author:
            return [f"{match.group(0)} names another actor than the commit's author {author}"]
    except SluiceError as exc:
        return [exc.message]
    return []


def _classify(path: str) -> tuple[str | None, re.Match | None]:
    for kind, pattern in _PATHS.items():
        match = pattern.fullmatch(path)
        if match:
            return kind, match
    return None, None
