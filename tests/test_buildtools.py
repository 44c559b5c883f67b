"""The build tools on real parts: real rpmbuild, real createrepo_c repos read
over file:// and http://, and the mock test double (tests/doubles/mock),
because mock itself cannot run on Debian.

Commands are run the way a builder host runs them: the argv the tool returns,
stdout and stderr merged into one stream (the live log).
"""
from __future__ import annotations

import ast
import functools
import http.server
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backends.base import BadInput, BuildSpec
from backends.buildtools import MockTool, RpmbuildTool, helper_source, tool_for
from backends.remote import rpmbuild_helper
from tests.conftest import ROOT

ARCH = platform.machine()
DOUBLES = ROOT / "tests" / "doubles"


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def repo_of(make_srpm, tmp_path_factory):
    """repo_of(name, version) -> file:// URL of a createrepo_c repo holding
    that package, built for real from a test SRPM."""
    made: dict[tuple, str] = {}

    def make(name: str, version: str) -> str:
        if (name, version) not in made:
            top = tmp_path_factory.mktemp(f"repo-{name}-{version}")
            subprocess.run(["rpmbuild", "--rebuild", "--define", f"_topdir {top / 'top'}",
                            str(make_srpm(name, version))], check=True, capture_output=True)
            repo = top / "repo"
            repo.mkdir()
            for rpm_file in (top / "top" / "RPMS").rglob("*.rpm"):
                shutil.copy(rpm_file, repo)
            subprocess.run(["createrepo_c", "--quiet", "--no-database", str(repo)], check=True)
            made[(name, version)] = repo.as_uri()
        return made[(name, version)]
    return make


@pytest.fixture
def host(tmp_path):
    """A fresh result dir and TMPDIR (to see that temp files go away)."""
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PATH": f"{DOUBLES}:{os.environ['PATH']}"}
    return tmp_path / "result", env


def spec_for(srpm: Path, resultdir: Path, *repos: str) -> BuildSpec:
    return BuildSpec(srpm=str(srpm), resultdir=str(resultdir), arch=ARCH,
                     config=f"fedora-40-{ARCH}", repos=tuple(repos))


def run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env, timeout=300)


def built_rpms(resultdir: Path) -> list[str]:
    return sorted(p.name for p in resultdir.glob("*.rpm") if not p.name.endswith(".src.rpm"))


# ------------------------------------------------------------------ rpmbuild tool

def test_rpmbuild_tool_builds_a_package_without_buildrequires(make_srpm, host):
    resultdir, env = host
    done = run(RpmbuildTool().command(spec_for(make_srpm("hello"), resultdir)), env)

    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[0] == rpmbuild_helper.BANNER
    assert sorted(p.name for p in resultdir.iterdir()) == sorted(
        [f"hello-1.0-1.{ARCH}.rpm", "hello-1.0-1.src.rpm", "build.log", "root.log", "state.log"])
    query = subprocess.run(["rpm", "-qp", "--qf", "%{NAME} %{ARCH} %{SOURCERPM}",
                            str(resultdir / f"hello-1.0-1.{ARCH}.rpm")], capture_output=True, text=True)
    assert query.stdout == f"hello {ARCH} hello-1.0-1.src.rpm"
    build_log = (resultdir / "build.log").read_text()
    assert "Wrote: " in build_log and "Wrote: " in done.stdout  # streamed and kept
    assert "BuildRequires: (none)" in (resultdir / "root.log").read_text()
    phases = [line.split(" - ", 1)[1] for line in (resultdir / "state.log").read_text().splitlines()]
    assert phases == ["Start: resolve BuildRequires", "Finish: resolve BuildRequires",
                      "Start: rpmbuild hello-1.0-1", "Finish: rpmbuild hello-1.0-1 (exit 0)"]
    assert list((resultdir.parent / "tmp").iterdir()) == []


def test_buildrequires_come_from_the_repo_given(make_srpm, repo_of, host):
    resultdir, env = host
    repo = repo_of("libfoo", "1.0")
    srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir, repo)), env)

    assert done.returncode == 0, done.stdout
    assert built_rpms(resultdir) == [f"needsfoo-1.0-1.{ARCH}.rpm"]
    root_log = (resultdir / "root.log").read_text()
    assert f"BuildRequires libfoo -> libfoo-1.0-1.{ARCH} from {repo}" in root_log
    assert "BuildRequires: libfoo >= 1.0" in root_log


def test_a_buildrequires_in_no_repo_fails_naming_it(make_srpm, repo_of, host):
    resultdir, env = host
    srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir)), env)

    assert done.returncode == rpmbuild_helper.MISSING == 30
    assert "sluice: missing BuildRequires: libfoo (not in any repo: none were given)" in done.stdout.splitlines()
    assert built_rpms(resultdir) == []
    assert "missing BuildRequires: libfoo" in (resultdir / "build.log").read_text()

    other = repo_of("libbar", "1.0")
    again = run(RpmbuildTool().command(spec_for(srpm, resultdir, other)), env)
    assert again.returncode == 30
    assert f"sluice: missing BuildRequires: libfoo (not in any of: {other})" in again.stdout


