"""Builder transports on real parts: `local` on this machine, `ssh` through a
real OpenSSH server on 127.0.0.2 (and .3), with paramiko unmocked.

The sshd runs on this machine, so what a command did "on the host" is seen
straight in /proc: which processes are left, which files appeared. Every
process a test starts carries a unique token in its command line, because
other tests (and other people's test runs) share this machine.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import secrets
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from backends.base import BackendError, Disconnected, HostKeyRefused
from backends.transport_local import TERM_GRACE, LocalTransport
from backends.transport_ssh import SshTransport
from tests.sshd import SshHost, _free_port


def connect(host: SshHost, **options) -> SshTransport:
    return SshTransport(host.host, host.port, host.user, str(host.key), str(host.known_hosts), **options)


@pytest.fixture
def builder(ssh_server):
    """A builder host: a real sshd on 127.0.0.2 that allows reverse forwards."""
    return ssh_server("127.0.0.2", forwarding="remote")


@pytest.fixture(params=["local", "ssh"])
def transport(request):
    made = LocalTransport() if request.param == "local" else connect(request.getfixturevalue("builder").host)
    yield made
    made.close()


def token() -> str:
    """A unique `sleep` argument: finds this test's processes and only them."""
    return f"{300 + secrets.randbelow(600)}.{secrets.randbelow(10**6):06d}"


def processes(mark: str) -> dict[int, int]:
    """pid -> process group of every running (non-zombie) process whose
    command line contains `mark`."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if mark.encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X"):
            found[int(proc.name)] = int(fields[2])
    return found


def eventually(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


def read_all(process, until: bytes | None = None, timeout: float = 10.0) -> bytes:
    """Read until `until` shows up, or to the end of the stream."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = process.read(0.2)
        if chunk == b"":
            return seen
        seen += chunk or b""
        if until is not None and until in seen:
            return seen
    raise AssertionError(f"no {until!r} within {timeout} s; got {seen!r}")


# ------------------------------------------------------------ both transports

def test_arguments_arrive_literally_and_nothing_is_executed(transport, tmp_path):
    canary, tilde = tmp_path / "touched", tmp_path / "tilde"
    nasty = [f"$(touch {canary}); rm -rf ~/{tilde.name} 'a\"b", f"`touch {canary}`", "*", "", " two  spaces ",
             "line\nbreak", "semi;colon && echo no", "$HOME", "back\\slash", "-n"]
    result = transport.run(["printf", "%s\\0", *nasty])
    assert result.status == 0, result.stderr
    assert result.stdout.split(b"\0")[:-1] == [arg.encode() for arg in nasty]
    assert result.stderr == b""
    assert not canary.exists()


def test_run_keeps_stdout_stderr_and_the_exit_status(transport):
    result = transport.run(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (result.status, result.stdout, result.stderr) == (7, b"out\n", b"err\n")


def test_a_missing_command_is_status_127_like_in_a_shell(transport):
    result = transport.run(["sluice-no-such-command", "x"])
    assert result.status == 127
    assert b"sluice-no-such-command" in result.stderr


def test_a_run_that_hangs_is_stopped_at_its_timeout(transport):
    mark = token()
    started = time.monotonic()
    with pytest.raises(BackendError, match="did not finish within 1 s"):
        transport.run(["sh", "-c", f"sleep {mark} & exec sleep {mark}"], timeout=1)
    assert time.monotonic() - started < 6
    assert processes(mark) == {}


def test_a_build_streams_merged_output_and_ends_with_its_status(transport, tmp_path):
    gate = tmp_path / "gate"
    script = f'echo one; echo warn >&2; while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; echo two; exit 3'
    process = transport.start(["sh", "-c", script])
    first = read_all(process, until=b"warn\n")
    assert first == b"one\nwarn\n"  # stderr arrives in the same stream, and the pgid marker does not
    assert process.read(0.2) is None  # nothing more yet: it waits for the gate
    assert process.wait(timeout=0) is None
    gate.touch()
    assert read_all(process) == b"two\n"
    assert process.read(0.1) == b""
    assert process.wait(timeout=10) == 3


def test_kill_ends_the_whole_process_group(transport):
    mark = token()
    process = transport.start(["sh", "-c", f"sleep {mark} & sleep {mark}; wait"])
    running = eventually(lambda: len(processes(mark)) == 3 and processes(mark))
    assert running, "the build and its children did not start"
    assert set(running.values()) == {process.pgid}  # the marker named the real group
    started = time.monotonic()
    process.kill()
    assert time.monotonic() - started < 5
    assert processes(mark) == {}
    assert process.wait(timeout=5) < 0  # ended by a signal


def test_kill_falls_back_to_sigkill_when_term_is_ignored(transport):
    mark = token()
    process = transport.start(["sh", "-c", f'trap "" TERM; sleep {mark} & sleep {mark}; wait'])
    assert eventually(lambda: len(processes(mark)) == 3)
    started = time.monotonic()
    process.kill()
    took = time.monotonic() - started
    assert TERM_GRACE - 0.5 < took < 5  # TERM was tried and waited for, then KILL
    assert processes(mark) == {}


@pytest.fixture
def folder(tmp_path):
    """An empty folder of this test's own (tmp_path also holds the test's HOME)."""
    made = tmp_path / "files"
    made.mkdir()
    return made


def test_files_go_and_come_back_whole_with_progress(transport, folder):
    tmp_path = folder
    payload = os.urandom(5 * 1024 * 1024 + 123)
    source, there, back = tmp_path / "a.rpm", tmp_path / "there" / "a.rpm", tmp_path / "back.rpm"
    source.write_bytes(payload)
    there.parent.mkdir()
    calls: list[tuple[int, int]] = []
    transport.put(str(source), str(there), lambda done, total: calls.append((done, total)))
    assert there.read_bytes() == payload
    assert len(calls) >= 2 and calls[-1] == (len(payload), len(payload))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    calls.clear()
    transport.get(str(there), str(back), lambda done, total: calls.append((done, total)))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert len(calls) >= 2 and calls[-1] == (len(payload), len(payload))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.rpm", "back.rpm", "there"]  # no temp files
    assert os.listdir(there.parent) == ["a.rpm"]


def test_a_failed_download_leaves_no_file_behind(transport, folder):
    tmp_path = folder
    target = tmp_path / "result.rpm"
    with pytest.raises(BackendError, match="missing.rpm"):
        transport.get(str(tmp_path / "missing.rpm"), str(target))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def web(tmp_path):
    """A local HTTP server, as the buildroot repo is served: (port, folder)."""
    folder = tmp_path / "repo"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], folder
    server.shutdown()
    server.server_close()


