"""Shared fixtures: an isolated home, real SRPMs from rpmbuild, and sluice
itself, in-process (fast) or as a whole process (for what only a process shows).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from app import builds
from app.admin import Admin
from app.index import Index
from app.model import Op, State
from app.queue import Queue
from app.submit import Submission, Submitter
from backends.artifacts import FileArtifactStore
from backends.base import Person
from backends.gitstore import GitStateStore

ALICE = Person("Alice Admin", "alice@example.org")
BOB = Person("Bob Packager", "bob@example.org")
CAROL = Person("Carol Tester", "carol@example.org")
MALLORY = Person("Mallory", "mallory@example.org")
ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.sshd"]  # the ssh_host fixture: a real sshd per test host


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own HOME, XDG dirs and git config; nothing leaks in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("SLUICE_USER", ALICE.email)
    for var in ("SLUICE_REPO", "SLUICE_ARTIFACTS", "GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(var, raising=False)
    return home


# ------------------------------------------------------------------ SRPMs

SPEC = """\
Name: {name}
Version: {version}
Release: {release}
Summary: test package {name}
License: MIT
{extra}
%description
A package made by sluice's tests.
%prep
%build
{build}
%install
mkdir -p %{{buildroot}}/usr/share/{name}
echo {name} > %{{buildroot}}/usr/share/{name}/hello
%files
/usr/share/{name}/hello
"""


@pytest.fixture(scope="session")
def srpm_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("srpms")


@pytest.fixture(scope="session")
def make_srpm(srpm_dir):
    """make_srpm(name, version="1.0", release="1", extra="BuildRequires: gcc", build="make") -> Path,
    built for real with `rpmbuild -bs` (cached for the session); `build` is
    the %build section's script."""
    made: dict[tuple, Path] = {}

    def make(name: str = "hello", version: str = "1.0", release: str = "1", extra: str = "",
             build: str = "") -> Path:
        key = (name, version, release, extra, build)
        if key not in made:
            top = srpm_dir / f"{name}-{version}-{release}-{len(made)}"
            top.mkdir()
            spec = top / f"{name}.spec"
            spec.write_text(SPEC.format(name=name, version=version, release=release, extra=extra, build=build))
            subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {top}", "--define", f"_sourcedir {top}",
                            "--define", "dist %{nil}", str(spec)], check=True, capture_output=True)
            made[key] = next((top / "SRPMS").glob("*.src.rpm"))
        return made[key]
    return make


# ------------------------------------------------------------------ services

@dataclass
class Clone:
    """One maintainer's clone of the queue, used through the service layer."""

    path: Path
    store: GitStateStore
    artifacts: FileArtifactStore

    def queue(self, who: Person = ALICE) -> Queue:
        return Queue(self.store, who, Index(self.store))

    def admin(self, who: Person = ALICE) -> Admin:
        return Admin(self.store, who)

    def submit(self, srpm: Path, who: Person = ALICE, **how) -> str:
        from backends.srpm import RpmReader
        submitter = Submitter(self.store, self.artifacts, RpmReader(), Index(self.store), who)
        return submitter.submit(Submission([str(srpm)], **how))[0].id

    def built(self, build_id: str, state: State = State.BUILT) -> None:
        """Drive a queued build through the runner's ops (as admin alice)."""
        queue = self.queue(ALICE)
        view = queue.view(build_id)
        for arch in view.record.arches:
            queue.record(build_id, Op.START, arch=arch, data={"tasks": {arch: "building"}})
        for n, arch in enumerate(view.record.arches, 1):
            last = n == len(view.record.arches)
            queue.record(build_id, Op.FINISH, dst=state if last else State.BUILDING, arch=arch,
                         data={"tasks": {arch: "built" if state is State.BUILT else str(state)}})

    def state(self, build_id: str) -> State:
        return self.queue().view(build_id).state


@pytest.fixture
def make_clone(tmp_path):
    def make(name: str = "clone", init: bool = True, bare: bool = True) -> Clone:
        path = tmp_path / name
        store = GitStateStore.open(str(path), create=True)
        clone = Clone(path, store, FileArtifactStore(str(tmp_path / f"{name}-artifacts")))
        if init:
            clone.admin().init("x86_64")
            clone.admin().grant("owner", BOB.email)
        return clone
    return make


@pytest.fixture
def clone(make_clone):
    return make_clone()


# ------------------------------------------------------------------ CLI

@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)


@pytest.fixture
def sluice(capsys, monkeypatch, tmp_path):
    """sluice(*argv, user=None) -> Result, running the CLI in-process on the
    test's repo (tmp_path/state.git)."""
    from app.cli import main
    repo = str(tmp_path / "state.git")

    def run(*argv: str, user: Person | None = None, repo_path: str | None = repo) -> Result:
        before = os.environ.get("SLUICE_USER")
        if user is not None:
            os.environ["SLUICE_USER"] = user.email
        args = (["--repo", repo_path] if repo_path else []) + list(argv)
        capsys.readouterr()
        try:
            code = main(args)
        finally:
            if before is None:
                os.environ.pop("SLUICE_USER", None)
            else:
                os.environ["SLUICE_USER"] = before
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)
    run.repo = repo
    return run


def run_process(*argv: str, env: dict | None = None, check: bool = False,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """sluice as a separate process, with the test's environment."""
    command = [str(Path(sys.executable).parent / "sluice"), *argv]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})},
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} exited {result.returncode}: {result.stderr}")
    return result


def tree_files(store: GitStateStore) -> dict[str, bytes]:
    """Every file of the state ref's tree (to prove nothing changed)."""
    head = store.head()
    if head is None:
        return {}
    found = {}

    def walk(tree, prefix):
        for entry in tree:
            path = f"{prefix}{entry.name}"
            obj = store.repo[entry.id]
            if entry.type_str == "tree":
                walk(obj, path + "/")
            else:
                found[path] = obj.data
    walk(store.repo[head].tree, "")
    return found


def syncer(clone: Clone, who: Person = ALICE):
    from app.sync import Syncer
    from backends.gitsync import GitCliTransport, GitMerger
    return Syncer(clone.store, GitCliTransport(clone.store.repo), GitMerger(clone.store), who)


def folded(clone) -> list[dict]:
    """The truth, straight from the tree, newest first."""
    snap = clone.store.snapshot()
    views = [builds.load_build(snap, i).summary() for i in builds.build_ids(snap)]
    return sorted(views, key=lambda s: (s["created"], s["id"]), reverse=True)


def forge(store: GitStateStore, files: dict[str, bytes], author: Person, title: str = "forged") -> str:
    """Write a commit no honest sluice would, straight onto the ref."""
    from backends.base import Change
    return store.update(lambda snap: Change(files, title + "\n", author)).commit


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()