def test_a_version_the_repo_does_not_have_fails_in_rpmbuilds_own_check(make_srpm, repo_of, host):
    resultdir, env = host
    srpm = make_srpm("needsfoo2", extra="BuildRequires: libfoo >= 2.0")
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir, repo_of("libfoo", "1.0"))), env)

    assert done.returncode != 0
    assert "Failed build dependencies" in done.stdout and "libfoo >= 2.0" in done.stdout
    assert built_rpms(resultdir) == []


def test_the_first_repo_that_has_a_name_wins_over_newer_versions_later(make_srpm, repo_of, host):
    resultdir, env = host
    old, new = repo_of("libfoo", "1.0"), repo_of("libfoo", "2.0")
    srpm = make_srpm("needsfoo2", extra="BuildRequires: libfoo >= 2.0")

    refused = run(RpmbuildTool().command(spec_for(srpm, resultdir, old, new)), env)
    assert refused.returncode != 0
    assert f"libfoo-1.0-1.{ARCH} from {old}" in refused.stdout

    shutil.rmtree(resultdir)
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir, new, old)), env)
    assert done.returncode == 0, done.stdout
    assert f"libfoo-2.0-1.{ARCH} from {new}" in done.stdout


def test_repos_are_read_over_http(make_srpm, repo_of, host):
    resultdir, env = host
    directory = repo_of("libfoo", "1.0").removeprefix("file://")
    handler = functools.partial(QuietHandler, directory=directory)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")
        done = run(RpmbuildTool().command(spec_for(srpm, resultdir, url)), env)
        server.shutdown()
    assert done.returncode == 0, done.stdout
    assert f"from {url}" in (resultdir / "root.log").read_text()


def test_xz_metadata_and_rich_buildrequires_are_read(make_srpm, repo_of, host, tmp_path):
    resultdir, env = host
    repo = tmp_path / "xz-repo"
    shutil.copytree(repo_of("libfoo", "1.0").removeprefix("file://"), repo)
    shutil.rmtree(repo / "repodata")
    subprocess.run(["createrepo_c", "--quiet", "--no-database", "--general-compress-type", "xz", str(repo)],
                   check=True)
    srpm = make_srpm("richfoo", extra="BuildRequires: (libfoo >= 1.0 or libnothing)")
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir, repo.as_uri())), env)
    assert done.returncode == 0, done.stdout
    assert f"BuildRequires libfoo -> libfoo-1.0-1.{ARCH}" in done.stdout


def test_broken_metadata_is_a_buildroot_failure_that_says_what_to_do(make_srpm, repo_of, host, tmp_path):
    resultdir, env = host
    repo = tmp_path / "broken-repo"
    shutil.copytree(repo_of("libfoo", "1.0").removeprefix("file://"), repo)
    (repo / "repodata" / "repomd.xml").write_text("<repomd><data type='primary'>")
    srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir, repo.as_uri())), env)
    assert done.returncode == rpmbuild_helper.SETUP
    assert "is broken" in done.stdout and "run createrepo_c on it again" in done.stdout


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("tool", [RpmbuildTool(), MockTool()], ids=lambda t: t.name)
def test_sigterm_to_the_process_group_stops_the_build_and_cleans_up(tool, tmp_path, host):
    resultdir, env = host
    srpm = _sleeping_srpm(tmp_path)
    argv = tool.command(spec_for(srpm, resultdir))
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while "sleep 300" not in _read(resultdir / "build.log") and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)  # what the runner's cancel does
    assert proc.wait(timeout=20) == rpmbuild_helper.TERMINATED
    assert list((tmp_path / "tmp").iterdir()) == []


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _sleeping_srpm(tmp_path: Path) -> Path:
    spec = tmp_path / "sleeper.spec"
    spec.write_text("Name: sleeper\nVersion: 1\nRelease: 1\nSummary: s\nLicense: MIT\n"
                    "%description\ns\n%build\nsleep 300\n%files\n")
    subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {tmp_path / 'top'}", str(spec)],
                   check=True, capture_output=True)
    return next((tmp_path / "top" / "SRPMS").glob("*.src.rpm"))


def test_a_repo_that_is_not_a_url_is_refused(make_srpm, host):
    resultdir, env = host
    done = run(RpmbuildTool().command(spec_for(make_srpm("hello"), resultdir, "/srv/repo")), env)
    assert done.returncode == 2
    assert "use an http://, https:// or file:// URL" in done.stdout


