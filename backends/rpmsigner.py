"""Signing RPMs with `rpmsign --addsign` and checking them with `rpmkeys`.

rpmsign takes many files in one call and runs gpg once per file, so signing
a build (or a batch) is one process per core, not one per package. The
passphrase never touches a disk: each rpmsign gets its own named pipe (a
FIFO, 0600, in a private 0700 folder) as gpg's `--passphrase-file`, and a
thread here writes the passphrase into it each time one of its gpg
processes opens it; argv names the pipe, never the passphrase. One pipe per
rpmsign keeps it to one reader at a time (rpmsign runs its gpgs in turn).

Verification imports only the target's public key into a throw-away rpmdb
and requires a signature (`_pkgverify_level signature`): without that
define, `rpmkeys --checksig` passes unsigned packages.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from backends.base import BackendError
from backends.keys import gpg_binary, prepare_home

_CHUNK = 500  # files per rpmsign call: well inside ARG_MAX


class RpmSigner:
    def __init__(self, home: str) -> None:
        self.home = home

    def sign(self, paths: Sequence[str], fingerprint: str, passphrase: str | None) -> None:
        prepare_home(self.home)
        secret = tempfile.mkdtemp(prefix=".sign-", dir=self.home)  # 0700, in sluice's own 0700 GnuPG home
        feeders: list[_Feeder] = []
        try:
            def command_for(n: int) -> list[str]:
                extra = "--batch"
                if passphrase is not None:
                    feeders.append(_Feeder(os.path.join(secret, f"passphrase-{n}"), passphrase))
                    extra += f" --pinentry-mode loopback --passphrase-file {feeders[-1].path}"
                defines = {"_gpg_name": fingerprint, "__gpg": gpg_binary(), "_gpg_path": self.home,
                           "_gpg_sign_cmd_extra_args": extra}
                return ["rpmsign", "--addsign", *(a for k, v in defines.items() for a in ("--define", f"{k} {v}"))]

            _run_parallel(command_for, paths, "rpmsign could not sign the packages",
                          "check the passphrase, and that the key has not expired (`sluice key list`)")
        finally:
            for feeder in feeders:
                feeder.close()
            shutil.rmtree(secret, ignore_errors=True)

    def verify(self, paths: Sequence[str], public_key: bytes) -> None:
        db = tempfile.mkdtemp(prefix="sluice-rpmdb-")
        try:
            key = os.path.join(db, "key.asc")
            with open(key, "wb") as f:
                f.write(public_key)
            _run(["rpmkeys", "--dbpath", db, "--import", key], "rpmkeys could not import the target key",
                 "export it again with `sluice key list`")
            checksig = ["rpmkeys", "--dbpath", db, "--define", "_pkgverify_level signature", "--checksig"]
            _run_parallel(lambda n: checksig, paths, "a signed package failed its signature check against the target key",
                          "nothing was recorded; check the key with `sluice key list` and sign again")
        finally:
            shutil.rmtree(db, ignore_errors=True)


def _run_parallel(command_for: Callable[[int], list[str]], paths: Sequence[str], what: str, hint: str) -> None:
    """`command_for(n) -- FILES…` over `paths` in one process per core (at
    most _CHUNK files each): gpg signs one file at a time, so cores add up."""
    if not paths:
        return
    share = max(1, min(_CHUNK, -(-len(paths) // (os.cpu_count() or 1))))
    chunks = [list(paths[i:i + share]) for i in range(0, len(paths), share)]
    commands = [command_for(n) for n in range(len(chunks))]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for future in [pool.submit(_run, [*command, "--", *chunk], what, hint)
                       for command, chunk in zip(commands, chunks)]:
            future.result()


class _Feeder:
    """A FIFO that hands out the passphrase once per open, from a thread."""

    def __init__(self, path: str, passphrase: str) -> None:
        self.path, self._data = path, (passphrase + "\n").encode()
        self._stop = threading.Event()
        os.mkfifo(path, 0o600)
        self._thread = threading.Thread(target=self._serve, daemon=True, name="passphrase-fifo")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            fd = os.open(self.path, os.O_WRONLY)  # waits for a gpg to open the pipe
            try:
                if self._stop.is_set():
                    return
                os.write(fd, self._data)
            except BrokenPipeError:
                pass  # that gpg went away before it read
            finally:
                os.close(fd)

    def close(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + 5
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:  # a reader of our own lets a waiting open() return, so the thread sees the stop
                os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
            except OSError:
                break
            self._thread.join(0.05)
        self._data = b""


def _run(command: list[str], what: str, hint: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BackendError(f"{what}: cannot run {command[0]} ({exc.strerror})",
                           "install rpm-sign (Fedora) or rpm (Debian)", command=command) from exc
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise BackendError(what, hint, command=command, status=result.returncode, output=output)
