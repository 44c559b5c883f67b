"""The state store: `refs/sluice/state` in a git repository, through pygit2.

Writes follow one loop: snapshot the ref, let the caller's plan validate
against that snapshot and say what to add, write blobs/trees/commit, then
compare-and-swap the ref (`Reference.set_target` refuses when the ref moved).
When the swap fails the whole plan runs again on the new snapshot, so an
event is never written against a state it did not see.
"""
from __future__ import annotations

import dataclasses
import os
import random
import secrets
import time
from typing import Callable, Iterator

import pygit2

from backends.base import (BackendError, BadInput, Change, CommitInfo, CommitSigner, FileChange, Person,
                           RefMoved, Snapshot, Written)
from backends.gittree import GitSnapshot, diff_trees, write_tree

STATE_REF = "refs/sluice/state"
# libgit2 caches parsed trees of up to 4 KiB only; a shard of a 100k-build
# queue is ~25 KiB, and without caching it every path lookup re-reads and
# re-inflates it (~100 us a lookup instead of ~1 us). A process-wide setting,
# made when a store is opened.
_TREE_CACHE_LIMIT = 1 << 20
# seconds after which the ref's lock file is taken for one a killed writer left
STALE_LOCK = 10.0
# libgit2's words for "another writer moved or holds the ref": retry.
_RETRYABLE = ("does not match", "failed to lock", "already exists", "File exists")


def person(sig: pygit2.Signature) -> Person:
    return Person(sig.name, sig.email)