def test_an_unreadable_srpm_or_result_dir_is_named(make_srpm, host, tmp_path):
    resultdir, env = host
    (tmp_path / "junk.src.rpm").write_bytes(b"not an rpm")
    junk = run(RpmbuildTool().command(spec_for(tmp_path / "junk.src.rpm", resultdir)), env)
    assert junk.returncode == rpmbuild_helper.BAD_SRPM
    assert f"sluice: cannot read {tmp_path / 'junk.src.rpm'}" in junk.stdout

    (tmp_path / "a-file").write_text("")
    nowhere = run(RpmbuildTool().command(spec_for(make_srpm("hello"), tmp_path / "a-file" / "result")), env)
    assert nowhere.returncode == rpmbuild_helper.BAD_RESULTDIR
    assert "cannot write to the result directory" in nowhere.stdout


def test_an_unreachable_repo_is_a_buildroot_failure(make_srpm, host, tmp_path):
    resultdir, env = host
    srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")
    done = run(RpmbuildTool().command(spec_for(srpm, resultdir, (tmp_path / "nothing").as_uri())), env)
    assert done.returncode == rpmbuild_helper.SETUP
    assert "is the repo reachable from this host?" in done.stdout


# ------------------------------------------------------------------ mock (double)

def test_mock_command_is_plain_argv_with_one_addrepo_per_repo():
    spec = BuildSpec("/b/x.src.rpm", "/b/result", "aarch64", "fedora-40-aarch64", ("http://a/", "file:///b"))
    assert MockTool().command(spec) == [
        "mock", "-r", "fedora-40-aarch64", "--resultdir", "/b/result",
        "--addrepo", "http://a/", "--addrepo", "file:///b", "--rebuild", "--", "/b/x.src.rpm"]


def test_mock_without_a_config_is_refused():
    with pytest.raises(BadInput, match="no mock config for x86_64") as caught:
        MockTool().command(BuildSpec("/x.src.rpm", "/r", "x86_64", "", ()))
    assert "--mock-config x86_64=CONFIG" in caught.value.hint


def test_the_mock_double_builds_with_mocks_command(make_srpm, repo_of, host):
    resultdir, env = host
    repo = repo_of("libfoo", "1.0")
    srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")
    done = run(MockTool().command(spec_for(srpm, resultdir, repo)), env)

    assert done.returncode == 0, done.stdout
    assert "TEST DOUBLE" in done.stdout.splitlines()[0]
    assert sorted(p.name for p in resultdir.iterdir()) == sorted(
        [f"needsfoo-1.0-1.{ARCH}.rpm", "needsfoo-1.0-1.src.rpm", "build.log", "root.log", "state.log"])
    assert f"libfoo-1.0-1.{ARCH} from {repo}" in (resultdir / "root.log").read_text()


def test_the_mock_double_fails_like_mock_for_missing_and_unsatisfied_buildrequires(make_srpm, repo_of, host):
    resultdir, env = host
    missing = run(MockTool().command(spec_for(make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0"),
                                              resultdir)), env)
    assert missing.returncode == 30  # mock: the package manager could not install the buildroot
    assert "sluice: missing BuildRequires: libfoo" in missing.stdout

    too_old = run(MockTool().command(spec_for(make_srpm("needsfoo2", extra="BuildRequires: libfoo >= 2.0"),
                                              resultdir, repo_of("libfoo", "1.0"))), env)
    assert too_old.returncode == 30, too_old.stdout
    assert built_rpms(resultdir) == []


def test_the_mock_double_reads_repos_from_its_config_dir(make_srpm, repo_of, host, tmp_path):
    resultdir, env = host
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "epel-9-x86_64.cfg").write_text(f"# extra repos\n{repo_of('libfoo', '1.0')}\n")
    env = {**env, "SLUICE_MOCK_DOUBLE_CONFIGS": str(tmp_path / "configs")}
    srpm = make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0")

    done = run(["mock", "-r", "epel-9-x86_64", "--resultdir", str(resultdir), "--rebuild", str(srpm)], env)
    assert done.returncode == 0, done.stdout
    unknown = run(["mock", "-r", "epel-10-x86_64", "--resultdir", str(resultdir), str(srpm)], env)
    assert unknown.returncode == 3
    assert "Could not find required config file" in unknown.stdout


def test_the_mock_double_refuses_what_it_does_not_know(host):
    _, env = host
    assert run(["mock", "--version"], env).stdout.strip().endswith("NOT mock)")
    unknown = run(["mock", "--no-such-option", "x.src.rpm"], env)
    assert unknown.returncode == 2 and "unrecognized arguments: --no-such-option" in unknown.stdout
    not_emulated = run(["mock", "-r", "x", "--forcearch", "aarch64", "--resultdir", "/tmp/r", "x.src.rpm"], env)
    assert not_emulated.returncode == 5 and "--forcearch" in not_emulated.stdout


