"""Progress bars for uploads and downloads, on stderr when it is a terminal.

Transfers report (bytes done, bytes in all); a bar is redrawn at most ten
times a second and ends with a newline when the transfer is complete. Several
threads may transfer at once, so drawing takes a lock.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from backends.base import Progress

_WIDTH = 24


class Bars:
    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.lock = threading.Lock()

    def __call__(self, what: str) -> Progress | None:
        if not self.enabled:
            return None
        last = [0.0]

        def update(done: int, total: int) -> None:
            now = time.monotonic()
            complete = total > 0 and done >= total
            if not complete and now - last[0] < 0.1:
                return
            last[0] = now
            self.draw(what, done, total, complete)
        return update

    def draw(self, what: str, done: int, total: int, complete: bool) -> None:
        share = done / total if total else 1.0
        filled = int(share * _WIDTH)
        line = f"\r{what[:48]:48} [{'#' * filled}{'.' * (_WIDTH - filled)}] {share:4.0%} {_size(done)}/{_size(total)}"
        with self.lock:
            self.stream.write(line + ("\n" if complete else ""))
            self.stream.flush()


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}B"
