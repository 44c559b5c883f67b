"""Commit messages that make `git log refs/sluice/state` the audit trail.

Each state commit reads like Gerrit's NoteDb: a human first line, the reason,
then `Sluice-*` trailers that scripts (and `sluice history`) parse:

    hold inventor-2.1.5-12.fc5 (3f9a1c2): built -> held

    waiting for libcdio to build

    Sluice-Build: 3f9a1c2...
    Sluice-Op: hold
    Sluice-From: built
    Sluice-To: held
    Sluice-Actor: ralf@example.org
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from backends.base import CommitInfo, StateStore

if TYPE_CHECKING:
    from app.lifecycle import BuildView
    from app.model import Event

_TRAILER = re.compile(r"(Sluice-[A-Za-z-]+): (.*)")


def message(title: str, reason: str, trailers: Sequence[tuple[str, str]]) -> str:
    parts = [_one_line(title)]
    if reason.strip():
        parts.append(reason.strip())
    parts.append("\n".join(f"Sluice-{key}: {_one_line(value)}" for key, value in trailers))
    return "\n\n".join(parts) + "\n"


def build_message(members: "Sequence[BuildView]", events: "Sequence[Event]") -> str:
    """The commit message for one event on each of `members` (same op)."""
    first, event = members[0].record, events[0]
    moves = f"{event.src or 'new'} -> {event.dst}"
    if len(members) == 1:
        title = f"{event.op} {first.nvr} ({first.short}): {moves}"
    else:
        batch = f" in batch {first.batch}" if first.batch else ""
        title = f"{event.op} {len(members)} builds{batch}: {moves}"
    reason = event.reason
    if len(members) > 1:
        listing = "\n".join(f"- {m.record.nvr} ({m.record.short})" for m in members)
        reason = f"{reason}\n\n{listing}" if reason else listing
    fields = [("Build", m.id) for m in members]
    fields += [("Op", str(event.op)), ("From", str(event.src or "new")), ("To", str(event.dst)),
               ("Actor", event.actor), ("Target", first.target)]
    if first.batch:
        fields.append(("Batch", first.batch))
    if event.arch:
        fields.append(("Arch", event.arch))
    return message(title, reason, fields)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def trailers(text: str) -> list[tuple[str, str]]:
    found = []
    for line in text.strip().splitlines()[::-1]:
        match = _TRAILER.fullmatch(line.strip())
        if not match:
            if found:
                break
            continue
        found.append((match.group(1)[len("Sluice-"):], match.group(2)))
    return found[::-1]


@dataclass(frozen=True)
class Entry:
    """One commit of the state ref, as `sluice history` shows it."""

    commit: str
    time: int
    author: str
    committer: str
    title: str
    reason: str
    trailers: tuple[tuple[str, str], ...]

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.trailers if k == key]

    def to_json(self) -> dict:
        doc: dict = {"commit": self.commit, "time": self.time, "author": self.author,
                     "committer": self.committer, "title": self.title, "reason": self.reason}
        for key, value in self.trailers:
            doc.setdefault(key.lower(), []).append(value)
        return doc


def entry(info: CommitInfo) -> Entry:
    lines = info.message.strip().split("\n\n")
    found = tuple(trailers(info.message))
    body = lines[1:-1] if found else lines[1:]
    return Entry(info.id, info.time, info.author.email, info.committer.name, lines[0].strip(),
                 "\n\n".join(body).strip(), found)


def history(store: StateStore, build: str | None = None, actor: str | None = None,
            op: str | None = None) -> Iterator[Entry]:
    for info in store.history():
        item = entry(info)
        if build and not any(v.startswith(build) for v in item.values("Build")):
            continue
        if actor and item.author != actor and actor not in item.values("Actor"):
            continue
        if op and op not in item.values("Op"):
            continue
        yield item


def describe(entries: Iterable[Entry]) -> Iterator[str]:
    import time as _time
    for item in entries:
        when = _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(item.time))
        yield f"{item.commit[:10]} {when} {item.author}  {item.title}"
        if item.reason:
            yield from (f"    {line}" for line in item.reason.splitlines())
