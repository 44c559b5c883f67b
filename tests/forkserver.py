"""A sluice process that forks sluice commands to be killed (tests only).

Starting Python and importing sluice takes most of a short command's wall
time (0.3-1 s on a busy machine), so a timed SIGKILL against a fresh
`sluice` process mostly lands in the imports. This server imports the CLI
once, then, for each request on stdin (one JSON line: argv, env, delay),
forks a child that runs `app.cli.main(argv)` exactly as the `sluice` script
does, with stdout and stderr in files. When `delay` passes before the child
exits, the child's whole process group (its git commands too) gets SIGKILL.
It answers one JSON line per request: pid, whether it was killed, the exit
code, and the seconds the child ran.
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from app.cli import main as sluice_main  # imported once, before any fork


def child(request: dict) -> None:
    os.setpgid(0, 0)
    os.environ.update(request.get("env", {}))
    for fd, path in ((1, request["out"]), (2, request["err"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    code = 1
    try:
        code = sluice_main(request["argv"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        begun = time.monotonic()
        pid = os.fork()
        if pid == 0:
            child(request)
        try:
            os.setpgid(pid, pid)  # both sides set it, so a kill never misses the group
        except OSError:
            pass
        handle = os.pidfd_open(pid)
        delay = request.get("delay")
        ready, _, _ = select.select([handle], [], [], delay)
        killed = not ready
        if killed:
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(handle)
        elapsed = time.monotonic() - begun
        if killed and os.waitstatus_to_exitcode(status) != -signal.SIGKILL:
            killed = False  # it exited in the instant between the wait and the kill
        print(json.dumps({"pid": pid, "killed": killed, "code": None if killed else
                          os.waitstatus_to_exitcode(status), "elapsed": elapsed}), flush=True)


if __name__ == "__main__":
    serve()
