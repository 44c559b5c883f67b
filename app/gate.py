"""`sluice verify` and `sluice hook pre-receive`: the sync checks, applied
to a whole history or to a push.

Both run the one audit `sync` runs (`app.checks`): a history `verify` finds
clean is one `sync` would take, and the hook refuses exactly the pushes a
clone would refuse to merge, before they reach anyone.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.checks import Finding, HistoryCheck
from app.errors import UsageError
from backends.base import CommitVerifier, Merger, StateStore

STATE_REF = "refs/sluice/state"
ZERO = "0" * 40


@dataclass(frozen=True)
class Audit:
    head: str | None
    commits: int
    findings: tuple[Finding, ...]

    def to_json(self) -> dict:
        return {"head": self.head, "commits": self.commits, "clean": not self.findings,
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True)
class RefUpdate:
    """One line of what git gives a pre-receive hook on stdin."""

    old: str
    new: str
    ref: str


def parse_updates(text: str) -> list[RefUpdate]:
    updates = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not all(_is_id(p) for p in parts[:2]):
            raise UsageError(f"line {number} of stdin is not `OLD NEW REF`: {line[:120]!r}",
                             "git feeds a pre-receive hook these lines; run it from hooks/pre-receive")
        updates.append(RefUpdate(*parts))
    return updates


def _is_id(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)


class Gate:
    def __init__(self, store: StateStore, merger: Merger, verifier: CommitVerifier | None) -> None:
        self.store = store
        self.check = HistoryCheck(store, merger, verifier)

    def audit(self) -> Audit:
        """Every finding in the whole history of the state ref."""
        head = self.store.head()
        if head is None:
            return Audit(None, 0, ())
        findings, commits, _ = self.check.findings(head, None)
        return Audit(head, commits, tuple(findings))

    def receive(self, updates: list[RefUpdate]) -> list[str]:
        """Why each update of refs/sluice/* must be refused (empty: accept
        them all). Refs outside refs/sluice/ are not sluice's business."""
        refusals: list[str] = []
        for update in updates:
            if not update.ref.startswith("refs/sluice/"):
                continue
            if update.ref != STATE_REF:
                refusals.append(f"{update.ref}: sluice keeps its queue on {STATE_REF} only")
            elif update.new.strip("0") == "":
                refusals.append(f"{update.ref}: deleting the queue is refused")
            elif update.old.strip("0") and not self.store.is_ancestor(update.old, update.new):
                refusals.append(f"{update.ref}: {update.new[:10]} does not descend from {update.old[:10]}: "
                                "a push may only add to the queue's history, never rewrite it")
            else:
                findings, _, _ = self.check.findings(update.new, update.old if update.old.strip("0") else None)
                refusals += [f"{update.ref}: {finding}" for finding in findings]
        return refusals
