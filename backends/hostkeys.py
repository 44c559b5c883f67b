"""Host keys of builder hosts: refused unless known, never learned.

A build host receives sources and returns binaries that get signed, so a
spoofed one is a supply-chain attack. paramiko's RejectPolicy is extended to
keep the offered key, so the refusal can show its fingerprint the way
`ssh-keygen -l` does, for comparing with what the host's admin reads there.
"""
from __future__ import annotations

import paramiko

from backends.base import BackendError, Disconnected, HostKeyRefused


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

