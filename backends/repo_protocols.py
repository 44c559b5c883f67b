"""The repo interfaces: publishing a repo, and merging external repos into a buildroot repo.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

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


class Publisher(Protocol):
    """A directory of RPMs (hard links into the artifact store) with
    createrepo_c metadata, updated incrementally."""

    def publish(self, repo_dir: str, files: Mapping[str, str],
                sign: Callable[[str], bytes] | None = None,
                extra: Mapping[str, bytes] | None = None) -> "Published":
        """Make `repo_dir` hold exactly `files` (name -> sha256), no more.
        With `sign`, `sign(path of the new repomd.xml)` returns its armoured
        detached signature, and `repodata/repomd.xml.asc` is that signature
        from the moment the new repomd.xml is visible. `extra` maps further
        repomd types ("updateinfo") to their XML, written (gzipped) and
        listed in the same repomd.xml."""
        ...


@dataclass(frozen=True)
class Published:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: bool
