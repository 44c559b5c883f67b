"""The interfaces `sluice review` reads RPMs through: contents and rpmlint.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class ChangelogEntry:
    time: int  # seconds since the epoch (rpm keeps the day)
    author: str  # "Name <email> - version-release"
    text: str


@dataclass(frozen=True)
class RpmContents:
    """What a built RPM holds and declares, as its header says."""

    name: str
    arch: str
    evr: str
    files: tuple[str, ...]
    provides: tuple[str, ...]  # "name", "name = evr", "libfoo.so.1()(64bit)"
    requires: tuple[str, ...]  # the same form; rpmlib() requirements left out
    size: int  # installed size in bytes
    changelog: tuple[ChangelogEntry, ...]  # newest first


@dataclass(frozen=True)
class LintFinding:
    package: str  # "name.arch" as rpmlint prints it
    severity: str  # "E" error, "W" warning, "I" info
    check: str
    detail: str


class ContentsReader(Protocol):
    def contents(self, path: str) -> RpmContents: ...


class Linter(Protocol):
    def lint(self, paths: Sequence[str]) -> list[LintFinding]:
        """rpmlint's findings for these RPMs."""
        ...
