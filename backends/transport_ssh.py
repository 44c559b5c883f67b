"""The `ssh` builder transport: one paramiko connection per builder host.

Why it looks the way it does:

- Host keys: only the known_hosts file named in the builder's config is
  read (never ~/.ssh or /etc/ssh) and an unknown or changed key is refused,
  never learned: a build host receives sources and returns binaries that get
  signed, so a spoofed one is a supply-chain attack. The refusal shows the
  fingerprint the way `ssh-keygen -l` does, so that it can be compared with
  what the host's admin reads on the host.
- Quoting: a command is `shlex.join` of its argv, wrapped in
  `exec sh -c '…; exec "$@"' sh ARGV…`, so no package-controlled string ever
  reaches the remote shell unquoted.
- Process groups: sshd calls setsid() for a session without a pty, so the
  wrapper's `$$` is the id of the command's own process group. The wrapper
  prints it on a marker line that the transport strips; cancel kills that
  group over a new channel, because closing a channel without a pty leaves
  the remote command running.
- Dead connections: paramiko keepalives keep data flowing and TCP_USER_TIMEOUT
  makes the kernel give up on a peer that stopped acknowledging it, so a
  build on a vanished host ends in `Disconnected` instead of a hang.
- The buildroot repo reaches the host through a reverse port forward on the
  same connection: no repo server has to be exposed to the network.
"""
from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import tempfile
import threading
import time
from typing import Sequence

import paramiko

from backends.base import BackendError, Completed, Disconnected, Progress
from backends import hostkeys, sshforward
from backends.sshprocess import SshProcess, dropped as _dropped
from backends.transport_local import KILL_GRACE, TERM_GRACE, check_argv

_MARKER = re.compile(rb"SLUICE-PGID (\d+)\n")
SESSION_WAIT = 600.0  # seconds a command waits for a free SSH session
OUTPUT_GRACE = 2.0  # seconds output may trail the exit status (a child left holding it open)
_WRAP = 'printf "SLUICE-PGID %s\\n" "$$"{redirect}; exec "$@"'
# Ends group $1: TERM, up to $2 polls (0.1 s + a /proc scan each), KILL, up
# to $3 polls. A group lives while a non-zombie process has it as its pgrp.
_END_GROUP = """\
alive() { cat /proc/[0-9]*/stat 2>/dev/null |
  awk -v g="$1" '{ sub(/^.*\\) /, ""); if ($3 == g && $1 != "Z") f = 1 } END { exit !f }'; }
n=$2
for sig in TERM KILL; do
  kill -s "$sig" -- "-$1" 2>/dev/null || { alive "$1" && exit 2; exit 0; }
  i=0; while alive "$1"; do i=$((i + 1)); [ "$i" -gt "$n" ] && break; sleep 0.1; done
  alive "$1" || exit 0
  n=$3
done
exit 1
"""


