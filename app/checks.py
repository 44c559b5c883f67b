"""Checking state history: the one audit behind `sync`, `verify` and the
pre-receive hook.

Every commit is checked, oldest first, against the state and policy in force
at its parent: only known paths, nothing modified or deleted, config changed
only by admins, each event valid for its build as folded then, allowed to its
actor by that policy, written by the commit's author, and, when the policy
requires it, signed by the key it names for that author (see `app.trust`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from app import advisories, builds, import_record, lifecycle, manifests, trust
from app.errors import BadInput, NotFound, SluiceError
from app.lifecycle import BuildView, extend
from app.model import EVENT_ID, NAME, decode_event, decode_record
from app.policy import POLICY_PATH, Policy
from app.targets import Target
from backends.base import CommitInfo, CommitVerifier, Incoming, Merger, Snapshot, StateStore

_PATHS = {
    "policy": re.compile(re.escape(POLICY_PATH)),
    "target": re.compile(rf"config/targets/({NAME.pattern})\.toml"),
    "record": re.compile(r"builds/([0-9a-f]{2})/(\1[0-9a-f]{38})/build\.json"),
    "event": re.compile(rf"builds/([0-9a-f]{{2}})/(\1[0-9a-f]{{38}})/events/({EVENT_ID.pattern})\.json"),
    "manifest": manifests.PATH,
    "import": import_record.PATH,
    "key": import_record.KEY_PATH,
    "advisory": advisories.PATH,
}
_LIMITS = {"policy": 1 << 20, "target": 1 << 20, "record": 1 << 18, "event": 1 << 18, "manifest": 1 << 24,
           "import": 1 << 24, "key": 1 << 20, "advisory": 1 << 18}
_WRITE_ONCE = ("record", "event", "manifest", "import", "advisory")
_REGULAR = 0o100644


@dataclass(frozen=True)
class Finding:
    """One problem with one commit: which commit, whose, and why."""

    commit: str
    actor: str
    problem: str

    def __str__(self) -> str:
        return f"{self.commit[:10]} by {self.actor}: {self.problem}"

    def to_json(self) -> dict:
        return {"commit": self.commit, "actor": self.actor, "problem": self.problem}


class HistoryCheck:
    def __init__(self, store: StateStore, merger: Merger, verifier: CommitVerifier | None = None) -> None:
        self.store, self.merger, self.verifier = store, merger, verifier

    def findings(self, tip: str, base: str | None, remote: str = "") -> tuple[list[Finding], int, int]:
        """Every problem of the commits `tip` has and `base` does not (all of
        them when `base` is None), with the number of commits and events."""
        findings: list[Finding] = []
        replay: _Replay | None = None
        commits = events = 0
        for incoming in self.merger.incoming(tip, base):
            commits += 1
            info = incoming.info
            problems: list[str] = []
            if len(info.parents) > 1:
                problems = self._merge_signature(info, incoming.parent) + self.merger.merge_problems(info)
            elif not info.parents and base is not None:
                problems = [f"{remote or 'it'}'s queue began on its own (root commit); "
                            "it shares no history with this one"]
            else:
                parent = info.parents[0] if info.parents else None
                if replay is None or replay.commit != parent:
                    replay = _Replay(parent, incoming.parent)
                problems, added = self._check_commit(incoming, replay)
                events += added
                replay.commit = info.id if not problems else None
            findings += [Finding(info.id, info.author.email, problem) for problem in problems]
        return findings, commits, events

    def _merge_signature(self, info: CommitInfo, parent: Snapshot) -> list[str]:
        """A merge is held to its first parent's policy, or to its own tree's
        (which is one of its parents')."""
        try:
            before = builds.load_policy(parent)
            new = None if before.require_signed_commits else builds.load_policy(self.store.snapshot(info.id))
        except SluiceError as exc:
            return [exc.message]
        return self._signature(info, before, new)

    def _signature(self, info: CommitInfo, before: Policy | None, new: Policy | None) -> list[str]:
        """The commit's signature problems under the policy at its parent
        (`before`, None for the first commit) and the one it writes (`new`)."""
        if not trust.rule(before, new, info.author.email)[0]:
            return []
        verdict = self.verifier.check(info.id) if self.verifier is not None else None
        return trust.signature_problems(verdict, before, new, info.author.email)

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
                problems.append(f"adds {_shown(change.path)}, which is no part of a sluice queue")
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
                elif kind == "advisory":
                    problems += _check_advisory(match, data, replay, author)
                elif kind in ("import", "key"):
                    problems += _check_import(kind, match, data, replay, author)
                else:
                    found_problems, parsed = _check_config(kind, match, data, replay, author)
                    problems += found_problems
                    policy = parsed or policy
        try:
            before = replay.current_policy() if replay.has_policy() else None
        except SluiceError as exc:
            return [*problems, exc.message], 0
        problems = self._signature(incoming.info, before, policy) + problems
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
    if not policy.may_publish(author):
        return [f"{author} published {match.group(0)} but is neither a signer nor an admin"]
    try:
        manifest = manifests.parse(match.group(0), data)
    except SluiceError as exc:
        return [exc.message]
    if manifest.actor != author:
        return [f"{match.group(0)} claims actor {manifest.actor}, but the commit's author is {author}"]
    return []


def _check_advisory(match: re.Match, data: bytes, replay: _Replay, author: str) -> list[str]:
    """An advisory: well-formed, its author's, naming existing non-scratch
    builds of its target that the author owns (or the author is an admin)."""
    try:
        advisory = advisories.parse(match.group(0), data)
    except SluiceError as exc:
        return [exc.message]
    if advisory.actor != author:
        return [f"{match.group(0)} claims actor {advisory.actor}, but the commit's author is {author}"]
    views = {build_id: replay.view(build_id) for build_id in advisory.builds}
    return [exc.message for exc in advisories.problems(advisory, views, replay.current_policy(), author)]


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


def _shown(path: str) -> str:
    """A crafted path as text a terminal shows as such: git allows any bytes
    but NUL in a name (read with surrogateescape), escapes and newlines included."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text if text.isprintable() else ascii(text)[1:-1]


def _classify(path: str) -> tuple[str | None, re.Match | None]:
    for kind, pattern in _PATHS.items():
        match = pattern.fullmatch(path)
        if match:
            return kind, match
    return None, None
