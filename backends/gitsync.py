"""Moving and merging `refs/sluice/*` between clones.

The transport is the `git` command itself, so remotes work exactly as git
users expect: local paths, `ssh://` and scp-style URLs, `~/.ssh/config`,
known_hosts (OpenSSH refuses unknown host keys in batch use; sluice never adds
them), agents and `GIT_SSH_COMMAND`. Fetches go into
`refs/remotes/<remote>/sluice/*`; pushes never force, so a rejected push is the
distributed compare-and-swap and the caller fetches, merges and tries again.

The merger walks what the remote has that we do not (oldest first, each commit
with its changes against its first parent) so the domain can check every
event, and writes the union of both trees as a merge commit.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Iterable, Iterator

import pygit2

from backends.base import (BackendError, BadInput, CommitInfo, Incoming, MalformedHistory, Person, RemoteLocked,
                           Union)
from backends.gitcli import run_git, walk_changes
from backends.gitstore import GitStateStore, commit_info
from backends.gittree import GitSnapshot, diff_trees, write_tree

# A remote-side refusal that only means "someone else pushed first".
_RACED = ("cannot lock ref", "failed to update ref", "incorrect old value", "failed to lock")
# How git says a lock file stopped it (a live writer's, or one a killed writer left).
_LOCKED = re.compile(r"Unable to create '([^']+\.lock)': File exists")


class GitCliTransport:
    """`SyncTransport` over the git command line."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo

    def namespace(self, remote: str) -> str:
        """Where this remote's refs are tracked: its name, or a stable id for a URL."""
        if remote in self.repo.remotes.names():
            return remote
        return "url-" + hashlib.sha1(remote.encode()).hexdigest()[:12]

    def url(self, remote: str) -> str:
        """The URL of a remote of the state repo, or `remote` itself."""
        if remote in self.repo.remotes.names():
            return self.repo.remotes[remote].url or remote
        return remote

    def fetch(self, remote: str) -> str | None:
        _check_remote(remote)
        space = self.namespace(remote)
        # fsck every fetched object: a tree entry named `a/b`, `.` or `..`
        # reads in `git log --raw` as a path of the layout, which no check of
        # paths could tell from a real one.
        result = run_git(self.repo, "-c", "fetch.fsckObjects=true", "fetch", "--no-tags", "--no-write-fetch-head",
                         "--quiet", remote, f"+refs/sluice/*:refs/remotes/{space}/sluice/*")
        if result.returncode != 0 and "fsck error" in result.stderr:
            raise MalformedHistory(f"git refused the objects {remote} sent: they are malformed",
                                   "", command=result.args, status=result.returncode, output=result.stderr.strip())
        if result.returncode != 0:
            raise BackendError(f"cannot fetch the queue from {remote}",
                               f"check that `git fetch {remote}` works from this machine",
                               command=result.args, status=result.returncode, output=result.stderr.strip())
        ref = self.repo.references.get(f"refs/remotes/{space}/sluice/state")
        return str(ref.target) if ref is not None else None

    def push(self, remote: str, commit: str) -> bool:
        """Push without force; False when the remote moved (fetch and retry)."""
        _check_remote(remote)
        result = run_git(self.repo, "push", "--porcelain", "--quiet", remote, f"{commit}:refs/sluice/state")
        if result.returncode == 0:
            return True
        output = (result.stdout + result.stderr).strip()
        refused = [line for line in result.stdout.splitlines() if line.startswith("!")]
        if refused and all("[rejected]" in line or any(r in line for r in _RACED) for line in refused):
            locked = _LOCKED.search(result.stderr)
            if locked:
                raise _locked(remote, locked.group(1))
            return False
        raise BackendError(f"cannot push the queue to {remote}",
                           "check that you may push there (`git push` to it by hand shows why)",
                           command=result.args, status=result.returncode, output=output)


def _locked(remote: str, lock: str) -> RemoteLocked:
    """The lock file that refused a push, with its age when it is on this machine."""
    lock = os.path.normpath(lock)
    try:
        age: float | None = max(0.0, time.time() - os.stat(lock).st_mtime)
    except OSError:
        age = None
    aged = f", {age:.0f} s old" if age is not None else ""
    return RemoteLocked(f"{remote} refused the push: its lock file {lock} is there{aged}",
                        f"if nothing is pushing to {remote} now, a git or sluice push there was killed while it "
                        f"held the lock: remove {lock} on that machine and sync again (this clone keeps its events)",
                        lock, age)


def _check_remote(remote: str) -> None:
    if not remote or remote.startswith("-") or any(ord(c) < 32 for c in remote):
        raise BadInput(f"{remote!r} is not a remote name, path or URL",
                       "name a git remote of the state repo, a path, or an ssh:// URL")


class GitMerger:
    """`Merger`: the incoming walk, merge-commit audit and union merge."""

    def __init__(self, store: GitStateStore) -> None:
        self.store = store
        self.repo = store.repo

    def incoming(self, theirs: str, ours: str | None) -> Iterator[Incoming]:
        """Oldest first, each commit's changes from one streamed `git log --raw`
        (see `backends.gitcli`)."""
        for commit_id, changes in walk_changes(self.repo, theirs, ours):
            commit = self.repo[commit_id]
            parent = str(commit.parent_ids[0]) if commit.parent_ids else None
            yield Incoming(commit_info(commit), tuple(changes), GitSnapshot(self.repo, parent))

    def merge_problems(self, info: CommitInfo) -> list[str]:
        """A merge commit may only combine its parents: nothing new, nothing lost."""
        commit = self.repo[info.id]
        trees = [self.repo[p].tree for p in info.parents]
        problems = []
        for i, tree in enumerate(trees):
            others = [t for j, t in enumerate(trees) if j != i]
            for delta in diff_trees(tree, commit.tree):
                if delta.new is None:
                    problems.append(f"merge {info.id[:10]} drops {delta.path}")
                elif not any(_blob_id(t, delta.path) == delta.new for t in others):
                    problems.append(f"merge {info.id[:10]} brings {delta.path}, which none of its parents has")
        return sorted(set(problems))

    def union(self, ours: str | None, theirs: str, message: str, author: Person,
              prefer_theirs: Iterable[str] = (), sign_with: str | None = None) -> Union:
        """Fast-forward when one side contains the other; else a merge commit
        with the union of both trees. Same path, different content on both
        sides is a collision (unless the path is in `prefer_theirs`)."""
        if ours is None or self.store.is_ancestor(ours, theirs):
            return Union(theirs)
        if self.store.is_ancestor(theirs, ours):
            return Union(ours)
        base = self.repo.merge_base(ours, theirs)
        if base is None:
            return Union(None, ("(no common history)",))
        ours_tree, prefer = self.repo[ours].tree, set(prefer_theirs)
        take: dict[str, pygit2.Oid] = {}
        collisions = []
        for change in diff_trees(self.repo[base].tree, self.repo[theirs].tree):
            mine = _blob_id(ours_tree, change.path)
            if change.new is None or (mine is not None and mine not in (change.new, change.old)
                                      and change.path not in prefer):
                collisions.append(change.path)
            elif mine != change.new:
                take[change.path] = pygit2.Oid(hex=change.new)
        if collisions:
            return Union(None, tuple(collisions))
        tree = write_tree(self.repo, ours_tree, take)
        return Union(self.store.make_commit(tree, [ours, theirs], message, author, sign_with))

    def advance(self, old: str | None, new: str) -> bool:
        return self.store.advance(old, new)


def _blob_id(tree: pygit2.Tree, path: str) -> str | None:
    try:
        return str(tree[path].id)
    except KeyError:
        return None

