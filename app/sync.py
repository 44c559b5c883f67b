"""`sluice sync`: share the queue with another clone, trusting nothing fetched.

Before anything fetched is merged, every commit the remote has and we do not
is checked (`app.checks`), oldest first, against the state and policy in
force at its parent, its signature included when the policy requires signed
commits. One bad commit refuses the whole sync (`HistoryRefused`, exit 3) and
leaves this clone as it was.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Iterable

from app import audit, builds, trust
from app.checks import HistoryCheck
from app.errors import BackendError, HistoryRefused, StateConflict
from backends.base import (CommitVerifier, MalformedHistory, Merger, Person, RemoteLocked, StateStore,
                           SyncTransport)

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
    def __init__(self, store: StateStore, transport: SyncTransport, merger: Merger, actor: Person,
                 verifier: CommitVerifier | None = None) -> None:
        self.store, self.transport, self.merger, self.actor = store, transport, merger, actor
        self.check = HistoryCheck(store, merger, verifier)

    def sync(self, remote: str, prefer_theirs: Iterable[str] = ()) -> SyncResult:
        prefer = tuple(prefer_theirs)
        started, locked = time.monotonic(), None
        for attempt in range(1, _ATTEMPTS + 1):
            theirs = self._fetch(remote)
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
            try:
                if self.transport.push(remote, merged):
                    return SyncResult(remote, commits, events, True, merged, attempt)
                locked = None
            except RemoteLocked as exc:  # a live pusher's lock goes in milliseconds: try again
                locked = exc
            time.sleep(random.uniform(0.05, 0.2 * attempt))
        if locked is not None:  # every try met it: its writer is gone
            raise BackendError(f"{locked.message}, and still after {_ATTEMPTS} pushes over "
                               f"{time.monotonic() - started:.0f} s", locked.hint)
        raise BackendError(f"sync with {remote} gave up after {_ATTEMPTS} attempts: it kept changing",
                           "try again in a moment")

    def _fetch(self, remote: str) -> str | None:
        try:
            return self.transport.fetch(remote)
        except MalformedHistory as exc:
            found = [line.removeprefix("error: ") for line in exc.output.splitlines() if line.startswith("error:")]
            raise HistoryRefused(f"refused {remote}'s history: git found malformed objects; nothing was merged",
                                 found or [exc.output], f"ask whoever pushed to {remote} to repair it, "
                                 "or sync with another clone") from exc

    def _merge(self, remote: str, ours: str | None, theirs: str, commits: int,
               prefer: tuple[str, ...]) -> str:
        text = audit.message(f"sync: merge {commits} commits from {remote}", "",
                             [("Op", "sync"), ("Remote", remote), ("Actor", self.actor.email)])
        key = None
        if ours is not None and not self.store.is_ancestor(ours, theirs):  # a merge commit, not a fast-forward
            key = trust.merge_key(builds.load_policy(self.store.snapshot(ours)),
                                  builds.load_policy(self.store.snapshot(theirs)), self.actor.email)
        union = self.merger.union(ours, theirs, text, self.actor, prefer, key)
        if union.commit is not None:
            return union.commit
        config = [p for p in union.collisions if p.startswith("config/")]
        if config and len(config) == len(union.collisions):
            raise StateConflict(f"both this clone and {remote} changed {', '.join(config)}",
                                f"keep theirs with `sluice sync {remote} --theirs {config[0]}`, "
                                "then make your change again")
        raise HistoryRefused(f"refused {remote}: it wrote different content at paths this clone has",
                             list(union.collisions), "someone rewrote shared history; nothing was merged")

    def verify(self, remote: str, theirs: str, ours: str | None) -> tuple[int, int]:
        """Check every incoming commit; returns (commits, events) or raises."""
        findings, commits, events = self.check.findings(theirs, ours, remote)
        if findings:
            shown = [str(f) for f in findings[:_SHOWN]]
            if len(findings) > _SHOWN:
                shown.append(f"... and {len(findings) - _SHOWN} more")
            raise HistoryRefused(f"refused {remote}'s history: {len(findings)} problem(s); nothing was merged",
                                 shown, f"ask whoever pushed to {remote} to repair it, or sync with another clone")
        return commits, events
