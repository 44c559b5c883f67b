"""Builds the real backends for a state repo: the one place that picks them.

The CLI (and later the TUI) calls `open_backends`; everything else in `app/`
sees only the Protocols of `backends.base`. Heavy imports (the rpm bindings)
wait until something needs them.
"""
from __future__ import annotations

import os
import subprocess
from functools import cached_property

from backends.artifacts import FileArtifactStore
from backends.base import PackageReader
from backends.gitstore import GitStateStore
from backends.gitsync import GitCliTransport, GitMerger


class Backends:
    def __init__(self, repo_path: str, artifacts_root: str, *, create: bool = False) -> None:
        self.store = GitStateStore.open(repo_path, create=create)
        self.artifacts = FileArtifactStore(artifacts_root)

    @cached_property
    def reader(self) -> PackageReader:
        from backends.srpm import RpmReader
        return RpmReader()

    @cached_property
    def transport(self) -> GitCliTransport:
        return GitCliTransport(self.store.repo)

    @cached_property
    def merger(self) -> GitMerger:
        return GitMerger(self.store)

    def remotes(self) -> list[str]:
        return list(self.store.repo.remotes.names())


def git_config(key: str, repo_path: str | None = None) -> str | None:
    """A git config value for a repo that may not exist yet (global config)."""
    command = ["git", "config", "--get", key]
    cwd = repo_path if repo_path and os.path.isdir(repo_path) else None
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    except OSError:
        return None
    return result.stdout.strip() or None


def machine_arch() -> str:
    return os.uname().machine
