"""The queue as the terminal UI lists it: every build in memory, filtered as
you type.

`sluice list` asks the index once per command; the cockpit asks on every
keystroke, so it loads the index's rows once per state commit (a fraction of a
second for 100,000 builds) and filters them in memory, where a keystroke costs
a scan of short strings instead of a query over the stored summaries. The
per-arch states stay as the summary's JSON bytes and are decoded only for the
rows on screen.

The filter language is the CLI's options written as words: `owner:bob`,
`state:held` (or `state:held,needsign`), `target:epel9`, `package:kde*`,
`batch:abi`, `id:3f9a`; any other word must appear in the
build's NVR, owner, state or target (case-insensitive). All words must match.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

from app.index import Filters, Index

FIELDS = ("package", "owner", "state", "target", "batch", "id")
# The quick filters: a name, the states it shows.
STATE_GROUPS: dict[str, tuple[str, ...]] = {
    "active": ("queued", "building"),
    "built": ("built",),
    "held": ("held",),
    "needsign": ("needsign",),
    "failed": ("failed", "failed-to-import"),
    "testing": ("signed", "testing", "tested"),
    "done": ("stable", "withdrawn", "cancelled", "superseded"),
}


class Row(NamedTuple):
    """One build as the queue shows it (newest first). A NamedTuple rather
    than a frozen dataclass: 100,000 of them are made per reload, and a tuple
    is made three times faster; it is just as immutable."""

    id: str
    package: str
    nvr: str
    owner: str
    target: str
    state: str
    contested: int
    created: str
    batch: str | None
    summary: bytes  # the summary JSON, for the arches of the rows on screen
    text: str  # lower-cased nvr, owner, state, target: what a plain word matches

    def arches(self) -> dict[str, str]:
        return json.loads(self.summary).get("arches", {})


def load(index: Index, limit: int | None = None) -> list[Row]:
    """The builds in the index, newest first (the index must be refreshed):
    all of them, or the newest `limit` for a first screenful. Read with one
    query on the index's own connection, in its listing order."""
    where, args = Filters(limit=limit).sql()
    cursor = index.db.execute("SELECT id, package, nvr, owner, target, state, contested, created, batch, "
                              f"summary FROM builds{where}", args)
    return [Row(i, p, nvr, o, t, st, c, cr, b, sm if isinstance(sm, bytes) else str(sm).encode(),
                f"{nvr}\t{o}\t{st}\t{t}".lower())
            for i, p, nvr, o, t, st, c, cr, b, sm in cursor]


@dataclass(frozen=True)
class Query:
    """A parsed filter: the quick filters plus the words typed after `/`."""

    text: str = ""
    owner: str | None = None  # the "mine" quick filter
    states: tuple[str, ...] = ()  # a state quick filter

    def describe(self) -> str:
        parts = []
        if self.owner:
            parts.append(f"owner:{self.owner}")
        if self.states:
            parts.append("state:" + ",".join(self.states))
        if self.text.strip():
            parts.append(self.text.strip())
        return " ".join(parts)

    def select(self, rows: Sequence[Row]) -> Sequence[Row]:
        """The rows this query keeps, in their order. Each condition narrows
        the previous result with one comprehension, the cheapest first, so a
        keystroke on 100,000 builds stays in the tens of milliseconds."""
        if self.states:
            wanted = frozenset(self.states)
            rows = [r for r in rows if r.state in wanted]
        if self.owner:
            owner = self.owner
            rows = [r for r in rows if r.owner == owner]
        for word in self.text.lower().split():
            rows = _narrow(rows, word)
        return rows


def _narrow(rows: Sequence[Row], word: str) -> list[Row]:
    key, sep, value = word.partition(":")
    if not (sep and key in FIELDS and value):
        return [r for r in rows if word in r.text]
    if key == "package":
        pattern = value if any(c in value for c in "*?[") else f"*{value}*"
        return [r for r in rows if fnmatch.fnmatchcase(r.package.lower(), pattern)]
    if key == "state":
        wanted = frozenset(value.split(","))
        return [r for r in rows if r.state in wanted]
    if key == "id":
        return [r for r in rows if r.id.startswith(value)]
    if key == "owner":
        return [r for r in rows if value in r.owner.lower()]
    if key == "target":
        return [r for r in rows if value in r.target.lower()]
    return [r for r in rows if value in (r.batch or "").lower()]


def position(rows: Iterable[Row], build_id: str | None) -> int | None:
    """Where `build_id` is in `rows` (to keep the cursor on it across refreshes)."""
    if build_id is None:
        return None
    for n, row in enumerate(rows):
        if row.id == build_id:
            return n
    return None
