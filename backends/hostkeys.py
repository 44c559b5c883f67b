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
                             "fix the `known_hosts` path in the local config") from exc
    keys = client.get_host_keys()
    lines = [raw.strip() for raw in lines if raw.strip() and not raw.strip().startswith("#")]
    revoked = [_decode(fields[3]) for fields in (line.split() for line in lines)
               if fields[0] == "@revoked" and len(fields) >= 4]
    for line in lines:
        if line.startswith("@"):
            continue
        try:
            entry = HostKeyEntry.from_line(line)
        except Exception:  # paramiko raises several kinds for a damaged line; ssh skips those too
            continue
        if entry is not None and entry.key.asbytes() not in revoked:  # a revoked key is never known
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
    return revoked


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except ValueError:
        return b""


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey, revoked: bool = False) -> None:
        super().__init__(f"{hostname} is not in known_hosts")
        self.key, self.revoked = key, revoked


class Refuse(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key, so the refusal can show it
    (and say so when the file marks it @revoked)."""

    def __init__(self, revoked: list[bytes] | None = None) -> None:
        self.revoked = revoked or []

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(hostname, key, key.asbytes() in self.revoked)


def refusal(exc: Exception, user: str, host: str, port: int, address: str, key: str,
            known_hosts: str, role: str = "builder") -> BackendError:
    """The error to show for a failed handshake: what happened, what to do.
    `role` names what the host is to sluice ("builder", "artifact host")."""
    where = f"{user}@{host}:{port}"
    use = "build there" if role == "builder" else "connect to it"
    if isinstance(exc, UnknownHostKey) and exc.revoked:
        return HostKeyRefused(f"the host key of {address} ({exc.key.get_name()} {exc.key.fingerprint}) is "
                              f"marked @revoked in {known_hosts}", f"do not {use}; ask the host's admin")
    if isinstance(exc, UnknownHostKey):
        return HostKeyRefused(
            f"the host key of {address} is not in {known_hosts}; it offered "
            f"{exc.key.get_name()} {exc.key.fingerprint}",
            f"compare that fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` run on the "
            f"{role} itself, and if they match add it (exactly the key you compared): "
            f"echo '{address} {exc.key.get_name()} {exc.key.get_base64()}' >> {known_hosts}")
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyRefused(
            f"the host key of {address} has changed: {known_hosts} expects "
            f"{exc.expected_key.get_name()} {exc.expected_key.fingerprint}, the host offered "
            f"{exc.key.get_name()} {exc.key.fingerprint}; this is a possible man-in-the-middle attack",
            f"do not {use} until the host's admin confirms the new key; then replace its line "
            f"(ssh-keygen -R '{address}' -f {known_hosts})")
    if isinstance(exc, paramiko.AuthenticationException):
        return Disconnected(f"{where} did not accept the key {key or '(your agent and ~/.ssh keys)'}",
                            f"add {key or 'your public key'}{'.pub' if key else ''} to {user}'s "
                            f"authorized_keys on the {role}")
    return Disconnected(f"the SSH handshake with {where} failed: {str(exc) or type(exc).__name__}",
                        f"check that an SSH server answers there: ssh -p {port} {user}@{host}")

