"""The `local` builder transport: builds run on this machine.

It behaves like the ssh transport in every way a runner can see, so that a
runner never asks which one it holds: commands go through the same
`sh -c 'exec "$@"'` wrapper (a missing command is status 127 with the shell's
message, not a Python exception), every command gets its own process group
(`start_new_session`), a build's stdout and stderr arrive merged, and cancel
ends the whole group, TERM first, KILL after ~3 s.

`group_alive` scans /proc rather than trusting `killpg(pgid, 0)`: in a
container whose PID 1 never reaps orphans, a killed child stays a zombie
member of its group forever, and it is not running anything.
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from backends.base import BackendError, Completed, Progress

TERM_GRACE = 3.0  # seconds a build gets to end after TERM before KILL
KILL_GRACE = 1.0  # seconds the kernel gets to remove the group after KILL
_CHUNK = 1 << 20
_EXEC = ["/bin/sh", "-c", 'exec "$@"', "sh"]
# What a build here may see of the runner's environment: no agent sockets,
# no SLUICE_* or GIT_* settings, no session bus. (It still runs as the
# runner's user: see docs/builders.md on the local builder.)
_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM")


def build_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in _KEPT or k.startswith("LC_")}


def group_alive(pgid: int) -> bool:
    """True while any process of group `pgid` is running (zombies do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def end_group(pgid: int, reap: Callable[[], object] = lambda: None) -> bool:
    """TERM the group, wait up to TERM_GRACE, then KILL it; True when none is
    left. `reap` lets the caller collect its own child, which would otherwise
    linger as a zombie member of the group."""
    for sig, grace in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, KILL_GRACE)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's build: say it survived, never that it ended
            return not group_alive(pgid)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            reap()
            if not group_alive(pgid):
                return True
            time.sleep(0.05)
    reap()
    return not group_alive(pgid)


class LocalProcess:
    """A build running here; see `backends.base.Process`."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = tuple(argv)
        self._proc = subprocess.Popen([*_EXEC, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True, env=build_environment())
        self.pgid = self._proc.pid  # a session leader leads its own group
        assert self._proc.stdout is not None
        self._out = self._proc.stdout
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._out, selectors.EVENT_READ)
        self._eof = False

    def read(self, timeout: float) -> bytes | None:
        if self._eof:
            return b""
        if not self._selector.select(max(timeout, 0.0)):
            return None
        chunk = os.read(self._out.fileno(), 65536)
        if not chunk:
            self._eof = True
            self._selector.close()
            self._out.close()
        return chunk

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status; negative (-signal) when a signal ended it."""
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if not end_group(self.pgid, self._proc.poll):
            raise BackendError(f"processes of group {self.pgid} ({self.argv[0]}) survived SIGKILL",
                               f"they are stuck in the kernel; look at them: pgrep -a -g {self.pgid}",
                               command=self.argv)


class LocalTransport:
    """Runs builds on this machine; see `backends.base.Transport`."""

    host = "localhost"

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Completed:
        check_argv(argv)
        proc = subprocess.Popen([*_EXEC, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, env=build_environment())
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            end_group(proc.pid, proc.poll)
            out, err = proc.communicate()
            raise BackendError(f"{argv[0]} did not finish within {timeout:g} s here and was stopped",
                               "raise the timeout or look at why the command hangs", command=argv,
                               output=(out + err).decode(errors="replace")) from None
        return Completed(proc.returncode, out, err)

    def start(self, argv: Sequence[str]) -> LocalProcess:
        check_argv(argv)
        return LocalProcess(argv)

    def put(self, local: str, remote: str, progress: Progress | None = None) -> None:
        _copy(local, remote, progress)

    def get(self, remote: str, local: str, progress: Progress | None = None) -> None:
        _copy(remote, local, progress)

    def end_group(self, pgid: int) -> None:
        if not end_group(pgid):
            raise BackendError(f"processes of group {pgid} survived SIGKILL",
                               f"they are stuck in the kernel; look at them: pgrep -a -g {pgid}")

    def forward(self, local_port: int) -> int:
        """The host is this machine: 127.0.0.1:`local_port` is already reachable."""
        return local_port

    def close(self) -> None:
        pass


def check_argv(argv: Sequence[str]) -> None:
    if not argv or isinstance(argv, (str, bytes)):
        raise ValueError(f"argv must be a non-empty list of arguments, not {argv!r}")


def _copy(source: str, target: str, progress: Progress | None) -> None:
    """Copy through a temporary file beside `target`, renamed only when whole,
    so that a reader never sees half a file under the real name."""
    try:
        total = os.path.getsize(source)
        fd, temp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)),
                                    prefix=f".{os.path.basename(target)}.", suffix=".part")
    except OSError as exc:
        raise BackendError(f"cannot copy {source} to {target}: {exc.strerror}",
                           "check that the file exists and the target folder exists and is writable") from exc
    try:
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            done = 0
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            if progress and total == 0:
                progress(0, 0)
        shutil.copymode(source, temp)
        os.replace(temp, target)
    except OSError as exc:
        os.unlink(temp)
        raise BackendError(f"cannot copy {source} to {target}: {exc.strerror}",
                           "check free space and permissions on the target folder") from exc
    except BaseException:
        os.unlink(temp)
        raise