@pytest.mark.parametrize("tool", [MockTool(), RpmbuildTool()], ids=lambda t: t.name)
def test_a_hostile_srpm_name_is_one_argument_and_runs_nothing(tool, make_srpm, host, tmp_path):
    resultdir, env = host
    hostile = tmp_path / "in" / "a;b$(x).src.rpm"
    hostile.parent.mkdir()
    shutil.copy(make_srpm("hello"), hostile)
    traps = tmp_path / "traps"
    traps.mkdir()
    for name in ("b", "x"):
        (traps / name).write_text(f"#!/bin/sh\ntouch {tmp_path}/ran-{name}\n")
        (traps / name).chmod(0o755)
    env = {**env, "PATH": f"{traps}:{env['PATH']}"}

    argv = tool.command(spec_for(hostile, resultdir))
    assert argv.count(str(hostile)) == 1  # as is: the tool quotes nothing itself
    done = run(["sh", "-c", shlex.join(argv)], env)  # what the SSH transport does
    assert done.returncode == 0, done.stdout
    assert f"hello-1.0-1.{ARCH}.rpm" in built_rpms(resultdir)
    assert not list(tmp_path.glob("ran-*"))


# ------------------------------------------------------------------ the tools themselves

def test_tool_for_names_the_tools_and_refuses_others():
    assert isinstance(tool_for("mock"), MockTool) and isinstance(tool_for("rpmbuild"), RpmbuildTool)
    with pytest.raises(BadInput, match="unknown build tool 'koji'") as caught:
        tool_for("koji")
    assert "mock, rpmbuild" in caught.value.hint


def test_probes_succeed_where_the_tool_is_and_fail_where_it_is_not(host, tmp_path):
    _, env = host
    assert run(RpmbuildTool().probe(), env).returncode == 0
    assert run(MockTool().probe(), env).returncode == 0  # the double, first in PATH
    bare = tmp_path / "bare-host"  # a host with sh and python3 but no rpmbuild, no mock
    bare.mkdir()
    for program in ("sh", "python3"):
        (bare / program).symlink_to(shutil.which(program))
    without = {**env, "PATH": str(bare)}
    assert run(RpmbuildTool().probe(), without).returncode != 0
    with pytest.raises(FileNotFoundError):
        run(MockTool().probe(), without)


def _python36() -> str | None:
    """A real python3.6 binary, if this machine has one (on PATH, or built by
    pyenv), looked up at import time while HOME is still the real one."""
    candidates = [shutil.which("python3.6")] + sorted(map(str, Path.home().glob(".pyenv/versions/3.6*/bin/python3.6")))
    for candidate in filter(None, candidates):
        found = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 6))"],
                               capture_output=True, text=True)
        if found.stdout.strip() == "True":
            return candidate
    return None


PYTHON36 = _python36()


@pytest.mark.skipif(PYTHON36 is None, reason="no python3.6 on this machine")
def test_the_helper_runs_on_python36(make_srpm, repo_of, host):
    resultdir, env = host
    argv = RpmbuildTool().command(spec_for(make_srpm("needsfoo", extra="BuildRequires: libfoo >= 1.0"),
                                           resultdir, repo_of("libfoo", "1.0")))
    done = run([PYTHON36] + argv[1:], env)
    assert done.returncode == 0, done.stdout
    assert built_rpms(resultdir) == [f"needsfoo-1.0-1.{ARCH}.rpm"]


def test_the_helper_travels_as_one_stdlib_only_python36_argument():
    source = helper_source()
    assert source == Path(rpmbuild_helper.__file__).read_text()
    assert source.isascii() and len(source) < 100_000  # one argv element is capped at 128 KiB
    tree = ast.parse(source, feature_version=(3, 6))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


@pytest.mark.parametrize("a, b, expected", [
    ("1.0", "1.0", 0), ("1.10", "1.9", 1), ("1.0~rc1", "1.0", -1), ("1.0^git1", "1.0", 1),
    ("1.0^git1", "1.0.1", -1), ("2a", "2.0", -1), ("010", "10", 0), ("1.0a", "1.0", 1)])
def test_versions_compare_like_rpm(a, b, expected):
    assert rpmbuild_helper.rpmvercmp(a, b) == expected
    assert rpmbuild_helper.rpmvercmp(b, a) == -expected


def test_a_host_without_rpm_is_a_setup_failure_not_a_failed_build(make_srpm, host, tmp_path):
    resultdir, env = host
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)  # python3, and no rpm or rpmbuild at all
    argv = RpmbuildTool().command(spec_for(make_srpm("lonely"), resultdir))
    done = run(argv, {**env, "PATH": str(bare)})
    assert done.returncode == rpmbuild_helper.SETUP
    assert "cannot run rpm" in done.stdout and "install rpm-build" in done.stdout
    assert "Traceback" not in done.stdout
