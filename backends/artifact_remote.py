"""Artifact remotes: the folders `sluice sync` moves artifacts through.

Artifacts never go into git (DESIGN: state in git, artifacts beside it), so
they travel through a content-addressed folder of their own,
`<folder>/sha256/<ab>/<digest>`, shared by every clone of a queue. By
default that folder lives beside the git remote: `sluice-artifacts` inside a
remote that is a path on this machine, and the same folder on the host of
an `ssh://` or scp-style remote, reached over SFTP with paramiko. Other
remotes (https, git://) have no folder beside them that sluice could reach;
the local config names one.

Why it looks the way it does:
- Only sha256 digests, checked as 64 hex digits, ever become a path; no
  name from package data reaches a path or a remote command.
- Uploads go to a temporary name in the target folder and are renamed when
  whole, so a reader never sees half a file. Downloads are not trusted: the
  caller stores them only when their sha256 is the digest they were asked by.
- The SSH host key is checked against one known_hosts file (default
  `~/.ssh/known_hosts`, hashed entries too) and an unknown or changed key is
  refused with its fingerprint, never learned (`backends.hostkeys`), as for
  builders: the files that travel here get signed and published.
- `~/.ssh/config` is read for HostName, Port, User, IdentityFile and
  UserKnownHostsFile, so a host alias that works for `git` works here; with no key configured, paramiko
  tries the agent and the usual `~/.ssh/id_*` keys.
"""
from __future__ import annotations

import errno
import getpass
import os
import posixpath
import re
import secrets
import shutil
import stat
from dataclasses import dataclass, replace
from typing import Iterable
from urllib.parse import urlsplit

import paramiko

from backends import hostkeys
from backends.artifacts import FileArtifactStore
from backends.base import BackendError, BadInput, Disconnected

FOLDER = "sluice-artifacts"  # beside (inside) the git remote's folder
_DIGEST = re.compile(r"[0-9a-f]{64}")
_SCP = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?P<path>.*)")
_SSH_SCHEMES = ("ssh", "git+ssh", "ssh+git")
_TIMEOUT = 15


@dataclass(frozen=True)
class Location:
    """An artifact folder: a path here (`host` None) or on an SSH host."""

    path: str
    host: str | None = None
    port: int | None = None
    user: str | None = None

    @property
    def where(self) -> str:
        if self.host is None:
            return self.path
        port = f":{self.port}" if self.port else ""
        return f"{self.user + '@' if self.user else ''}{self.host}{port}:{self.path}"


def parse(text: str) -> Location | None:
    """A path, `file://`, `ssh://` or scp-style `user@host:path`; None for a
    URL sluice cannot reach files through (https, git://)."""
    if not text or text.startswith("-") or any(ord(c) < 32 for c in text):
        return None
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme == "file":
            return Location(os.path.abspath(parts.path)) if parts.path else None
        if parts.scheme not in _SSH_SCHEMES or not parts.hostname:
            return None
        try:
            port = parts.port
        except ValueError:
            return None
        return Location(_home_relative(parts.path), parts.hostname, port, parts.username)
    scp = _SCP.fullmatch(text)
    if scp and "/" not in text.split(":", 1)[0]:  # git: a slash before the colon makes it a path
        return Location(_home_relative(scp.group("path")) or ".", scp.group("host"), None, scp.group("user"))
    return Location(os.path.abspath(os.path.expanduser(text)))


def _home_relative(path: str) -> str:
    """git's `~/x` (and ssh://host/~/x) is x in the login directory, which is
    where an SFTP session starts."""
    for prefix in ("/~/", "~/"):
        if path.startswith(prefix):
            return path[len(prefix):] or "."
    return path


def beside(git_url: str) -> Location | None:
    """The default artifact folder of a git remote: `sluice-artifacts` in its
    folder (in its `.git` when it is a work tree); None when unreachable."""
    found = parse(git_url)
    if found is None:
        return None
    if found.host is None:
        inner = os.path.join(found.path, ".git")
        return replace(found, path=os.path.join(inner if os.path.isdir(inner) else found.path, FOLDER))
    return replace(found, path=posixpath.join(found.path, FOLDER))


def connect(location: Location, key: str | None = None, known_hosts: str | None = None):
    """The `ArtifactRemote` for `location` (an SSH connection opens on first use)."""
    if location.host is None:
        return FolderRemote(location.path)
    return SftpRemote(location, key, known_hosts)


def checked(sha256: str) -> str:
    if not isinstance(sha256, str) or not _DIGEST.fullmatch(sha256):
        raise BadInput(f"{sha256!r} is not a sha256 digest; it names no artifact",
                       "artifacts are named only by 64 lower-case hex digits")
    return sha256


