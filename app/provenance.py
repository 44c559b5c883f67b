"""Which repo each package in a task's buildroot came from, read off root.log.

Two writers are understood:
- sluice's rpmbuild builder (and the mock test double, which runs it):
  `sluice: BuildRequires NAME -> NAME-VERSION-RELEASE.ARCH from URL`;
- mock: dnf's transaction table (dnf4 and dnf5), which mock copies into
  root.log line by line (`DEBUG util.py:446:   bash  x86_64  5.2.15-5.fc39  fedora  1.8 M`);
  a name too long for its column sits alone on its line, the rest follows.

A package whose NEVRA the target's buildroot repo offered when the task
started is credited to the repo it offered it from (the target's own builds,
`buildroot`, or an external repo by name); any other package to the repo id
dnf names (the mock config's own repos, such as `fedora`).
"""
from __future__ import annotations

import re
from typing import Mapping

from app.model import ARCH
from backends.base import LOCAL

_PREFIX = re.compile(r"^(?:[A-Z]+ \S+:\d+:)?\s*")  # mock's "DEBUG util.py:446:"
_HELPER = re.compile(r"^sluice: BuildRequires \S+ -> (\S+) from (\S+)$")
_SECTION = re.compile(r"^(Installing|Upgrading|Reinstalling|Downgrading)\b.*:$")
_EPOCH = re.compile(r"^\d+:")
LIMIT = 5000  # packages recorded per task: a buildroot is a few hundred


def installed(root_log: str, origins: Mapping[str, str]) -> list[list[str]]:
    """[[nevra, repo], ...] in the order the log lists them, each once."""
    found: dict[str, str] = {}
    in_table, pending = False, ""
    for raw in root_log.splitlines():
        line = _PREFIX.sub("", raw, count=1).rstrip()
        helper = _HELPER.match(line)
        if helper:
            found.setdefault(helper.group(1), origins.get(helper.group(1), LOCAL))
            continue
        if _SECTION.match(line):
            in_table, pending = True, ""
            continue
        if not in_table:
            continue
        fields = line.split()
        if not fields or line.startswith(("Transaction", "Skipping", "Removing", "Total")):
            in_table = False
            continue
        if len(fields) == 1 and not pending:
            pending = fields[0]  # dnf4 wrapped a long name onto its own line
            continue
        if pending:
            fields, pending = [pending, *fields], ""
        if len(fields) >= 4 and ARCH.fullmatch(fields[1]) and "-" in fields[2]:
            nevra = f"{fields[0]}-{_EPOCH.sub('', fields[2])}.{fields[1]}"
            found.setdefault(nevra, origins.get(nevra, fields[3]))
        if len(found) >= LIMIT:
            break
    return [[nevra, repo] for nevra, repo in found.items()]


def summary(packages: list[list[str]]) -> list[str]:
    """For `show`: the repos sluice feeds listed package by package, the rest counted."""
    by_repo: dict[str, list[str]] = {}
    for nevra, repo in packages:
        by_repo.setdefault(repo, []).append(nevra)
    lines = []
    for repo, nevras in by_repo.items():
        lines.append(f"{repo}: " + (", ".join(nevras) if len(nevras) <= 12
                                     else f"{len(nevras)} packages ({', '.join(nevras[:5])}, …)"))
    return lines