class GitStateStore:
    """`StateStore` over a bare repo (the default) or any existing git repo."""

    def __init__(self, repo: pygit2.Repository, *, timeout: float = 30.0) -> None:
        pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.TREE, _TREE_CACHE_LIMIT)
        self.repo = repo
        self.timeout = timeout
        self.replica = self._replica()
        self.signer: CommitSigner | None = None
        self.signing_key: Callable[[Snapshot, Change], str | None] | None = None

    # ----------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str, *, create: bool = False) -> "GitStateStore":
        """Open the repo at `path` (a bare repo, a .git dir or a work tree's top,
        never a repo further up); with `create`, make a bare repo if none is there."""
        repo = None
        if os.path.exists(path):
            try:
                repo = pygit2.Repository(path, pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
            except pygit2.GitError as exc:
                if "not found" not in str(exc):  # there is a repo, but it cannot be read
                    raise BackendError(f"cannot open the git repository at {path}: {exc}",
                                       "repair it (`git fsck`, or fix the file named) or pass another --repo") from exc
        if repo is None:
            if not create:
                raise BadInput(f"no git repository at {path}",
                               "run `sluice init` to create one, or pass --repo PATH")
            if os.path.exists(path) and os.listdir(path):
                raise BadInput(f"{path} is not empty and not a git repository",
                               "pass an empty or new directory, or an existing git repo")
            repo = pygit2.init_repository(path, bare=True, initial_head="main")
        return cls(repo)

    def _replica(self) -> str:
        """This clone's replica id, made once and kept in the repo's config."""
        config = self.repo.config
        try:
            return config["sluice.replica"]
        except KeyError:
            replica = secrets.token_hex(4)
            config["sluice.replica"] = replica
            return replica

    @property
    def committer(self) -> Person:
        return Person(f"sluice replica {self.replica}", f"{self.replica}@replica.sluice.invalid")

    def index_dir(self) -> str:
        return os.path.join(self.repo.path, "sluice")

    # ----------------------------------------------------------- reading

    def head(self) -> str | None:
        ref = self.repo.references.get(STATE_REF)
        return str(ref.target) if ref is not None else None

    def snapshot(self, commit: str | None = None) -> GitSnapshot:
        return GitSnapshot(self.repo, commit if commit is not None else self.head())

    def blob(self, blob_id: str) -> bytes:
        """A file's content; BadInput when `blob_id` names no file (a crafted
        tree can give a file's mode to a folder's id)."""
        obj = self.repo.get(blob_id)
        if not isinstance(obj, pygit2.Blob):
            raise BadInput(f"object {blob_id[:10]} is not a file")
        return obj.data

    def is_ancestor(self, older: str, newer: str) -> bool:
        return older == newer or self.repo.descendant_of(newer, older)

    def changes(self, old: str, new: str) -> list[FileChange] | None:
        """The files that differ from `old` to `new`, or None when `new` does
        not descend from `old` or `old` is unknown (the caller must then start over)."""
        if old == new:
            return []
        try:
            if not self.repo.descendant_of(new, old):
                return None
        except (pygit2.GitError, KeyError, ValueError):  # `old` is not (or no longer) in this repo
            return None
        return list(diff_trees(self.repo[old].tree, self.repo[new].tree))

    def history(self, start: str | None = None) -> Iterator[CommitInfo]:
        tip = start or self.head()
        if tip is None:
            return
        for commit in self.repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME):
            yield commit_info(commit)

    # ----------------------------------------------------------- writing

    def sign_commits(self, signer: CommitSigner, key: Callable[[Snapshot, Change], str | None]) -> None:
        """Sign each commit whose change needs it: `key` (the domain's rule,
        run on the snapshot the change was planned on) names the key or None."""
        self.signer, self.signing_key = signer, key

    def update(self, plan: Callable[[Snapshot], Change]) -> Written:
        """Run `plan` on the newest snapshot and commit what it returns,
        redoing the plan (and so its validation) whenever the ref moved."""
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            ref = self.repo.references.get(STATE_REF)
            parent = str(ref.target) if ref is not None else None
            snap = GitSnapshot(self.repo, parent)
            change = plan(snap)
            if self.signing_key is not None and change.sign_with is None:
                change = dataclasses.replace(change, sign_with=self.signing_key(snap, change))
            commit = self.commit(change, parent)
            try:
                self.swap(ref, commit, change.message.partition("\n")[0])
                return Written(commit, change, attempt)
            except RefMoved:
                if self._clear_stale_lock():
                    continue
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"could not update {STATE_REF} in {self.repo.path} for "
                        f"{self.timeout:.0f}s: another writer holds it",
                        f"if no sluice is running, remove {self._lock_path()} and retry")
                time.sleep(random.uniform(0, min(0.05, 0.0005 * 2 ** min(attempt, 7))))

    def commit(self, change: Change, parent: str | None) -> str:
        base = self.repo[parent].tree if parent else None
        blobs = {path: self.repo.create_blob(data) for path, data in change.files.items()}
        tree = write_tree(self.repo, base, blobs)
        return self.make_commit(tree, [parent] if parent else [], change.message, change.author,
                                change.sign_with)

    def make_commit(self, tree: pygit2.Oid | str, parents: list[str], message: str,
                    author: Person, sign_with: str | None = None) -> str:
        """The commit; with `sign_with`, signed by that key as `git commit -S`
        signs (a `gpgsig` header over the rest of the object)."""
        now = int(time.time())
        offset = _utc_offset_minutes()
        who = pygit2.Signature(author.name, author.email, now, offset)
        by = pygit2.Signature(self.committer.name, self.committer.email, now, offset)
        if not sign_with:
            return str(self.repo.create_commit(None, who, by, message, tree, parents))
        if self.signer is None:
            raise BackendError(f"this commit must be signed with key {sign_with}, but no commit signer is set up",
                               "run sluice's CLI or cockpit, which sign with your own GnuPG keyring")
        payload = self.repo.create_commit_string(who, by, message, tree, parents)
        signature = self.signer.sign(payload.encode(), sign_with)
        return str(self.repo.create_commit_with_signature(payload, signature.decode()))

    def swap(self, ref: pygit2.Reference | None, commit: str, message: str) -> None:
        """Compare-and-swap the state ref from `ref`'s value to `commit`."""
        try:
            if ref is None:
                self.repo.references.create(STATE_REF, commit)
            else:
                ref.set_target(commit, message)
        except (pygit2.GitError, pygit2.AlreadyExistsError, OSError) as exc:
            text = str(exc)
            if isinstance(exc, pygit2.AlreadyExistsError) or any(s in text for s in _RETRYABLE):
                raise RefMoved(text) from exc
            raise BackendError(f"cannot write {STATE_REF} in {self.repo.path}: {text}",
                               "check that the repository is writable by you") from exc

    def advance(self, old: str | None, new: str) -> bool:
        """Move the ref from `old` to `new` if it still points at `old`."""
        ref = self.repo.references.get(STATE_REF)
        if (str(ref.target) if ref else None) != old:
            return False
        try:
            self.swap(ref, new, "sync")
        except RefMoved:
            return False
        return True

    def _clear_stale_lock(self) -> bool:
        """Remove the ref's lock file when a killed writer left it: every
        writer (sluice, libgit2, git) holds it for well under a millisecond,
        so one older than STALE_LOCK seconds belongs to no live writer. Without
        this, one SIGKILL at the wrong instant stops every later write."""
        lock = self._lock_path()
        try:
            if time.time() - os.stat(lock).st_mtime < STALE_LOCK:
                return False
            os.unlink(lock)
        except FileNotFoundError:
            return False
        return True

    def _lock_path(self) -> str:
        return os.path.join(self.repo.path, STATE_REF + ".lock")


def commit_info(commit: pygit2.Commit) -> CommitInfo:
    return CommitInfo(str(commit.id), tuple(str(p) for p in commit.parent_ids),
                      person(commit.author), person(commit.committer),
                      commit.commit_time, commit.message)


def _utc_offset_minutes() -> int:
    return -(time.altzone if time.daylight and time.localtime().tm_isdst else time.timezone) // 60