FETCH = "import sys, urllib.request as u; [sys.stdout.buffer.write(u.urlopen(url).read()) for url in sys.argv[1:]]"


def test_forward_lets_the_host_reach_a_local_server(transport, web):
    port, folder = web
    (folder / "repomd.xml").write_bytes(b"<repomd/>\n")
    (folder / "big.rpm").write_bytes(big := os.urandom(1 << 20))
    there = transport.forward(port)
    assert transport.forward(port) == there  # one forward per local port and connection
    urls = [f"http://127.0.0.1:{there}/{name}" for name in ("repomd.xml", "big.rpm", "repomd.xml")]
    result = transport.run(["python3", "-c", FETCH, *urls], timeout=30)
    assert result.status == 0, result.stderr
    assert result.stdout == b"<repomd/>\n" + big + b"<repomd/>\n"
    if isinstance(transport, SshTransport):
        assert there != port  # the host reached the server through sshd's listener, not directly


# ------------------------------------------------------------------ ssh only

def test_one_connection_serves_every_call(builder, tmp_path):
    transport = connect(builder.host)
    (tmp_path / "f").write_bytes(b"x")
    try:
        transport.run(["true"])
        transport.put(str(tmp_path / "f"), str(tmp_path / "g"))
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(transport.run(["true"]).status))
                   for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        process = transport.start(["true"])
        assert process.wait(10) == 0
        transport.get(str(tmp_path / "g"), str(tmp_path / "h"))
    finally:
        transport.close()
    # a dropped connection here has been seen once under a loaded full run: say what sshd said
    assert results == [0] * 6, builder.host.log.read_text(errors="replace")[-3000:]
    assert builder.host.logins() == 1


