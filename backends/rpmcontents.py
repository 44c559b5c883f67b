"""Reading a built RPM's files, dependencies and changelog (rpm bindings),
and running rpmlint on RPMs, for `sluice review`.

The RPMs read here are already in the artifact store, where every digest was
checked on import; the header is read with signature checks off (a signed
RPM's key need not be in this machine's rpmdb).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Sequence

import rpm

from backends.base import BackendError, BadInput
from backends.review_protocols import ChangelogEntry, LintFinding, RpmContents

_FINDING = re.compile(r"^(\S+): ([EWI]): (\S+)(?: (.*))?$")
RPMLINT_TIMEOUT = 600.0


class RpmContentsReader:
    def contents(self, path: str) -> RpmContents:
        ts = rpm.TransactionSet()
        ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise BadInput(f"cannot read {path}: {exc.strerror}", "check the artifact store") from exc
        try:
            header = ts.hdrFromFdno(fd)
        except rpm.error as exc:
            raise BadInput(f"{path} is not a readable RPM ({exc})", "the artifact store is damaged: rebuild") from exc
        finally:
            os.close(fd)
        epoch = header[rpm.RPMTAG_EPOCH]
        evr = (f"{epoch}:" if epoch else "") + f"{header[rpm.RPMTAG_VERSION]}-{header[rpm.RPMTAG_RELEASE]}"
        entries = zip(header[rpm.RPMTAG_CHANGELOGTIME] or (), header[rpm.RPMTAG_CHANGELOGNAME] or (),
                      header[rpm.RPMTAG_CHANGELOGTEXT] or ())
        return RpmContents(
            name=header[rpm.RPMTAG_NAME], arch=header[rpm.RPMTAG_ARCH], evr=evr,
            files=tuple(header[rpm.RPMTAG_FILENAMES] or ()),
            provides=_deps(header, "providename"), requires=_deps(header, "requirename"),
            size=int(header[rpm.RPMTAG_LONGSIZE] or header[rpm.RPMTAG_SIZE] or 0),
            changelog=tuple(ChangelogEntry(int(t), str(n), str(x)) for t, n, x in entries))


def _deps(header: "rpm.hdr", tag: str) -> tuple[str, ...]:
    found = []
    for dep in rpm.ds(header, tag):
        text = dep.DNEVR()[2:]  # "P foo = 1.0" -> "foo = 1.0"
        if not text.startswith("rpmlib("):
            found.append(text)
    return tuple(dict.fromkeys(found))


class RpmLinter:
    """`Linter` over the rpmlint command (Debian's and Fedora's package)."""

    def __init__(self, command: str = "rpmlint") -> None:
        self.command = command

    def lint(self, paths: Sequence[str]) -> list[LintFinding]:
        if not paths:
            return []
        if shutil.which(self.command) is None:
            raise BackendError("rpmlint is not installed", "install it (apt install rpmlint, or dnf install rpmlint); "
                               "`sluice review --no-lint` reviews without it")
        with tempfile.TemporaryDirectory(prefix="sluice-lint-") as folder:
            named = []  # rpmlint reads only files named *.rpm; the store names them by digest
            for n, path in enumerate(paths):
                named.append(os.path.join(folder, f"{n}.rpm"))
                os.symlink(os.path.abspath(path), named[-1])
            command = [self.command, "--", *named]
            try:
                done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                      timeout=RPMLINT_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                raise BackendError(f"rpmlint took over {RPMLINT_TIMEOUT:.0f} s", "review again with --no-lint",
                                   command=command) from exc
        findings = [LintFinding(*m.groups(default="")) for m in map(_FINDING.match, done.stdout.splitlines()) if m]
        if done.returncode not in (0, 64, 66) and not findings:  # 64/66: it found errors, which is its job
            raise BackendError(f"rpmlint failed with status {done.returncode}", "read its output",
                               command=command, status=done.returncode, output=done.stdout + done.stderr)
        return findings
