"""The runner with SSH builders: two real sshd hosts, mock (the test double).

Host 127.0.0.2 builds x86_64 and 127.0.0.3 aarch64 (rpmbuild labels a
cross-arch build of these arch-independent test packages honestly), each
with its own host key, authorized_keys and known_hosts. `mock` on their PATH
is tests/doubles/mock: a real `rpmbuild --rebuild` without a chroot, since
mock cannot run on Debian. The buildroot repo reaches them through the
reverse port forward of the runner's own SSH connection.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import BOB, ROOT
from tests.test_runner import queue, run_once, show, submit  # noqa: F401  (the queue fixture)

SLUICE = str(Path(sys.executable).parent / "sluice")


@dataclass
class Farm:
    servers: dict
    config: Path
    work: Path
    arches: dict = field(default_factory=dict)  # builder name -> arch, to override

    def write(self, **known_hosts: Path) -> None:
        """The config with builders b2 (x86_64) and b3 (aarch64)."""
        blocks = []
        for name, arch in (("b2", "x86_64"), ("b3", "aarch64")):
            host = self.servers[name].host
            blocks.append(f'[[builder]]\nname = "{name}"\nhost = "{host.host}"\nport = {host.port}\n'
                          f'user = "{host.user}"\nkey = "{host.key}"\n'
                          f'known_hosts = "{known_hosts.get(name, host.known_hosts)}"\n'
                          f'arches = ["{self.arches.get(name, arch)}"]\ntool = "mock"\n'
                          f'workdir = "{self.work / name}"\n')
        self.config.write_text("\n".join(blocks))


@pytest.fixture
def farm(queue, ssh_server, isolated, tmp_path):  # noqa: F811
    path = f"{ROOT}/tests/doubles:/usr/bin:/bin"
    servers = {"b2": ssh_server("127.0.0.2", forwarding="remote", path=path),
               "b3": ssh_server("127.0.0.3", forwarding="remote", path=path)}
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True)
    found = Farm(servers, config, tmp_path / "hosts")
    found.write()
    result = queue("target", "add", "multi", "--arch", "x86_64", "--arch", "aarch64",
                   "--mock-config", "x86_64=fedora-41-x86_64", "--mock-config", "aarch64=fedora-41-aarch64")
    assert result.code == 0, result.err
    return found


def background(sluice_repo: str) -> subprocess.Popen:
    return subprocess.Popen([SLUICE, "--repo", sluice_repo, "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(check, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def stop(runner: subprocess.Popen) -> str:
    runner.terminate()
    _, err = runner.communicate(timeout=60)
    return err


def test_each_arch_builds_on_its_own_host_and_results_come_back_verified(queue, farm, make_srpm):
    build = submit(queue, make_srpm("remote", "1.0", "1"), "--target", "multi")
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "built", [e["reason"] for e in shown["events"]]
    hosts = {t["arch"]: (t["host"], t["attempts"][0]["builder"]) for t in shown["tasks"]}
    assert hosts == {"x86_64": ("127.0.0.2", "b2"), "aarch64": ("127.0.0.3", "b3")}
    names = sorted(a["name"] for a in shown["artifacts"])
    assert names == ["remote-1.0-1.aarch64.rpm", "remote-1.0-1.src.rpm", "remote-1.0-1.x86_64.rpm"]
    assert "TEST DOUBLE" in queue("log", build[:7], "--arch", "aarch64").out
    assert "fedora-41-aarch64" in queue("log", build[:7], "--arch", "aarch64").out
    assert not any((farm.work / "b2").iterdir())  # a built task leaves nothing on the host


def test_buildrequires_reach_remote_hosts_through_the_reverse_forward(queue, farm, make_srpm):
    lib = submit(queue, make_srpm("libremote", "2.0", "1"), "--target", "multi")
    app = submit(queue, make_srpm("remoteapp", "1.0", "1", "BuildRequires: libremote >= 2.0"),
                 "--target", "multi", "--after", lib[:7])
    run_once(queue)
    shown = show(queue, app)
    assert shown["state"] == "built", [e["reason"] for e in shown["events"]]
    root_log = queue("log", app[:7], "--arch", "aarch64", "--file", "root.log").out
    assert "libremote" in root_log and "http://127.0.0.1:" in root_log


def test_an_unknown_host_key_is_refused_and_the_other_host_keeps_working(queue, farm, make_srpm, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    farm.write(b3=empty)
    build = submit(queue, make_srpm("keyless", "1.0", "1"), "--target", "multi")
    runner = background(queue.repo)
    try:
        reason = wait_for(lambda: show(queue, build)["waiting"].get("aarch64", "").startswith("builders down")
                          and show(queue, build)["waiting"]["aarch64"], "the reason")
        assert str(empty) in reason and "SHA256:" in reason and "not in" in reason
        wait_for(lambda: show(queue, build)["arches"]["x86_64"] == "built", "x86_64 to build")
    finally:
        err = stop(runner)
    assert "builder b3 is down" in err
    assert empty.read_text() == ""  # never learned
    assert show(queue, build)["arches"] == {"x86_64": "built", "aarch64": "queued"}


def test_a_changed_host_key_is_refused_as_a_possible_attack(queue, farm):
    wrong = Path(str(farm.servers["b3"].host.known_hosts) + ".wrong")
    b2_key = farm.servers["b2"].host.known_hosts.read_text().split(" ", 1)[1]
    host = farm.servers["b3"].host
    wrong.write_text(f"[{host.host}]:{host.port} {b2_key}")
    farm.write(b3=wrong)
    result = queue("--json", "builders", "--check")
    assert result.code == 1
    checks = {b["name"]: b["check"]["problems"] for b in result.json}
    assert checks["b2"] == []
    assert "has changed" in checks["b3"][0] and "man-in-the-middle" in checks["b3"][0]


def test_a_host_that_is_down_leaves_its_tasks_queued_with_the_reason(queue, farm, make_srpm):
    farm.servers["b3"].stop()
    build = submit(queue, make_srpm("lonely", "1.0", "1"), "--target", "multi")
    runner = background(queue.repo)
    try:
        reason = wait_for(lambda: show(queue, build)["waiting"].get("aarch64", "").startswith("builders down")
                          and show(queue, build)["waiting"]["aarch64"], "the reason")
        assert "b3" in reason
        wait_for(lambda: show(queue, build)["arches"]["x86_64"] == "built", "x86_64 to build")
        listed = queue("list").out
        assert "builders down: b3" in listed
    finally:
        stop(runner)


def _build_losing_its_host(queue, farm, make_srpm, name: str, lose) -> tuple[dict, str]:
    """A build on a farm where both hosts build x86_64; `lose(server)` is
    done to its host a second into the build. Returns (show, that host)."""
    farm.arches = {"b3": "x86_64"}  # both hosts build x86_64 now
    farm.write()
    build = submit(queue, make_srpm(name, "1.0", "1", build="sleep 6"))  # default target: x86_64
    runner = background(queue.repo)
    try:
        first = wait_for(lambda: [t for t in show(queue, build)["tasks"] if t["attempts"]], "the first attempt")
        builder = first[0]["attempts"][0]["builder"]
        time.sleep(1)
        lose(farm.servers[builder])
        shown = wait_for(lambda: show(queue, build)["state"] == "built" and show(queue, build), "the retry", 120)
    finally:
        stop(runner)
    attempts = shown["tasks"][0]["attempts"]
    assert [a["result"] for a in attempts] == ["queued", "built"]
    assert attempts[0]["builder"] == builder and attempts[1]["builder"] != builder
    assert "lost" in attempts[0]["error"] and attempts[0]["ended"]
    names = [a["name"] for a in shown["artifacts"]]
    assert len(names) == len(set(names)) == 2  # the SRPM and one RPM, no duplicates
    return shown, builder


def test_a_dropped_connection_retries_the_task_on_another_host(queue, farm, make_srpm):
    _build_losing_its_host(queue, farm, make_srpm, "dropped", lambda server: server.drop_connections())


def test_a_killed_sshd_retries_the_task_on_the_other_host(queue, farm, make_srpm):
    """Unlike a dropped connection, the daemon is gone too: the runner cannot
    reconnect to that host at all, so the retry must go elsewhere while the
    orphaned build on the dead host runs on, unseen."""
    killed = []
    shown, builder = _build_losing_its_host(queue, farm, make_srpm, "sshdkilled",
                                            lambda server: killed.append(server.kill()))
    assert killed[0] >= 2  # the listener and the session serving the build
    checked = {b["name"]: b["check"]["problems"] for b in queue("--json", "builders", "--check").json}
    assert checked[builder] and not checked[shown["tasks"][0]["attempts"][1]["builder"]]


def test_cancel_kills_the_remote_process_group_within_five_seconds(queue, farm, make_srpm):
    marker = f"sluice-remote-cancel-{os.getpid()}-{time.time_ns()}"
    build = submit(queue, make_srpm("remotesleep", "1.0", "1", build=f"bash -c 'exec -a {marker} sleep 300' & wait"),
                   "--target", "multi", "--arch", "aarch64")
    runner = background(queue.repo)
    try:
        wait_for(lambda: _running(marker), "the remote build")
        assert queue("cancel", build[:7], "--yes", user=BOB).code == 0
        cancelled = time.monotonic()
        while _running(marker) and time.monotonic() - cancelled < 5:
            time.sleep(0.1)
        assert not _running(marker), "the remote build still runs 5 s after cancel"
    finally:
        stop(runner)
    assert show(queue, build)["state"] == "cancelled"


def _running(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def test_builders_check_reaches_each_host(queue, farm):
    result = queue("--json", "builders", "--check")
    assert result.code == 0, result.out
    assert [(b["name"], b["transport"], b["check"]["problems"]) for b in result.json] == \
        [("b2", "ssh", []), ("b3", "ssh", [])]
    assert all("host key verified, mock found" in b["check"]["summary"] for b in result.json)


def test_a_host_without_the_build_tool_is_down_with_the_reason(queue, farm, ssh_server, make_srpm):
    bare = ssh_server("127.0.0.4", forwarding="remote", path="/usr/bin:/bin")
    farm.servers["b3"] = bare
    farm.write()
    result = queue("--json", "builders", "--check")
    problems = {b["name"]: b["check"]["problems"] for b in result.json}
    assert result.code == 1 and problems["b2"] == []
    assert "mock is not usable on 127.0.0.4" in problems["b3"][0]
    build = submit(queue, make_srpm("toolless", "1.0", "1"), "--target", "multi")
    notes = run_once(queue)
    assert "mock is not usable on 127.0.0.4" in notes
    assert show(queue, build)["arches"] == {"x86_64": "built", "aarch64": "queued"}
    assert json.loads(queue("--json", "builders").out)[1]["name"] == "b3"


def test_a_task_fails_once_its_attempts_are_used_up(queue, farm, make_srpm):
    farm.write()
    farm.config.write_text("[runner]\nattempts = 1\n\n" + farm.config.read_text())
    build = submit(queue, make_srpm("unlucky", "1.0", "1", build="sleep 6"), "--target", "multi", "--arch", "x86_64")
    runner = background(queue.repo)
    try:
        wait_for(lambda: show(queue, build)["tasks"][0]["attempts"], "the attempt")
        time.sleep(1)
        farm.servers["b2"].drop_connections()
        shown = wait_for(lambda: show(queue, build)["state"] == "failed" and show(queue, build), "the failure", 60)
    finally:
        stop(runner)
    assert "gave up after 1 attempts" in shown["events"][-1]["reason"]
    assert [a["result"] for a in shown["tasks"][0]["attempts"]] == ["failed"]


def _one_builder(farm, server, name="solo", arch="x86_64") -> None:
    host = server.host
    farm.config.write_text(f'[[builder]]\nname = "{name}"\nhost = "{host.host}"\nport = {host.port}\n'
                           f'user = "{host.user}"\nkey = "{host.key}"\nknown_hosts = "{host.known_hosts}"\n'
                           f'arches = ["{arch}"]\ntool = "mock"\nworkdir = "{farm.work / name}"\n')


def test_a_lying_host_is_failed_to_import_and_rescued_over_ssh(queue, farm, ssh_server, make_srpm, tmp_path):
    shims = tmp_path / "host-shims"
    shims.mkdir()
    liar = shims / "sha256sum"
    liar.write_text('#!/bin/sh\n/usr/bin/sha256sum "$@" | sed "s/^./0/"\n')
    liar.chmod(0o755)
    server = ssh_server("127.0.0.2", forwarding="remote", path=f"{shims}:{ROOT}/tests/doubles:/usr/bin:/bin")
    _one_builder(farm, server)
    build = submit(queue, make_srpm("sshliar", "1.0", "1"))
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "failed-to-import" and "does not match its digest" in shown["events"][-1]["reason"]
    resultdir = shown["tasks"][0]["attempts"][0]["resultdir"]
    assert any(name.endswith(".rpm") for name in os.listdir(resultdir))  # kept on the host for rescue
    liar.unlink()
    result = queue("rescue", build[:7], user=BOB)
    assert result.code == 0, result.err
    assert show(queue, build)["state"] == "built"


def test_known_hosts_with_markers_ssh_cannot_use_still_verifies_and_revoked_keys_are_refused(queue, farm, tmp_path):
    host = farm.servers["b2"].host
    line = host.known_hosts.read_text().strip()
    key = " ".join(line.split()[1:])
    marked = tmp_path / "marked_known_hosts"
    marked.write_text(f"@cert-authority *.example.org {key}\nnot-a-host-key-line\n{line}\n")
    farm.write(b2=marked)
    checks = {b["name"]: b["check"]["problems"] for b in queue("--json", "builders", "--check").json}
    assert checks["b2"] == []
    revoked = tmp_path / "revoked_known_hosts"
    revoked.write_text(f"{line}\n@revoked * {key}\n")
    farm.write(b2=revoked)
    checks = {b["name"]: b["check"]["problems"] for b in queue("--json", "builders", "--check").json}
    assert "marked @revoked" in checks["b2"][0]


def test_a_killed_runner_leaves_no_remote_build_behind(queue, farm, make_srpm, tmp_path):
    marker, flag = f"sluice-remote-orphan-{time.time_ns()}", tmp_path / "second-attempt"
    script = f"if [ ! -e {flag} ]; then touch {flag}; bash -c 'exec -a {marker} sleep 300'; fi"
    build = submit(queue, make_srpm("remoteorphan", "1.0", "1", build=script), "--target", "multi",
                   "--arch", "aarch64")
    runner = background(queue.repo)
    wait_for(lambda: _running(marker), "the remote build")
    runner.kill()
    runner.wait()
    assert _running(marker)
    notes = run_once(queue)
    assert not _running(marker) and "ended a leftover build on b3" in notes
    assert show(queue, build)["state"] == "built"


def test_a_huge_log_streams_over_ssh(queue, farm, make_srpm):
    line = "a line from a remote build, repeated until the log holds a hundred megabytes"
    build = submit(queue, make_srpm("remotechatty", "1.0", "1", build=f"yes '{line}' | head -c 104857600"),
                   "--target", "multi", "--arch", "aarch64")
    run_once(queue)
    assert show(queue, build)["state"] == "built"
    out = queue("log", build[:7])
    assert out.out.count(line) >= 104857600 // (len(line) + 1) - 1


def test_shell_metacharacters_in_the_srpm_name_and_nvr_stay_text_over_ssh(queue, farm, make_srpm, tmp_path,
                                                                          monkeypatch):
    trap = f"sluice-ssh-trap-{time.time_ns()}"
    hostile = tmp_path / f"$(touch {trap});`touch {trap}` c++ & x.src.rpm"
    hostile.write_bytes(make_srpm("c++-remote_x", "2.0~rc1^git3", "1").read_bytes())
    monkeypatch.chdir(tmp_path)
    build = submit(queue, hostile, "--target", "multi")
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "built" and shown["artifacts"][0]["name"] == hostile.name
    for where in (tmp_path, Path.home(), Path("/root"), farm.work / "b2", farm.work / "b3"):
        assert not (where / trap).exists()
