"""Host keys of builder hosts: refused unless known, never learned.

A build host receives sources and returns binaries that get signed, so a
spoofed one is a supply-chain attack. paramiko's RejectPolicy is extended to
keep the offered key, so the refusal can show its fingerprint the way
`ssh-keygen -l` does, for comparing with what the host's admin reads there.
"""
from __future__ import annotations

import base64

import paramiko
from paramiko.hostkeys import HostKeyEntry

from backends.base import BackendError, Disconnected, HostKeyRefused


def load(client: paramiko.SSHClient, path: str) -> list[bytes]:
    """Read an OpenSSH known_hosts file into `client`, the way ssh does:
    lines sluice cannot use (`@cert-authority`, unknown key types, damaged
    lines) are skipped instead of failing the whole file, and `@revoked`
    keys are returned so that a host offering one is refused. A missing file
    knows no keys (the refusal says how to add one)."""
    revoked: list[bytes] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return revoked
    except OSError as exc:
        raise HostKeyRefused(f"cannot read known_hosts file {path}: {exc.strerror}",
                             "fix the `known_hosts` path in the builder's config") from exc
    keys = client.get_host_keys()
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            fields = line.split()
            if fields[0] == "@revoked" and len(fields) >= 4:
                revoked.append(_decode(fields[3]))
            continue
        try:
            entry = HostKeyEntry.from_line(line)
        except Exception:  # paramiko raises several kinds for a damaged line; ssh skips those too
            continue
        if entry is not None:
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return revoked


def check_revoked(client: paramiko.SSHClient, revoked: list[bytes], address: str, path: str) -> None:
    transport = client.get_transport()
    offered = transport.get_remote_server_key() if transport else None
    if offered is not None and offered.asbytes() in revoked:
        raise HostKeyRefused(f"the host key of {address} ({offered.get_name()} {offered.fingerprint}) "
                             f"is marked @revoked in {path}", "do not build there; ask the host's admin")


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except ValueError:
        return b""


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"{hostname} is not in known_hosts")
        self.key = key


class Refuse(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key, so the refusal can show it."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(hostname, key)


def refusal(exc: Exception, user: str, host: str, port: int, address: str, key: str,
            known_hosts: str) -> BackendError:
    """The error to show for a failed handshake: what happened, what to do."""
    where = f"{user}@{host}:{port}"
    if isinstance(exc, UnknownHostKey):
        return HostKeyRefused(
            f"the host key of {address} is not in {known_hosts}; it offered "
            f"{exc.key.get_name()} {exc.key.fingerprint}",
            f"compare that fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` run on the "
            f"builder itself, and if they match add it: ssh-keyscan -p {port} {host} "
            f">> {known_hosts}")
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyRefused(
            f"the host key of {address} has changed: {known_hosts} expects "
            f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint}, the host offered "
            f"{exc.key.get_name()} {exc.key.fingerprint}; this is a possible man-in-the-middle attack",
            "do not build there until the host's admin confirms the new key; then replace its line "
            f"(ssh-keygen -R '{address}' -f {known_hosts})")
    if isinstance(exc, paramiko.AuthenticationException):
        return Disconnected(f"{where} did not accept the key {key}",
                            f"add {key}.pub to {user}'s authorized_keys on the builder")
    return Disconnected(f"the SSH handshake with {where} failed: {str(exc) or type(exc).__name__}",
                        f"check that an SSH server answers there: ssh -p {port} {user}@{host}")

