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
from backends.base import PackageReader, Publisher, RepoMerger
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
    def publisher(self) -> Publisher:
        from backends.publisher import CreaterepoPublisher
        return CreaterepoPublisher(self.artifacts)

    @cached_property
    def repo_merger(self) -> RepoMerger:
        from backends.repomerge import MergeRepoWriter
        return MergeRepoWriter()

    @cached_property
    def transport(self) -> GitCliTransport:
        return GitCliTransport(self.store.repo)

    @cached_property
    def merger(self) -> GitMerger:
        return GitMerger(self.store)

    def admit_pushed_objects(self) -> None:
        """In a pre-receive hook the pushed objects wait in git's quarantine
        (`GIT_OBJECT_DIRECTORY`, with the repo's own objects as alternates);
        libgit2 reads only the repo's own unless told, so add them."""
        paths = [os.environ.get("GIT_OBJECT_DIRECTORY", "")]
        paths += os.environ.get("GIT_ALTERNATE_OBJECT_DIRECTORIES", "").split(os.pathsep)
        for path in paths:
            if path and os.path.isdir(path):
                self.store.repo.odb.add_disk_alternate(os.path.abspath(path))

    def remotes(self) -> list[str]:
        return list(self.store.repo.remotes.names())


def keyring(home: str):
    from backends.keys import GnupgKeyring
    return GnupgKeyring(home)


def commit_signer(home: str | None, passphrase_file: str | None):
    from backends.commitsign import GnupgCommitSigner
    return GnupgCommitSigner(home, passphrase_file)


def commit_verifier(store: GitStateStore, home: str | None):
    from backends.commitsign import GnupgCommitVerifier
    return GnupgCommitVerifier(store.repo, home)


def signer(home: str):
    from backends.rpmsigner import RpmSigner
    return RpmSigner(home)


def contents_reader():
    from backends.rpmcontents import RpmContentsReader
    return RpmContentsReader()


def linter():
    from backends.rpmcontents import RpmLinter
    return RpmLinter()


def upstream_repo():
    from backends.upstream import UpstreamReader
    return UpstreamReader()


def signature_checker():
    from backends.upstream import RpmSignatureChecker
    return RpmSignatureChecker()


def smtp_notifier(host: str, port: int, starttls: bool, user: str, password_file: str):
    from backends.smtp import SmtpNotifier
    return SmtpNotifier(host, port, starttls, user, password_file)


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


def open_transport(kind: str, host: str, port: int, user: str, key: str, known_hosts: str,
                   max_sessions: int = 10):
    """A builder host's transport: this machine, or SSH with a verified host key."""
    if kind == "local":
        from backends.transport_local import LocalTransport
        return LocalTransport()
    from backends.transport_ssh import SshTransport
    return SshTransport(host, port, user, key, known_hosts, max_sessions=max_sessions)


def artifact_remote(url: str, configured: str | None, key: str | None, known_hosts: str | None):
    """The artifact remote for a git remote at `url`: the `configured`
    folder, else the one beside the remote; None when there is none to reach
    (an https remote with nothing configured)."""
    from backends import artifact_remote as found
    location = found.parse(configured) if configured else found.beside(url)
    return found.connect(location, key, known_hosts) if location else None


def build_tool(name: str):
    from backends.buildtools import tool_for
    return tool_for(name)


class RepoService:
    """The read-only HTTP server for published repos, started on first use
    (remote builders reach it through their SSH connection's reverse forward)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._server = None

    def port(self) -> int:
        if self._server is None:
            from backends.reposerver import RepoServer
            os.makedirs(self.root, exist_ok=True)
            self._server = RepoServer(self.root, stage="buildroot")
            self._port = self._server.start()
        return self._port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
