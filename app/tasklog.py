"""Where a task's logs are, for the log screen: the seam between the
cockpit and the builders' logs (`app/logs.py`).

`BuildView.detail()` lists each task's stored logs by digest
(`tasks[].logs`: `output`, `build.log`, `root.log`, `state.log`), and while
a task builds its output grows in the runner's live file
(`logs.live_path`). `locate` picks the one the screen asks for; `follow`
reads whole lines as the file grows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

from app import logs

KINDS = ("output", "build", "root", "state")


@dataclass(frozen=True)
class LogRef:
    build: str
    arch: str
    kind: str
    path: str
    live: bool  # still being written: follow it


def file_name(kind: str) -> str:
    return logs.OUTPUT if kind == "output" else f"{kind}.log"


def locate(detail: Mapping, arch: str, kind: str, artifact_path: Callable[[str], str],
           live_root: str = "") -> LogRef | None:
    """The `kind` log of `arch`'s last attempt, or None while there is none:
    the live output while the task builds on this machine's runner, else
    what the artifact store holds."""
    task = next((t for t in detail.get("tasks") or () if t.get("arch") == arch), None) or {}
    attempts = task.get("attempts") or ()
    if not attempts:
        return None
    last = attempts[-1]
    if kind == "output" and last.get("ended") is None and task.get("state") == "building" and live_root:
        path = logs.live_path(live_root, str(detail["id"]), arch, int(last.get("n") or len(attempts)))
        if os.path.exists(path):
            return LogRef(detail["id"], arch, kind, path, True)
    digest = (task.get("logs") or {}).get(file_name(kind))
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
