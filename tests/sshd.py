"""A real OpenSSH server for tests: one `sshd` per host, on 127.0.0.x.

sluice reaches hubs with the real `ssh` and `git`, and builder hosts with
paramiko, so its tests talk to a real sshd rather than a double: host-key
checking, key login, SFTP, reverse port forwards and git's transport over
ssh are exactly what users get. Builder tests start several servers (e.g.
127.0.0.2 and 127.0.0.3), each with its own keys, and can cut a server's
connections (`SshServer.drop_connections`) as a crash would.

Each server lives in its own directory with its own host key, client key,
authorized_keys and known_hosts, listens on a free port of its address and
runs in the foreground (`sshd -D -e`) so the test owns the process. The
client side is a `GIT_SSH_COMMAND` that reads no ssh config (`-F /dev/null`:
ssh finds ~/.ssh through the password database, not $HOME, so the test's
isolated HOME would not hide root's own config), offers only the test key and
verifies the host key strictly against the fixture's known_hosts, never
adding one. conftest loads this module as a plugin, so tests just ask for
the `ssh_host` fixture.
"""
from __future__ import annotations

import os
import pwd
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import pytest

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
_START_ATTEMPTS = 5  # another process may take the port between our probe and sshd's bind
_START_TIMEOUT = 10.0

_CONFIG = """\
ListenAddress {address}:{port}
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
AllowUsers {user}
# Key files live under /tmp, which StrictModes would reject.
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
PermitUserEnvironment no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
# Builders receive SRPMs and return results over SFTP.
Subsystem sftp internal-sftp
# Builder hosts carry the buildroot repo back over a reverse forward.
AllowTcpForwarding {forwarding}
# The session ignores the login user's environment: git reads no system or
# global config, and SHLVL=1 makes bash (which counts itself level 2) skip
# the ~/.bashrc it would otherwise source for sshd (~125 ms for root here).
SetEnv SHLVL=1 GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null{path}
"""


@dataclass(frozen=True)
class SshHost:
    """How a client reaches one test sshd: everything `ssh` or git needs."""

    host: str
    port: int
    user: str
    key: Path  # the client's private key, authorized on this host
    known_hosts: Path  # holds this host's own key for [host]:port
    log: Path  # sshd's own log (-e), to see what the server did

    @property
    def ssh_command(self) -> str:
        """For GIT_SSH_COMMAND: strict host-key checking, no prompts, this key only."""
        return shlex.join([
            "ssh", "-F", "/dev/null", "-i", str(self.key),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        ])

    def env(self) -> dict[str, str]:
        return {"GIT_SSH_COMMAND": self.ssh_command}

    def url(self, path: str | os.PathLike) -> str:
        """An ssh:// URL for an absolute path on this host."""
        return f"ssh://{self.user}@{self.host}:{self.port}{Path(path).resolve()}"

    def argv(self, *command: str) -> list[str]:
        """Run `command` on this host: `subprocess.run(host.argv("ls", "-l", path))`.
        ssh joins its arguments into one line for the remote shell, so they
        are quoted here to arrive as the same argv."""
        return [*shlex.split(self.ssh_command), "-p", str(self.port), f"{self.user}@{self.host}",
                "--", shlex.join(command)]

    def trusting(self, known_hosts: Path) -> "SshHost":
        """The same host, as seen by a client with another known_hosts file."""
        return replace(self, known_hosts=known_hosts)

    def logins(self) -> int:
        """How many key logins the server has accepted so far."""
        return self.log.read_text(errors="replace").count("Accepted publickey for ")