def fingerprint(host: SshHost) -> str:
    """The host key's fingerprint as OpenSSH prints it, from OpenSSH itself."""
    public = host.known_hosts.parent / "host_ed25519.pub"
    return subprocess.run(["ssh-keygen", "-lf", str(public)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def test_an_unknown_host_key_is_refused_with_its_fingerprint(builder, tmp_path):
    host = builder.host
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(HostKeyRefused) as refused:
        connect(host.trusting(known)).run(["true"])
    message = str(refused.value)
    assert f"[{host.host}]:{host.port}" in message and str(known) in message
    assert f"ssh-ed25519 {fingerprint(host)}" in message and fingerprint(host).startswith("SHA256:")
    assert known.read_text() == ""  # never learned on the fly
    assert host.logins() == 0
    # The hint's command, run as given (after comparing the fingerprint), adds exactly that key.
    command = refused.value.hint.split("you compared): ", 1)[1]
    subprocess.run(command + " 2>/dev/null", shell=True, check=True)
    transport = connect(host.trusting(known))
    assert transport.run(["true"]).status == 0
    transport.close()


def test_a_key_listed_without_the_port_does_not_vouch_for_another_port(builder, tmp_path):
    host = builder.host
    key = " ".join((host.known_hosts.parent / "host_ed25519.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"{host.host} {key}\n")  # port 22 only, as OpenSSH reads it
    with pytest.raises(HostKeyRefused, match="is not in"):
        connect(host.trusting(known)).run(["true"])


def test_a_changed_host_key_is_refused_as_a_possible_attack(builder, ssh_server, tmp_path):
    host, other = builder.host, ssh_server("127.0.0.3").host  # another builder, its own host key
    other_key = " ".join((other.known_hosts.parent / "host_ed25519.pub").read_text().split()[:2])
    known = tmp_path / "known_hosts"
    known.write_text(f"[{host.host}]:{host.port} {other_key}\n")
    with pytest.raises(HostKeyRefused) as refused:
        connect(host.trusting(known)).run(["true"])
    message = str(refused.value)
    assert "man-in-the-middle" in message and str(known) in message
    assert fingerprint(other) in message and fingerprint(host) in message
    assert host.logins() == 0
    # Each builder is trusted through its own entry only.
    for each in (host, other):
        transport = connect(each)
        assert transport.run(["true"]).status == 0
        transport.close()


def test_a_host_that_is_down_is_disconnected_at_once(builder):
    host = builder.host
    down = SshTransport(host.host, _free_port(host.host), host.user, str(host.key), str(host.known_hosts))
    started = time.monotonic()
    with pytest.raises(Disconnected, match="connection refused") as dropped:
        down.run(["true"])
    assert time.monotonic() - started < 2
    assert "sshd runs on the builder" in dropped.value.hint


def test_a_server_that_never_speaks_times_out(builder):
    with socket.create_server(("127.0.0.2", 0)) as silent:  # accepts in the kernel, never answers
        host = builder.host
        mute = SshTransport(host.host, silent.getsockname()[1], host.user, str(host.key), str(host.known_hosts),
                            connect_timeout=1)
        started = time.monotonic()
        with pytest.raises(Disconnected, match="handshake"):
            mute.run(["true"])
        assert time.monotonic() - started < 4


def test_a_key_the_host_does_not_accept_is_disconnected(builder, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host = builder.host
    stranger = SshTransport(host.host, host.port, host.user, str(key), str(host.known_hosts))
    with pytest.raises(Disconnected, match="did not accept the key") as refused:
        stranger.run(["true"])
    assert f"{key}.pub" in refused.value.hint


def test_a_connection_dropped_mid_build_raises_then_reconnects(builder):
    mark = token()
    transport = connect(builder.host)
    try:
        process = transport.start(["sleep", mark])
        assert eventually(lambda: processes(mark))
        assert builder.drop_connections() >= 1
        started = time.monotonic()
        with pytest.raises(Disconnected, match="dropped"):
            process.wait(timeout=30)
        with pytest.raises(Disconnected):
            read_all(process)
        assert time.monotonic() - started < 5
        assert processes(mark)  # the orphaned build still runs on the host...
        assert transport.run(["true"]).status == 0  # ...a new connection is opened on demand...
        assert builder.host.logins() == 2
        process.kill()  # ...and cancel reaches the orphan through it
        assert processes(mark) == {}
    finally:
        transport.close()
        for pid in processes(mark):
            os.kill(pid, 9)


def test_forward_explains_a_host_that_forbids_it(ssh_server):
    transport = connect(ssh_server("127.0.0.3", forwarding="no").host)
    try:
        with pytest.raises(BackendError, match="refused to forward") as refused:
            transport.forward(8080)
        assert "AllowTcpForwarding" in refused.value.hint
        assert transport.run(["true"]).status == 0  # the connection survives the refusal
    finally:
        transport.close()


def test_commands_wait_for_a_free_session_instead_of_failing(ssh_server):
    """sshd's MaxSessions 3: one session is SFTP's, so two commands run at
    once and the others wait their turn; none is refused or taken for a
    dropped connection."""
    host = ssh_server("127.0.0.2", max_sessions=3).host
    ssh = connect(host, max_sessions=3)
    try:
        results: list = []

        def one() -> None:
            results.append(ssh.run(["sh", "-c", "sleep 0.5; echo done"]).stdout)
        threads = [threading.Thread(target=one) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert results == [b"done\n"] * 5
    finally:
        ssh.close()


def test_a_closed_transport_never_reconnects_on_its_own(builder):
    ssh = connect(builder.host)
    assert ssh.run(["true"]).status == 0
    ssh.close()
    with pytest.raises(Disconnected):
        ssh.run(["true"])