class FolderRemote:
    """An artifact folder on this machine (a shared disk, a local hub)."""

    def __init__(self, root: str) -> None:
        self.store = FileArtifactStore(root)
        self.where = root

    def present(self, digests: Iterable[str]) -> set[str]:
        return {d for d in digests if self.store.has(checked(d))}

    def send(self, local: str, sha256: str) -> None:
        self.store.put(local, expect=checked(sha256))

    def fetch(self, sha256: str, local: str) -> None:
        try:
            shutil.copyfile(self.store.path(checked(sha256)), local)
        except OSError as exc:
            raise BackendError(f"cannot read {sha256[:12]}… from {self.where}: {exc.strerror}",
                               "check that the folder is readable from this machine") from exc

    def close(self) -> None:
        pass


class SftpRemote:
    """An artifact folder on an SSH host, over one paramiko SFTP session."""

    def __init__(self, location: Location, key: str | None, known_hosts: str | None) -> None:
        seen = _ssh_config(location.host or "")
        self.host = seen.get("hostname") or location.host or ""
        self.port = location.port or int(seen.get("port") or 22)
        self.user = location.user or seen.get("user") or getpass.getuser()
        files = seen.get("identityfile") or []
        self.key = os.path.expanduser(key or (files[0] if files else "")) or None
        listed = (seen.get("userknownhostsfile") or "").split()
        self.known_hosts = os.path.expanduser(known_hosts or (listed[0] if listed else "~/.ssh/known_hosts"))
        self.root = location.path
        self.where = replace(location, host=self.host, user=self.user).where
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._made: set[str] = set()  # folders known to exist

    @property
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._client = self._connect()
            try:
                self._sftp = self._client.open_sftp()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self.close()
                raise BackendError(f"{self.host} refused an SFTP session ({exc})",
                                   "enable the SFTP subsystem in the host's sshd_config") from exc
        return self._sftp

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        revoked = hostkeys.load(client, self.known_hosts)
        client.set_missing_host_key_policy(hostkeys.Refuse(revoked))
        try:
            client.connect(self.host, self.port, username=self.user, key_filename=self.key,
                           timeout=_TIMEOUT, banner_timeout=_TIMEOUT, auth_timeout=_TIMEOUT,
                           allow_agent=self.key is None, look_for_keys=self.key is None)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            address = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
            raise hostkeys.refusal(exc, self.user, self.host, self.port, address, self.key or "",
                                   self.known_hosts, role="artifact host") from exc
        return client

    def _folder(self, sha256: str) -> str:
        return posixpath.join(self.root, "sha256", checked(sha256)[:2])

    def present(self, digests: Iterable[str]) -> set[str]:
        wanted: dict[str, set[str]] = {}
        for digest in digests:
            wanted.setdefault(self._folder(digest), set()).add(digest)
        found: set[str] = set()
        for folder, group in wanted.items():
            try:
                found |= group & set(self.sftp.listdir(folder))
            except FileNotFoundError:
                continue
            except (OSError, paramiko.SSHException, EOFError) as exc:
                raise self._failed("list", folder, exc) from exc
        return found

    def send(self, local: str, sha256: str) -> None:
        folder = self._folder(sha256)
        final = posixpath.join(folder, sha256)
        temp = posixpath.join(folder, f".{sha256}.{secrets.token_hex(4)}.part")
        try:
            self._makedirs(folder)
            self.sftp.put(local, temp, confirm=True)
            self.sftp.chmod(temp, 0o444)
            self.sftp.posix_rename(temp, final)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            try:
                self.sftp.remove(temp)
            except (OSError, paramiko.SSHException, EOFError):
                pass
            raise self._failed("upload to", final, exc) from exc

    def fetch(self, sha256: str, local: str) -> None:
        path = posixpath.join(self._folder(sha256), sha256)
        try:
            self.sftp.get(path, local)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._failed("download", path, exc) from exc

    def _makedirs(self, folder: str) -> None:
        if folder in self._made:
            return
        parts = folder.split("/")
        for n in range(1, len(parts) + 1):
            path = "/".join(parts[:n])
            if not path or path == ".":
                continue
            try:
                if stat.S_ISDIR(self.sftp.stat(path).st_mode or 0):
                    continue
            except FileNotFoundError:
                pass
            try:
                self.sftp.mkdir(path)
            except OSError as exc:
                if getattr(exc, "errno", None) != errno.EEXIST and not _is_dir(self.sftp, path):
                    raise
        self._made.add(folder)

    def _failed(self, what: str, path: str, exc: BaseException) -> BackendError:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            return Disconnected(f"the connection to {self.host}:{self.port} dropped ({exc})",
                                "run `sluice sync` again; what arrived whole is kept")
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return BackendError(f"cannot {what} {self.host}:{path}: {reason}",
                            f"check that {self.user} may read and write {self.root} on {self.host}")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client, self._sftp = None, None


def _is_dir(sftp: paramiko.SFTPClient, path: str) -> bool:
    try:
        return stat.S_ISDIR(sftp.stat(path).st_mode or 0)
    except OSError:
        return False


def _ssh_config(host: str) -> dict:
    """What ~/.ssh/config says about `host` (empty when there is no file)."""
    path = os.path.expanduser("~/.ssh/config")
    if not host or not os.path.exists(path):
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(path).lookup(host))
    except (OSError, ValueError, paramiko.SSHException):
        return {}
