"""The interface for merging external repos into a buildroot repo.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

LOCAL = "buildroot"  # the origin name of the target's own builds in a merged repo


@dataclass(frozen=True)
class RepoSource:
    """One repo feeding a merged buildroot: a name (for `show`) and a URL."""

    name: str
    url: str


@dataclass(frozen=True)
class Merged:
    changed: bool
    origins: Mapping[str, str] = field(default_factory=dict)  # "name-version-release.arch" -> source name
    taken: Mapping[str, int] = field(default_factory=dict)  # source name -> packages offered from it
    masked: Mapping[str, int] = field(default_factory=dict)  # source name -> packages an earlier repo hid


class RepoMerger(Protocol):
    def merge(self, repo_dir: str, local_dir: str, externals: Sequence[RepoSource]) -> Merged:
        """Make `repo_dir` offer the packages of the repo in `local_dir`, then
        those of each external repo whose source package no earlier repo has."""
        ...
