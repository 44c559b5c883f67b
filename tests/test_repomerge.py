"""External repos merged into a buildroot repo: real RPMs, createrepo_c, dnf.

The merge must hide every package of a source that an earlier repo has (no
arms race by version), keep every version the first repo offers, point dnf
at the external repo for its packages (over http here, as a real mirror),
and say where each package came from.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from backends.base import BackendError, RepoSource
from backends.repomerge import MergeRepoWriter

SPEC = """Name: {name}
Version: {version}
Release: 1
Summary: t
License: MIT
BuildArch: noarch
%description
t
{subpackages}
%files
"""


def build_rpms(out: Path, name: str, version: str, subpackages: tuple[str, ...] = ()) -> None:
    """Binary RPMs of one source package, flat in `out` like sluice's repos."""
    top = out.parent / f".top-{name}-{version}"
    top.mkdir(parents=True, exist_ok=True)
    subs = "".join(f"%package {s}\nSummary: t\n%description {s}\nt\n%files {s}\n" for s in subpackages)
    spec = top / f"{name}.spec"
    spec.write_text(SPEC.format(name=name, version=version, subpackages=subs))
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", f"_rpmdir {top}/RPMS",
                    str(spec)], check=True, capture_output=True)
    out.mkdir(parents=True, exist_ok=True)
    for rpm in (top / "RPMS").rglob("*.rpm"):
        shutil.move(str(rpm), out / rpm.name)


def createrepo(path: Path) -> None:
    subprocess.run(["createrepo_c", "-q", "--general-compress-type", "gz", "--no-database", str(path)],
                   check=True, capture_output=True)


@pytest.fixture
def http_root(tmp_path):
    """A plain HTTP server over a folder, as an external mirror would be."""
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def repos(tmp_path, http_root):
    """buildroot/.local: libfoo 1.0 and 2.0 (with -devel); epel over http:
    libfoo 3.0 with -devel and -static, baz 1.0; extra (file://): baz 9.0,
    qux 1.0 and the very NVRA libfoo-2.0-1.noarch again."""
    mirror, url = http_root
    local = tmp_path / "repos" / "t" / "buildroot" / ".local"
    build_rpms(local, "libfoo", "1.0", ("devel",))
    build_rpms(local, "libfoo", "2.0", ("devel",))
    createrepo(local)
    epel = mirror / "epel" / "9"
    build_rpms(epel / "Packages", "libfoo", "3.0", ("devel", "static"))
    build_rpms(epel / "Packages", "baz", "1.0")
    createrepo(epel)
    extra = tmp_path / "extra"
    build_rpms(extra, "baz", "9.0")
    build_rpms(extra, "qux", "1.0")
    build_rpms(extra, "libfoo", "2.0")
    createrepo(extra)
    return local, [RepoSource("epel", f"{url}/epel/9"), RepoSource("extra", f"file://{extra}")]


def dnf(tmp_path: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    work = tmp_path / "dnf"
    (work / "log").mkdir(parents=True, exist_ok=True)
    (work / "dnf.conf").write_text("[main]\n")
    return subprocess.run(
        ["dnf", "-q", f"--config={work}/dnf.conf", f"--setopt=reposdir={work}/repos.d",
         f"--setopt=cachedir={work}/cache", f"--setopt=logdir={work}/log", f"--setopt=persistdir={work}/persist",
         "--setopt=skip_if_unavailable=False", "--noplugins", "--releasever=sluice",
         f"--repofrompath=br,file://{repo}", "--repo=br", *args], capture_output=True, text=True)


def test_the_first_repo_with_a_source_package_offers_all_of_it_and_dnf_installs_through_the_merge(tmp_path,
                                                                                                    repos):
    local, externals = repos
    buildroot = local.parent
    merged = MergeRepoWriter().merge(str(buildroot), str(local), externals)
    assert merged.changed
    assert merged.origins == {
        "libfoo-1.0-1.noarch": "buildroot", "libfoo-devel-1.0-1.noarch": "buildroot",
        "libfoo-2.0-1.noarch": "buildroot", "libfoo-devel-2.0-1.noarch": "buildroot",
        "baz-1.0-1.noarch": "epel", "qux-1.0-1.noarch": "extra"}
    assert merged.masked == {"buildroot": 0, "epel": 3, "extra": 2}  # libfoo 3.0 x3; baz 9.0 and libfoo 2.0
    listed = dnf(tmp_path, buildroot, "repoquery", "--available", "--qf", "%{name}-%{version}-%{release}.%{arch}")
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted(merged.origins)
    root = tmp_path / "installroot"
    done = dnf(tmp_path, buildroot, f"--installroot={root}", "--setopt=gpgcheck=0", "-y",
               "install", "libfoo-devel", "baz", "qux")
    assert done.returncode == 0, done.stderr
    have = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME}-%{VERSION}\n"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert sorted(have) == ["baz-1.0", "libfoo-devel-2.0", "qux-1.0"]  # not libfoo 3.0, not baz 9.0
    assert not any(p.name.startswith("libfoo-3.0") for p in buildroot.iterdir())  # only local ones are linked


