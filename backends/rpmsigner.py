"""Signing RPMs with `rpmsign --addsign` and checking them with `rpmkeys`.

rpmsign takes many files in one call and runs gpg once per file, so signing
a build (or a batch) is one process per core, not one per package. The passphrase is
written to a 0600 file in a private 0700 folder that exists only while
rpmsign runs; argv names the file, never the passphrase.

Verification imports only the target's public key into a throw-away rpmdb
and requires a signature (`_pkgverify_level signature`): without that
define, `rpmkeys --checksig` passes unsigned packages.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from backends.base import BackendError
from backends.keys import gpg_binary, prepare_home

_CHUNK = 500  # files per rpmsign call: well inside ARG_MAX


class RpmSigner:
    def __init__(self, home: str) -> None:
        self.home = home

    def sign(self, paths: Sequence[str], fingerprint: str, passphrase: str | None) -> None:
        prepare_home(self.home)
        secret = tempfile.mkdtemp(prefix=".sign-", dir=self.home)  # 0700, in sluice's own 0700 GnuPG home
        try:
            defines = {"_gpg_name": fingerprint, "__gpg": gpg_binary(), "_gpg_path": self.home}
            if passphrase is not None:
                phrase = os.path.join(secret, "passphrase")
                fd = os.open(phrase, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(passphrase)
                defines["_gpg_sign_cmd_extra_args"] = \
                    f"--batch --pinentry-mode loopback --passphrase-file {phrase}"
            else:
                defines["_gpg_sign_cmd_extra_args"] = "--batch"
            command = ["rpmsign", "--addsign"]
            for name, value in defines.items():
                command += ["--define", f"{name} {value}"]
            _run_parallel(command, paths, "rpmsign could not sign the packages",
                          "check the passphrase, and that the key has not expired (`sluice key list`)")
        finally:
            shutil.rmtree(secret, ignore_errors=True)

    def verify(self, paths: Sequence[str], public_key: bytes) -> None:
        db = tempfile.mkdtemp(prefix="sluice-rpmdb-")
        try:
            key = os.path.join(db, "key.asc")
            with open(key, "wb") as f:
                f.write(public_key)
            _run(["rpmkeys", "--dbpath", db, "--import", key], "rpmkeys could not import the target key",
                 "export it again with `sluice key list`")
            _run_parallel(["rpmkeys", "--dbpath", db, "--define", "_pkgverify_level signature", "--checksig"],
                          paths, "a signed package failed its signature check against the target key",
                          "nothing was recorded; check the key with `sluice key list` and sign again")
        finally:
            shutil.rmtree(db, ignore_errors=True)


def _run_parallel(command: list[str], paths: Sequence[str], what: str, hint: str) -> None:
    """`command -- FILES…` over `paths` in one process per core (at most
    _CHUNK files each): gpg signs one file at a time, so cores add up."""
    if not paths:
        return
    share = max(1, min(_CHUNK, -(-len(paths) // (os.cpu_count() or 1))))
    chunks = [list(paths[i:i + share]) for i in range(0, len(paths), share)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for future in [pool.submit(_run, [*command, "--", *chunk], what, hint) for chunk in chunks]:
            future.result()


def _run(command: list[str], what: str, hint: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BackendError(f"{what}: cannot run {command[0]} ({exc.strerror})",
                           "install rpm-sign (Fedora) or rpm (Debian)", command=command) from exc
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise BackendError(what, hint, command=command, status=result.returncode, output=output)