class SshTransport:
    """A builder host over SSH; see `backends.base.Transport`.

    Thread-safe: a runner may run several builds on one host at once; they
    share the connection, each on its own channel."""

    def __init__(self, host: str, port: int, user: str, key: str, known_hosts: str, *,
                 connect_timeout: float = 10, keepalive: int = 5, max_sessions: int = 10) -> None:
        self.host, self.port, self.user = host, port, user
        self.key, self.known_hosts = str(key), str(known_hosts)
        self.connect_timeout, self.keepalive = connect_timeout, keepalive
        self._lock = threading.RLock()  # guards the connection; held briefly
        self._sftp_lock = threading.Lock()  # one transfer at a time on the shared SFTP session
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._forwards: dict[int, int] = {}
        # sshd's MaxSessions bounds the sessions of one connection; one is the
        # SFTP session, the rest are commands and builds, which wait their turn
        # rather than being refused.
        self._sessions = threading.BoundedSemaphore(max(1, max_sessions - 1))
        self._closed = False

    @property
    def address(self) -> str:
        """The host as OpenSSH's known_hosts names it: `[host]:port` unless port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    # ------------------------------------------------------------ commands

    def run(self, argv: Sequence[str], timeout: float = 60.0) -> Completed:
        """Run to the end; a command still running after `timeout` has its
        process group killed and raises BackendError."""
        return self._run(argv, timeout, stop=True)

    def _run(self, argv: Sequence[str], timeout: float, *, stop: bool) -> Completed:
        channel = self._exec(argv, combine=False)
        try:
            return self._collect(channel, argv, timeout, stop)
        finally:
            self._sessions.release()

    def _collect(self, channel: paramiko.Channel, argv: Sequence[str], timeout: float, stop: bool) -> Completed:
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        ended: float | None = None  # when the exit status came
        while True:
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            if channel.status_event.is_set() and not (channel.recv_ready() or channel.recv_stderr_ready()):
                # sshd may send the exit status before the last of the output (seen: a missing
                # command's "not found" lost): wait for the channel's EOF, or a moment when a
                # child the command left behind keeps its output open
                ended = ended or time.monotonic()
                if channel.eof_received or time.monotonic() - ended > OUTPUT_GRACE:
                    break
            left = deadline - time.monotonic()
            if left <= 0:
                channel.close()
                found = _MARKER.search(err)
                if found and stop:
                    self.end_group(int(found.group(1)))
                raise BackendError(f"{argv[0]} did not finish within {timeout:g} s on {self.host} and was stopped",
                                   "raise the timeout or look at why the command hangs on the host",
                                   command=argv, output=(out + err).decode(errors="replace"))
            sshforward.readable([channel], min(left, 0.5))
        channel.close()
        if _dropped(channel):
            raise self._lost(argv)
        return Completed(channel.exit_status, bytes(out), _MARKER.sub(b"", bytes(err), count=1))

    def start(self, argv: Sequence[str]) -> SshProcess:
        """Start a build; returns once the host reported its process group."""
        channel = self._exec(argv, combine=True)
        try:
            return self._started(channel, argv)
        except BaseException:
            self._sessions.release()
            raise

    def _started(self, channel: paramiko.Channel, argv: Sequence[str]) -> SshProcess:
        seen = b""
        deadline = time.monotonic() + self.connect_timeout
        while not (found := _MARKER.search(seen)):
            channel.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = channel.recv(65536)
            except socket.timeout:
                chunk = b""
            if not chunk:
                channel.close()
                if _dropped(channel):
                    raise self._lost(argv)
                raise BackendError(f"{argv[0]} did not start on {self.host}",
                                   "check that the builder's login shell is POSIX and /bin/sh exists there",
                                   command=argv, output=seen.decode(errors="replace"))
            seen += chunk
        return SshProcess(self, channel, int(found.group(1)), seen[:found.start()] + seen[found.end():], argv)

    def end_group(self, pgid: int) -> None:
        """TERM, then KILL, process group `pgid` on the host; within ~5 s."""
        polls = [str(int(grace / 0.11)) for grace in (TERM_GRACE, KILL_GRACE)]
        command = ["sh", "-c", _END_GROUP, "sh", str(pgid), *polls]
        result = self._run(command, TERM_GRACE + KILL_GRACE + 0.5, stop=False)
        if result.status == 2:
            raise BackendError(f"not permitted to end process group {pgid} on {self.host}",
                               "a build that runs as another user (mock via consolehelper runs as root) "
                               "must be ended by that user; look at it: pgrep -a -g " + str(pgid),
                               command=command, status=result.status)
        if result.status != 0:
            raise BackendError(f"processes of group {pgid} on {self.host} survived SIGKILL",
                               f"they are stuck in the kernel; look at them on the host: pgrep -a -g {pgid}",
                               command=command, status=result.status, output=result.stderr.decode(errors="replace"))

    def _exec(self, argv: Sequence[str], *, combine: bool) -> paramiko.Channel:
        """A channel running `argv`, holding one session (the caller releases it)."""
        check_argv(argv)
        if not self._sessions.acquire(timeout=SESSION_WAIT):
            raise BackendError(f"no SSH session of {self.host} became free within {SESSION_WAIT:g} s",
                               "lower the builder's slots, or raise MaxSessions and max_sessions")
        try:
            return self._open_channel(argv, combine)
        except BaseException:
            self._sessions.release()
            raise

    def _open_channel(self, argv: Sequence[str], combine: bool) -> paramiko.Channel:
        wrap = _WRAP.format(redirect="" if combine else " >&2")
        command = shlex.join(["exec", "sh", "-c", wrap, "sh", *argv])
        for attempt in (1, 2):
            transport = self._transport()
            try:
                channel = transport.open_session(timeout=self.connect_timeout)
                channel.set_combine_stderr(combine)
                channel.exec_command(command)
                channel.shutdown_write()  # a build reads no input: give it EOF
                return channel
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if transport.is_active():  # the connection is fine: sshd said no to one more session
                    raise BackendError(f"{self.host} refused another SSH session ({exc or 'no reason given'})",
                                       "sshd's MaxSessions (10 by default) bounds a connection's sessions: "
                                       "lower the builder's slots or raise MaxSessions and max_sessions",
                                       command=argv) from exc
                if attempt == 2:
                    raise self._lost(argv, exc) from exc
                self._drop()
        raise AssertionError("unreachable")

    # --------------------------------------------------------------- files

    def put(self, local: str, remote: str, progress: Progress | None = None) -> None:
        """Upload to a temporary name beside `remote`, renamed when whole."""
        temp = f"{os.path.dirname(remote) or '.'}/.{os.path.basename(remote)}.{secrets.token_hex(4)}.part"
        with self._sftp_lock:
            sftp = self._sftp_session()
            try:
                sftp.put(local, temp, callback=progress, confirm=True)
                sftp.posix_rename(temp, remote)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                _quietly(sftp.remove, temp)
                raise self._file_error("upload", local, f"{self.host}:{remote}", exc) from exc

    def get(self, remote: str, local: str, progress: Progress | None = None) -> None:
        """Download to a temporary file beside `local`, renamed when whole."""
        directory = os.path.dirname(os.path.abspath(local))
        try:
            fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(local)}.", suffix=".part")
        except OSError as exc:
            raise BackendError(f"cannot write into {directory}: {exc.strerror}",
                               "check that the folder exists and is writable") from exc
        os.close(fd)
        try:
            with self._sftp_lock:
                try:
                    self._sftp_session().get(remote, temp, callback=progress)
                except (OSError, paramiko.SSHException, EOFError) as exc:
                    raise self._file_error("download", f"{self.host}:{remote}", local, exc) from exc
            os.chmod(temp, 0o644)
            os.replace(temp, local)
        finally:
            _quietly(os.unlink, temp)

    def _sftp_session(self) -> paramiko.SFTPClient:
        transport = self._transport()
        channel = self._sftp.get_channel() if self._sftp else None
        if channel is None or channel.closed or channel.get_transport() is not transport:
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if not transport.is_active():
                    raise self._lost(["sftp"], exc) from exc
                raise BackendError(f"{self.host} refused an SFTP session ({exc})",
                                   "enable the SFTP subsystem in the host's sshd_config "
                                   "(`Subsystem sftp internal-sftp`)") from exc
        assert self._sftp is not None
        return self._sftp

    def _file_error(self, what: str, source: str, target: str, exc: BaseException) -> BackendError:
        if not self._alive():
            return self._lost(["sftp", what, source], exc)
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return BackendError(f"cannot {what} {source} to {target}: {reason}",
                            "check that the file exists and the target folder exists and is writable")

    # ------------------------------------------------------------- forward

    def forward(self, local_port: int) -> int:
        """Ask the host's sshd to listen on 127.0.0.1:<port> there and carry
        each connection back here to 127.0.0.1:`local_port`. A forward lives
        as long as its connection: call this again for each build."""
        with self._lock:
            transport = self._transport()
            if local_port in self._forwards:
                return self._forwards[local_port]

            try:
                remote = transport.request_port_forward("127.0.0.1", 0, sshforward.handler(local_port))
            except paramiko.SSHException as exc:
                if not transport.is_active():
                    raise self._lost(["forward", str(local_port)], exc) from exc
                raise BackendError(f"{self.host} refused to forward a port back to this machine ({exc})",
                                   "set `AllowTcpForwarding remote` (or yes) in the host's sshd_config "
                                   "for this user, or sync the buildroot repo to the host instead") from exc
            self._forwards[local_port] = remote
            return remote

    # ---------------------------------------------------------- connection

    def close(self) -> None:
        """Close for good: a closed transport never reconnects on its own
        (a worker still holding it gets Disconnected, not a new connection
        the runner does not know about)."""
        with self._lock:
            self._closed = True
            self._drop()

    def _alive(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _transport(self) -> paramiko.Transport:
        """The live connection, opened now if there is none or it dropped."""
        with self._lock:
            if self._closed:
                raise Disconnected(f"the connection to {self.host}:{self.port} was closed",
                                   "the runner reconnects on its own")
            if not self._alive():
                self._drop()
                self._client = self._connect()
            transport = self._client.get_transport()  # type: ignore[union-attr]
            assert transport is not None
            return transport

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client, self._sftp = None, None
        self._forwards.clear()

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        revoked = hostkeys.load(client, self.known_hosts)
        client.set_missing_host_key_policy(hostkeys.Refuse(revoked))
        try:
            pkey = paramiko.PKey.from_path(self.key)
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise Disconnected(f"cannot load the SSH key {self.key} for {self.host}: {exc}",
                               "give the builder a readable private key without a passphrase") from exc
        sock = self._socket()
        try:
            client.connect(self.host, self.port, username=self.user, pkey=pkey, sock=sock,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, allow_agent=False, look_for_keys=False)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            sock.close()
            raise self._refusal(exc) from exc
        except BaseException:
            client.close()
            sock.close()
            raise
        client.get_transport().set_keepalive(self.keepalive)  # type: ignore[union-attr]
        return client

    def _socket(self) -> socket.socket:
        where = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except ConnectionRefusedError as exc:
            raise Disconnected(f"nothing listens for SSH on {where} (connection refused)",
                               "check that sshd runs on the builder and that its port is right in the config") from exc
        except TimeoutError as exc:
            raise Disconnected(f"{where} did not answer within {self.connect_timeout:g} s",
                               "check that the builder is up and reachable from here") from exc
        except OSError as exc:
            raise Disconnected(f"cannot reach {where}: {exc.strerror or exc}",
                               "check the host name and the network") from exc
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        # Commands are small request/response exchanges: without this, delayed
        # ACKs add ~40 ms to every round trip.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux: give up on unacknowledged data
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000 * max(30, 6 * self.keepalive))
        return sock

    def _refusal(self, exc: Exception) -> BackendError:
        return hostkeys.refusal(exc, self.user, self.host, self.port, self.address, self.key, self.known_hosts)

    def _lost(self, argv: Sequence[str], exc: BaseException | None = None) -> Disconnected:
        detail = f" ({exc})" if exc and str(exc) else ""
        return Disconnected(f"the connection to {self.host}:{self.port} dropped{detail}",
                            "the task can be retried on this or another builder", command=argv)


def _quietly(action, path: str) -> None:
    try:
        action(path)
    except (OSError, paramiko.SSHException, EOFError):
        pass