def test_an_unchanged_merge_does_nothing_and_a_changed_external_repo_is_merged_again(tmp_path, repos):
    local, externals = repos
    buildroot = local.parent
    merger = MergeRepoWriter()
    merger.merge(str(buildroot), str(local), externals)
    repomd = (buildroot / "repodata" / "repomd.xml").read_bytes()
    again = merger.merge(str(buildroot), str(local), externals)
    assert not again.changed and again.origins["qux-1.0-1.noarch"] == "extra"
    assert (buildroot / "repodata" / "repomd.xml").read_bytes() == repomd
    extra = Path(externals[1].url[len("file://"):])
    build_rpms(extra, "zed", "1.0")
    createrepo(extra)
    third = merger.merge(str(buildroot), str(local), externals)
    assert third.changed and third.origins["zed-1.0-1.noarch"] == "extra"


def test_a_damaged_external_repo_is_refused_by_name_and_the_last_merge_stays(tmp_path, repos):
    local, externals = repos
    buildroot = local.parent
    merger = MergeRepoWriter()
    merger.merge(str(buildroot), str(local), externals)
    before = (buildroot / "repodata" / "repomd.xml").read_bytes()
    extra = Path(externals[1].url[len("file://"):])
    stale = next((extra / "repodata").glob("*-primary.xml.gz")).read_bytes()
    build_rpms(extra, "zed", "1.0")
    createrepo(extra)  # a mirror caught mid-sync: the new repomd.xml, the old primary under the new name
    next((extra / "repodata").glob("*-primary.xml.gz")).write_bytes(stale)
    with pytest.raises(BackendError) as caught:
        merger.merge(str(buildroot), str(local), externals)
    assert "external repo extra" in caught.value.message and "checksum" in caught.value.message
    assert (buildroot / "repodata" / "repomd.xml").read_bytes() == before
    assert not (buildroot / ".repodata-merging").exists()


def test_an_unreachable_external_repo_says_which_and_what_to_do(tmp_path, repos):
    local, externals = repos
    with pytest.raises(BackendError) as caught:
        MergeRepoWriter().merge(str(local.parent), str(local), [RepoSource("gone", "http://127.0.0.1:9/x")])
    assert "external repo gone" in caught.value.message and "sluice target show" in caught.value.hint


def test_an_nvra_a_later_repo_builds_from_another_source_is_offered_once(tmp_path):
    """NVRA is unique within each repo, not across them: the same
    libfoo-2.0-1.noarch from another source package in a later repo is not
    offered beside ours."""
    local = tmp_path / "buildroot" / ".local"
    build_rpms(local, "libfoo", "2.0")
    createrepo(local)
    other = tmp_path / "other"
    build_rpms(other, "bundle", "2.0", ("-n libfoo",))  # libfoo-2.0-1.noarch, from source "bundle"
    createrepo(other)
    merged = MergeRepoWriter().merge(str(local.parent), str(local), [RepoSource("other", f"file://{other}")])
    assert merged.origins["libfoo-2.0-1.noarch"] == "buildroot"
    assert merged.origins["bundle-2.0-1.noarch"] == "other" and merged.masked["other"] == 1
    listed = dnf(tmp_path, local.parent, "repoquery", "--available", "--qf", "%{name}-%{version}-%{release}.%{arch}")
    assert sorted(listed.stdout.split()) == ["bundle-2.0-1.noarch", "libfoo-2.0-1.noarch"]
