"""Where a task's logs are, and reading them as they grow: the seam between
the log screen and the builders.

The builders (issue 3) write the logs: mock's `build.log`, `root.log` and
`state.log` per attempt, streamed while the build runs and stored in the
artifact store when it ends. Until that service lands, `locate` reads what
`BuildView.detail()` says about the task's last attempt, in the shape this
module expects, and answers None ("no log yet") when it says nothing:

    {"arch": "x86_64", "attempts": [{..., "logs": {"build": SHA256, ...},
                                         "live": {"build": PATH, ...}}]}

`logs` names finished logs by digest (read from the artifact store), `live`
names files still being written. When the builders land, make `locate` ask
their log service instead; the log screen only calls `locate` and `follow`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

KINDS = ("build", "root", "state")


@dataclass(frozen=True)
class LogRef:
    build: str
    arch: str
    kind: str
    path: str
    live: bool  # still being written: follow it


def locate(detail: Mapping, arch: str, kind: str, artifact_path: Callable[[str], str]) -> LogRef | None:
    """The `kind` log of `arch`'s last attempt, or None while there is none."""
    task = next((t for t in detail.get("tasks") or () if t.get("arch") == arch), None)
    attempts = (task or {}).get("attempts") or ()
    if not attempts:
        return None
    last = attempts[-1]
    live = (last.get("live") or {}).get(kind)
    if live and os.path.exists(live):
        return LogRef(detail["id"], arch, kind, live, True)
    digest = (last.get("logs") or {}).get(kind)
    if digest:
        path = artifact_path(digest)
        if os.path.exists(path):
            return LogRef(detail["id"], arch, kind, path, False)
    return None


def follow(path: str, offset: int = 0, limit: int = 4 << 20) -> tuple[list[str], int]:
    """The complete lines written to `path` after `offset` (at most about
    `limit` bytes of them) and the offset to read from next time. A line still
    being written stays for the next call, so a tail never shows half a line."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(limit)
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[:end]
    return chunk.decode("utf-8", "replace").split("\n"), offset + end + 1
