"""The runner on this machine: real rpmbuild, real createrepo_c, the real CLI.

The embedded default builder (local transport, rpmbuild tool) builds here;
the SSH builders are tested in test_runner_ssh.py. Faults a host can cause
(bad digests, odd result names) are caused for real by a `sha256sum` on the
runner's PATH that lies, as a compromised host would.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BOB, tree_files
from backends.gitstore import GitStateStore

SHIMS = "#!/bin/sh\n"


@pytest.fixture
def queue(sluice):
    assert sluice("init").code == 0
    assert sluice("policy", "grant", "owner", BOB.email).code == 0
    return sluice


def submit(sluice, srpm, *extra) -> str:
    result = sluice("--json", "submit", str(srpm), *extra, user=BOB)
    assert result.code == 0, result.err
    return result.json[0]["id"]


def show(sluice, build_id: str) -> dict:
    result = sluice("--json", "show", build_id)
    assert result.code == 0, result.err
    return result.json


def run_once(sluice) -> str:
    result = sluice("run", "--once")
    assert result.code == 0, result.err
    return result.err


def test_a_build_runs_here_and_its_results_are_verified_and_published(queue, make_srpm, isolated):
    build = submit(queue, make_srpm("hello", "1.0", "1"))
    notes = run_once(queue)
    assert "building hello-1.0-1" in notes and "built hello-1.0-1" in notes
    shown = show(queue, build)
    assert shown["state"] == "built" and shown["arches"] == {os.uname().machine: "built"}
    task = shown["tasks"][0]
    attempt = task["attempts"][0]
    assert (attempt["n"], attempt["builder"], attempt["exit"], attempt["result"]) == (1, "local", 0, "built")
    assert attempt["ended"] >= attempt["started"] and len(attempt["log"]) == 64
    names = {a["name"] for a in shown["artifacts"]}
    assert f"hello-1.0-1.{os.uname().machine}.rpm" in names and "hello-1.0-1.src.rpm" in names
    store = isolated / ".local/share/sluice/artifacts"
    for artifact in shown["artifacts"]:
        data = (store / "sha256" / artifact["sha256"][:2] / artifact["sha256"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    assert set(task["logs"]) >= {"build.log", "root.log", "state.log", "output"}
    repo = isolated / ".local/share/sluice/repos/default/buildroot"
    assert (repo / f"hello-1.0-1.{os.uname().machine}.rpm").exists() and (repo / "repodata/repomd.xml").exists()
    output = queue("log", build[:7])
    assert output.code == 0 and "Executing(%install)" in output.out
    assert "sluice: results:" in queue("log", build[:7], "--file", "build.log").out or \
        "Wrote:" in queue("log", build[:7], "--file", "build.log").out


def test_a_failed_build_keeps_its_log_tail_and_says_what_was_missing(queue, make_srpm):
    build = submit(queue, make_srpm("needy", "1.0", "1", "BuildRequires: libnothere-devel >= 2"))
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "failed"
    finish = shown["events"][-1]
    assert finish["op"] == "finish" and "libnothere-devel" in finish["reason"]
    assert finish["data"]["missing"] == ["libnothere-devel"]
    assert shown["tasks"][0]["attempts"][0]["exit"] not in (0, None)
    assert "libnothere-devel" in queue("log", build[:7]).out


def test_after_waits_for_the_buildroot_and_buildrequires_come_from_it(queue, make_srpm):
    lib = submit(queue, make_srpm("libfoo", "1.2", "1"))
    app = submit(queue, make_srpm("fooapp", "1.0", "1", "BuildRequires: libfoo >= 1.2"), "--after", lib[:7])
    waiting = show(queue, app)["waiting"]
    assert f"waiting for build {lib[:7]} (libfoo-1.2-1) to reach the buildroot" in list(waiting.values())[0]
    run_once(queue)
    assert show(queue, lib)["state"] == "built"
    shown = show(queue, app)
    assert shown["state"] == "built", shown["events"][-1]["reason"]
    start = [e for e in shown["events"] if e["op"] == "start"][0]
    assert start["data"]["buildroot"] == [lib]
    assert show(queue, lib)["used_by"] == [{"id": app, "arch": os.uname().machine}]


def test_a_withdrawn_build_leaves_the_buildroot_and_show_names_its_users(queue, make_srpm, isolated):
    lib = submit(queue, make_srpm("libbar", "1.0", "1"))
    run_once(queue)
    app = submit(queue, make_srpm("barapp", "1.0", "1", "BuildRequires: libbar"))
    run_once(queue)
    repo = isolated / ".local/share/sluice/repos/default/buildroot"
    assert any(p.name.startswith("libbar-1.0-1") for p in repo.iterdir())
    assert queue("withdraw", lib[:7], "-m", "broken ABI", "--yes", user=BOB).code == 0
    assert not any(p.name.startswith("libbar-1.0-1") for p in repo.iterdir())
    text = queue("show", lib[:7]).out
    assert "in the buildroot of:" in text and app[:7] in text


def test_a_dependent_build_is_cancelled_when_what_it_waits_for_fails(queue, make_srpm):
    broken = submit(queue, make_srpm("libbroken", "1.0", "1", "BuildRequires: nowhere-to-be-found"))
    app = submit(queue, make_srpm("usesbroken", "1.0", "1"), "--after", broken[:7])
    run_once(queue)
    assert show(queue, broken)["state"] == "failed"
    shown = show(queue, app)
    assert shown["state"] == "cancelled"
    assert broken[:7] in shown["events"][-1]["reason"] and "failed" in shown["events"][-1]["reason"]


def test_a_package_whose_nvr_and_file_name_hold_shell_metacharacters_builds(queue, make_srpm, tmp_path,
                                                                          monkeypatch):
    trap = f"sluice-trap-{time.time_ns()}"
    hostile = tmp_path / f"$(touch {trap});`touch {trap}` c++ & x.src.rpm"
    hostile.write_bytes(make_srpm("c++-tools_x", "1.0~rc1^git2", "1").read_bytes())
    monkeypatch.chdir(tmp_path)
    build = submit(queue, hostile)
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "built" and shown["artifacts"][0]["name"] == hostile.name
    assert not (tmp_path / trap).exists() and not (Path.home() / trap).exists()


def _shim(tmp_path: Path, body: str) -> Path:
    """A `sha256sum` that lies the way `body` says, first on PATH."""
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    tool = shims / "sha256sum"
    tool.write_text(SHIMS + body)
    tool.chmod(0o755)
    return shims


def test_a_result_whose_digest_does_not_match_is_failed_to_import_then_rescued(queue, make_srpm, tmp_path,
                                                                           monkeypatch, isolated):
    build = submit(queue, make_srpm("liar", "1.0", "1"))
    shims = _shim(tmp_path, '/usr/bin/sha256sum "$@" | sed "s/^./0/"\n')
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "failed-to-import"
    assert "does not match its digest" in shown["events"][-1]["reason"]
    assert [a["arch"] for a in shown["artifacts"]] == ["src"]  # nothing unverified was imported
    monkeypatch.setenv("PATH", os.environ["PATH"].split(":", 1)[1])
    result = queue("rescue", build[:7], user=BOB)
    assert result.code == 0, result.err
    shown = show(queue, build)
    assert shown["state"] == "built" and shown["events"][-1]["op"] == "rescue"
    assert any(a["name"].endswith(f".{os.uname().machine}.rpm") for a in shown["artifacts"])


@pytest.mark.parametrize("name", ["../../etc/evil.rpm", "/etc/passwd.rpm", "..rpm"])
def test_a_result_named_like_a_path_is_refused(queue, make_srpm, tmp_path, monkeypatch, name):
    build = submit(queue, make_srpm("pathy", "1.0", "1"))
    digest = "0" * 64
    shims = _shim(tmp_path, f'/usr/bin/sha256sum "$@"\necho "{digest}  {name}"\n')
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "failed-to-import"
    assert "refused" in shown["events"][-1]["reason"] and name in shown["events"][-1]["reason"]
    assert not Path("/etc/evil.rpm").exists()


def test_rescue_of_a_build_that_imported_is_refused_with_nothing_written(queue, make_srpm):
    build = submit(queue, make_srpm("fine", "1.0", "1"))
    run_once(queue)
    before = tree_files(GitStateStore.open(queue.repo))
    result = queue("rescue", build[:7], user=BOB)
    assert result.code == 4 and "it is built" in result.err
    assert tree_files(GitStateStore.open(queue.repo)) == before


def test_a_missing_build_tool_keeps_the_task_queued_with_the_reason(queue, make_srpm, isolated):
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[[builder]]\nname = "here"\narches = ["{os.uname().machine}"]\ntool = "mock"\n')
    build = submit(queue, make_srpm("nomock", "1.0", "1"))
    env_path = os.environ["PATH"]
    os.environ["PATH"] = "/usr/bin:/bin"  # no tests/doubles: mock is really missing
    try:
        notes = run_once(queue)
    finally:
        os.environ["PATH"] = env_path
    assert "mock is not usable" in notes
    assert show(queue, build)["state"] == "queued"


def test_a_huge_build_log_streams_to_the_store_and_only_its_tail_to_the_event(queue, make_srpm):
    line = "a build log line long enough to reach a hundred megabytes without taking all day"
    build = submit(queue, make_srpm("chatty", "1.0", "1", build=f"yes '{line}' | head -c 104857600; exit 1"))
    run_once(queue)
    shown = show(queue, build)
    assert shown["state"] == "failed"
    reason = shown["events"][-1]["reason"]
    assert line in reason and len(reason.encode()) <= 8192
    out = queue("log", build[:7])
    assert out.out.count(line) >= 104857600 // (len(line) + 1) - 1


def test_two_runners_on_one_repo_never_build_a_task_twice(queue, make_srpm, isolated):
    ids = [submit(queue, make_srpm(f"twice{n}", "1.0", "1")) for n in range(4)]
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[[builder]]\nname = "here"\narches = ["{os.uname().machine}"]\ntool = "rpmbuild"\nslots = 2\n')
    command = [str(Path(sys.executable).parent / "sluice"), "--repo", queue.repo, "run", "--once"]
    runners = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for runner in runners:
        assert runner.wait(timeout=300) == 0, runner.stderr.read()
    for build in ids:
        shown = show(queue, build)
        assert shown["state"] == "built", shown["events"][-1]["reason"]
        assert [e["op"] for e in shown["events"]].count("start") == 1


def test_cancel_kills_the_build_within_five_seconds(queue, make_srpm, isolated):
    marker = f"sluice-cancel-{os.getpid()}-{time.time_ns()}"
    build = submit(queue, make_srpm("sleepy", "1.0", "1", build=f"bash -c 'exec -a {marker} sleep 300' & wait"))
    runner = subprocess.Popen([str(Path(sys.executable).parent / "sluice"), "--repo", queue.repo, "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _running(marker):
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.2)
        assert queue("cancel", build[:7], "--yes", user=BOB).code == 0
        cancelled = time.monotonic()
        while _running(marker) and time.monotonic() - cancelled < 5:
            time.sleep(0.1)
        assert not _running(marker), "the build still runs 5 s after cancel"
        assert show(queue, build)["state"] == "cancelled"
    finally:
        runner.terminate()
        runner.wait(timeout=30)


def _running(marker: str) -> bool:
    result = subprocess.run(["pgrep", "-f", marker], capture_output=True)
    return result.returncode == 0


def test_a_runner_stopped_mid_build_puts_the_task_back(queue, make_srpm):
    marker = f"sluice-stop-{os.getpid()}-{time.time_ns()}"
    build = submit(queue, make_srpm("stopped", "1.0", "1", build=f"bash -c 'exec -a {marker} sleep 300' & wait"))
    runner = subprocess.Popen([str(Path(sys.executable).parent / "sluice"), "--repo", queue.repo, "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _running(marker):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    runner.terminate()
    assert runner.wait(timeout=30) == 0
    assert not _running(marker)
    shown = show(queue, build)
    assert shown["state"] == "building" and shown["arches"] == {os.uname().machine: "queued"}
    assert "runner stopped" in shown["events"][-1]["reason"]


def test_builders_lists_the_embedded_default_and_checks_it(queue):
    listed = queue("--json", "builders", "--check")
    assert listed.code == 0, listed.err
    (builder,) = listed.json
    assert (builder["name"], builder["transport"], builder["tool"]) == ("local", "local", "rpmbuild")
    assert builder["check"]["problems"] == [] and "GB free" in builder["check"]["summary"]


def test_a_bad_builder_config_names_the_file_and_changes_nothing(queue, isolated):
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[[builder]]\nname = "b1"\nhost = "h"\narches = ["x86_64"]\ntool = "koji"\n')
    before = tree_files(GitStateStore.open(queue.repo))
    result = queue("run", "--once")
    assert result.code == 2 and str(config) in result.err and "tool must be one of mock, rpmbuild" in result.err
    assert tree_files(GitStateStore.open(queue.repo)) == before
    assert json.loads(queue("--json", "list").out) == []


def test_log_follow_waits_for_the_start_and_shows_every_line_live(queue, make_srpm):
    script = "for i in $(seq 1 40); do echo live-line-$i; sleep 0.05; done"
    build = submit(queue, make_srpm("streamy", "1.0", "1", build=script))
    sluice = str(Path(sys.executable).parent / "sluice")
    follower = subprocess.Popen([sluice, "--repo", queue.repo, "log", build[:7], "--follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)  # the follower is waiting for a build that has not started
    assert follower.poll() is None
    runner = subprocess.Popen([sluice, "--repo", queue.repo, "run", "--once"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert runner.wait(timeout=120) == 0
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert "has not started building yet" in err
    lines = [line for line in out.splitlines() if line.startswith("live-line-")]
    assert lines == [f"live-line-{i}" for i in range(1, 41)]


def test_a_broken_builder_table_does_not_break_listing(queue, make_srpm, isolated):
    build = submit(queue, make_srpm("listed", "1.0", "1"))
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[[builder]]\nname = "b1"\narches = "x86_64"\n')
    result = queue("list")
    assert result.code == 0 and build[:7] in result.out and "the local config is broken" in result.out


def test_queued_tasks_say_when_every_slot_is_busy_or_no_builder_builds_their_arch(queue, make_srpm, isolated):
    assert queue("target", "add", "arm", "--arch", "aarch64").code == 0
    armed = submit(queue, make_srpm("armonly", "1.0", "1"), "--target", "arm")
    assert "no builder for aarch64" in show(queue, armed)["waiting"]["aarch64"]
    first = submit(queue, make_srpm("slot1", "1.0", "1", build="sleep 4"))
    second = submit(queue, make_srpm("slot2", "1.0", "1"))
    sluice = str(Path(sys.executable).parent / "sluice")
    runner = subprocess.Popen([sluice, "--repo", queue.repo, "run"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while show(queue, first)["state"] != "building":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        arch = os.uname().machine
        while "slots" not in show(queue, second)["waiting"].get(arch, ""):
            assert time.monotonic() < deadline, show(queue, second)["waiting"]
            time.sleep(0.2)
        assert show(queue, second)["waiting"][arch] == f"all 1 slots for {arch} are busy"
        assert "no builder for aarch64" in show(queue, armed)["waiting"]["aarch64"]
        while show(queue, second)["state"] != "built":
            assert time.monotonic() < deadline + 60
            time.sleep(0.2)
    finally:
        runner.terminate()
        runner.wait(timeout=30)



def test_after_a_build_that_is_withdrawn_cancels_the_dependent(queue, make_srpm):
    lib = submit(queue, make_srpm("libgone", "1.0", "1"))
    run_once(queue)
    app = submit(queue, make_srpm("needsgone", "1.0", "1"), "--after", lib[:7])
    assert queue("withdraw", lib[:7], "-m", "bad", "--yes", user=BOB).code == 0
    run_once(queue)
    shown = show(queue, app)
    assert shown["state"] == "cancelled" and "withdrawn" in shown["events"][-1]["reason"]


def test_after_a_scratch_build_or_another_target_is_refused_with_nothing_written(queue, make_srpm):
    scratch = submit(queue, make_srpm("scratchy", "1.0", "1"), "--scratch")
    assert queue("target", "add", "other", "--arch", os.uname().machine).code == 0
    elsewhere = submit(queue, make_srpm("elsewhere", "1.0", "1"), "--target", "other")
    before = tree_files(GitStateStore.open(queue.repo))
    result = queue("submit", str(make_srpm("late", "1.0", "1")), "--after", scratch[:7], user=BOB)
    assert result.code == 4 and "scratch build" in result.err
    result = queue("submit", str(make_srpm("late", "1.0", "1")), "--after", elsewhere[:7], user=BOB)
    assert result.code == 2 and "--target other" in result.err
    assert tree_files(GitStateStore.open(queue.repo)) == before


def test_a_killed_runner_leaves_no_build_behind_and_its_task_is_queued_again(queue, make_srpm, tmp_path):
    marker, flag = f"sluice-orphan-{time.time_ns()}", tmp_path / "second-attempt"
    script = f"if [ ! -e {flag} ]; then touch {flag}; bash -c 'exec -a {marker} sleep 300'; fi"
    build = submit(queue, make_srpm("orphan", "1.0", "1", build=script))
    sluice = str(Path(sys.executable).parent / "sluice")
    runner = subprocess.Popen([sluice, "--repo", queue.repo, "run"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _running(marker):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    runner.kill()  # no chance to clean up
    runner.wait()
    assert _running(marker)  # the build outlived its runner
    notes = run_once(queue)
    assert not _running(marker) and "ended a leftover build" in notes
    shown = show(queue, build)
    assert shown["state"] == "built"
    attempts = shown["tasks"][0]["attempts"]
    assert [a["result"] for a in attempts] == ["queued", "built"]
    assert attempts[0]["error"] == "the runner that claimed it stopped"


def test_builds_whose_rpms_this_machine_lacks_stay_out_of_the_buildroot(queue, make_srpm, isolated):
    first = submit(queue, make_srpm("elsewhere-built", "1.0", "1"))
    run_once(queue)
    rpm = next(a for a in show(queue, first)["artifacts"] if a["arch"] != "src")
    stored = isolated / ".local/share/sluice/artifacts/sha256" / rpm["sha256"][:2] / rpm["sha256"]
    stored.unlink()  # as if another clone's runner had built it
    repo = isolated / ".local/share/sluice/repos/default/buildroot"
    (repo / rpm["name"]).unlink()
    second = submit(queue, make_srpm("after-sync", "1.0", "1"))
    notes = run_once(queue)
    assert show(queue, second)["state"] == "built"
    assert "elsewhere-built-1.0-1" in notes and "left out" in notes
    assert not (repo / rpm["name"]).exists()


def test_missing_buildrequires_are_found_in_what_mock_and_dnf_say():
    from app.attempt import missing_requires
    text = ("sluice: missing BuildRequires: libfoo-devel, bar (not in any of: http://x)\n"
            "error: Failed build dependencies:\n\tzlib-devel >= 1.2 is needed by x-1-1.x86_64\n"
            "No matching package to install: 'gcc-c++'\nNo match for argument: pkgconfig(glib-2.0)\n")
    assert missing_requires(text) == ("libfoo-devel", "bar", "zlib-devel", "gcc-c++", "pkgconfig(glib-2.0)")


def test_progress_bars_draw_on_a_terminal_and_stay_quiet_otherwise():
    import io
    from app.cli.progress import Bars
    shown = io.StringIO()
    update = Bars(shown, enabled=True)("upload hello-1.0-1.src.rpm to b1")
    update(0, 2 * 1024 * 1024)
    update(2 * 1024 * 1024, 2 * 1024 * 1024)
    text = shown.getvalue()
    assert "upload hello-1.0-1.src.rpm to b1" in text and "100%" in text and "2.0MB/2.0MB" in text
    assert text.endswith("\n") and text.count("\r") == 2
    quiet = io.StringIO()
    assert Bars(quiet, enabled=False)("upload") is None and quiet.getvalue() == ""


def test_approving_a_newer_build_supersedes_older_unsigned_ones(queue, make_srpm):
    old = submit(queue, make_srpm("iterated", "1.0", "1"))
    older_approved = submit(queue, make_srpm("iterated", "1.0", "2"))
    new = submit(queue, make_srpm("iterated", "1.0", "10"))
    run_once(queue)
    assert queue("approve", older_approved[:7], user=BOB).code == 0
    run_once(queue)
    assert show(queue, old)["state"] == "superseded"  # 1.0-2 approved beats the built 1.0-1
    assert show(queue, new)["state"] == "built"  # newer, but not approved: it replaces nothing yet
    assert queue("approve", new[:7], user=BOB).code == 0
    run_once(queue)
    shown = show(queue, older_approved)
    assert shown["state"] == "superseded" and "iterated-1.0-10" in shown["events"][-1]["reason"]
    assert show(queue, new)["state"] == "needsign"


def test_a_target_that_keeps_every_iteration_supersedes_nothing(queue, make_srpm):
    arch = os.uname().machine
    assert queue("target", "add", "keepall", "--arch", arch, "--no-supersede").code == 0
    old = submit(queue, make_srpm("kept", "1.0", "1"), "--target", "keepall")
    new = submit(queue, make_srpm("kept", "1.0", "2"), "--target", "keepall")
    run_once(queue)
    assert queue("approve", new[:7], user=BOB).code == 0
    run_once(queue)
    assert show(queue, old)["state"] == "built"


def test_only_an_admin_may_run_the_builders_and_is_told_so_before_any_host(queue, make_srpm):
    build = submit(queue, make_srpm("notmine", "1.0", "1"))
    result = queue("run", "--once", user=BOB)
    assert result.code == 3 and "policy grant admin bob@example.org" in result.err
    assert "builder" not in result.err.split("error:")[0]  # refused before connecting to anything
    assert show(queue, build)["state"] == "queued"


def test_a_full_artifact_store_is_a_clear_error_keeps_nothing_half_written_and_the_task_builds_later(
        queue, make_srpm, tmp_path, monkeypatch):
    """The store on a real 2 MB tmpfs, filled to the last byte after submit."""
    store = tmp_path / "small-store"
    store.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(store)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("SLUICE_ARTIFACTS", str(store))
        build = submit(queue, make_srpm("roomy", "1.0", "1", build="head -c 300000 /dev/urandom > noise"))
        filler = store / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        before = {p: p.stat().st_size for p in store.rglob("*") if p.is_file()}
        notes = run_once(queue)
        assert "Traceback" not in notes and "internal error" not in notes
        shown = show(queue, build)
        attempt = shown["tasks"][0]["attempts"][0]
        assert shown["state"] == "building" and shown["arches"] == {os.uname().machine: "queued"}
        assert "No space left on device" in attempt["error"] and "tried again" in attempt["error"]
        after = {p: p.stat().st_size for p in store.rglob("*") if p.is_file() and not p.name.startswith("attempt")}
        assert {p for p in after if "sha256" in p.parts} == {p for p in before if "sha256" in p.parts}
        filler.unlink()
        run_once(queue)  # room again: the same task builds, nothing was lost
        shown = show(queue, build)
        assert shown["state"] == "built"
        assert [a["result"] for a in shown["tasks"][0]["attempts"]] == ["queued", "built"]  # not counted, not lost
        assert os.listdir(store / "incoming") == []
        for path in (store / "sha256").rglob("*"):
            if path.is_file():
                assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)