class SshServer:
    """One running sshd; `stop()` ends it and every session it started."""

    def __init__(self, host: SshHost, process: subprocess.Popen) -> None:
        self.host, self.process = host, process

    def drop_connections(self) -> int:
        """Kill the sshd processes that serve connections (as a crash or a
        reboot would), leaving the listener up and the commands they started
        running, orphaned. Returns how many sshd processes it killed."""
        serving = [pid for pid in _descendants(self.process.pid) if _command_name(pid) in ("sshd", "sshd-session")]
        for pid in serving:
            _signal(pid, signal.SIGKILL)
        return len(serving)

    def kill(self) -> int:
        """SIGKILL the daemon itself and every sshd process serving a
        connection (a crashed or OOM-killed sshd): the host refuses new
        connections from then on, and the commands its sessions started run
        on, orphaned. Returns how many sshd processes it killed."""
        serving = [pid for pid in _descendants(self.process.pid) if _command_name(pid) in ("sshd", "sshd-session")]
        for pid in [self.process.pid, *serving]:
            _signal(pid, signal.SIGKILL)
        self.process.wait()
        return 1 + len(serving)

    def stop(self) -> None:
        # Each connection is a child that detaches (setsid) from the listener,
        # and killing the listener leaves it running: end the whole tree.
        if self.process.poll() is not None:
            # Already ended (kill()) and reaped: its pid may be another
            # process's by now (pid_max is 32768 here and the suite wraps it),
            # whose tree must not be touched; its sessions were killed with it.
            return
        for pid in [*_descendants(self.process.pid), self.process.pid]:
            _signal(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sshd(directory: Path, address: str = "127.0.0.1", *, forwarding: str = "no",
               path: str | None = None, max_sessions: int | None = None) -> SshServer:
    """Start sshd on a free port of `address`, with fresh keys in `directory`.
    `forwarding` is sshd's AllowTcpForwarding: builder hosts need "remote"
    for the reverse forward that carries the buildroot repo; hubs need none.
    `path` is the sessions' PATH (builder hosts put the mock double first)."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} is missing (install openssh-server)")
    _ensure_privsep_dir()
    user = pwd.getpwuid(os.getuid()).pw_name
    _keygen(directory / "host_ed25519")
    _keygen(directory / "client_ed25519")
    (directory / "authorized_keys").write_bytes((directory / "client_ed25519.pub").read_bytes())
    host_key = " ".join((directory / "host_ed25519.pub").read_text().split()[:2])
    log = directory / "sshd.log"
    for _ in range(_START_ATTEMPTS):
        port = _free_port(address)
        config = directory / "sshd_config"
        config.write_text(_CONFIG.format(address=address, port=port, dir=directory, user=user,
                                         forwarding=forwarding, path=f" PATH={path}" if path else "")
                          + (f"MaxSessions {max_sessions}\n" if max_sessions else ""))
        with open(log, "ab") as out:
            process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if _accepts(process, address, port):
            known = directory / "known_hosts"
            known.write_text(f"[{address}]:{port} {host_key}\n")
            return SshServer(SshHost(address, port, user, directory / "client_ed25519", known, log), process)
        process.kill()
        process.wait()
    raise RuntimeError(f"sshd did not start on {address} after {_START_ATTEMPTS} tries; its log:\n"
                       f"{log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def ssh_server(tmp_path_factory) -> Iterator[Callable[..., SshServer]]:
    """ssh_server(address="127.0.0.1", forwarding="no", path=None) -> SshServer: a real
    sshd for this test, one per call (builder tests start several, e.g. on
    127.0.0.2 and 127.0.0.3, each with its own keys), all stopped at teardown."""
    servers: list[SshServer] = []

    def start(address: str = "127.0.0.1", **options) -> SshServer:
        servers.append(start_sshd(tmp_path_factory.mktemp(f"sshd-{address}"), address, **options))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def ssh_host(ssh_server) -> Callable[..., SshHost]:
    """ssh_host(address="127.0.0.1", forwarding="no") -> SshHost: how to
    reach a fresh sshd (see `ssh_server`)."""
    return lambda address="127.0.0.1", **options: ssh_server(address, **options).host


def _ensure_privsep_dir() -> None:
    """sshd wants its privilege-separation directory only when run as root."""
    if os.geteuid() != 0:
        return
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        pytest.skip(f"sshd needs {PRIVSEP_DIR}, which cannot be created here: {exc.strerror}")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                   check=True, capture_output=True)


def _free_port(address: str) -> int:
    """A port free right now (sshd cannot bind port 0 and report it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def _accepts(process: subprocess.Popen, address: str, port: int) -> bool:
    """Wait until sshd listens; False when it exited (the port was taken)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return process.poll() is None
        except OSError:
            time.sleep(0.01)
    return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
