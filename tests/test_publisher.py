"""The repo publisher and the repo server, on real parts: binary RPMs from
rpmbuild, metadata from the createrepo_c command line, and Debian's real dnf
reading the result from the directory and over HTTP."""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from backends.artifacts import FileArtifactStore
from backends.base import BackendError, BadInput
from backends import publisher as publisher_module
from backends.publisher import CreaterepoPublisher
from backends.reposerver import RepoServer

ROOT = Path(__file__).resolve().parent.parent
ALPHA, BETA = "alpha-1.0-1.x86_64.rpm", "beta-2.0-3.x86_64.rpm"
REPO_NS = {"repo": "http://linux.duke.edu/metadata/repo", "common": "http://linux.duke.edu/metadata/common"}


# ------------------------------------------------------------------ helpers

@pytest.fixture(scope="session")
def rpms(make_srpm, tmp_path_factory) -> dict[str, Path]:
    """Binary RPMs built for real with `rpmbuild --rebuild` (once a session)."""
    top = tmp_path_factory.mktemp("rpmbuild")
    built = {}
    for name, version, release in (("alpha", "1.0", "1"), ("beta", "2.0", "3"), ("alpha", "1.0", "9")):
        srpm = make_srpm(name, version, release)
        subprocess.run(["rpmbuild", "--rebuild", "--define", f"_topdir {top}", "--define", "dist %{nil}",
                        "--target", "x86_64", str(srpm)], check=True, capture_output=True)
        built[f"{name}-{version}-{release}"] = next((top / "RPMS").rglob(f"{name}-{version}-{release}.*.rpm"))
    return built


@pytest.fixture
def store(tmp_path, rpms) -> FileArtifactStore:
    return FileArtifactStore(str(tmp_path / "artifacts"))


@pytest.fixture
def both(store, rpms) -> dict[str, str]:
    return {ALPHA: store.put(str(rpms["alpha-1.0-1"])).sha256, BETA: store.put(str(rpms["beta-2.0-3"])).sha256}


@pytest.fixture
def repo(tmp_path) -> Path:
    return tmp_path / "repos" / "f40" / "buildroot"


def dnf_list(url: str, tmp_path: Path) -> list[str]:
    """What the real dnf client sees in the repo at `url`: isolated config,
    cache, logs and persistdir, no system repos, no plugins, and a repo that
    cannot be read is an error rather than skipped."""
    work = Path(tempfile.mkdtemp(prefix="dnf-", dir=tmp_path))
    (work / "dnf.conf").write_text("[main]\n")
    (work / "repos.d").mkdir()
    command = ["dnf", "-q", f"--config={work}/dnf.conf", f"--setopt=reposdir={work}/repos.d",
               f"--setopt=cachedir={work}/cache", f"--setopt=logdir={work}/log",
               f"--setopt=persistdir={work}/persist", "--setopt=skip_if_unavailable=False",
               "--noplugins", "--releasever=sluice", f"--repofrompath=br,{url}", "--repo=br",
               "repoquery", "--available", "--qf", "%{name}-%{version}-%{release}.%{arch}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return sorted(result.stdout.split())


def primary(repo: Path) -> dict[str, str]:
    """location href -> sha256 from the repo's primary.xml.gz, via repomd.xml."""
    repomd = ET.parse(repo / "repodata" / "repomd.xml")
    href = repomd.find("repo:data[@type='primary']/repo:location", REPO_NS).get("href")
    assert href.endswith(".xml.gz"), href  # gz: what Debian's dnf reads
    root = ET.fromstring(gzip.decompress((repo / href).read_bytes()))
    return {pkg.find("common:location", REPO_NS).get("href"): pkg.find("common:checksum", REPO_NS).text
            for pkg in root.findall("common:package", REPO_NS)}


def listing(path: Path) -> dict[str, bytes]:
    """Every file under `path` with its bytes (to prove nothing changed)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ publishing

def test_publish_hard_links_the_store_and_dnf_lists_both(store, both, repo, tmp_path):
    result = CreaterepoPublisher(store).publish(str(repo), both)

    assert result.added == (ALPHA, BETA) and result.removed == () and result.changed
    for name, sha256 in both.items():
        assert os.path.samefile(repo / name, store.path(sha256)), f"{name} is not a hard link"
    assert primary(repo) == both
    assert not list((repo / "repodata").glob("*.sqlite*")), "dnf reads XML only; no sqlite wanted"
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64", "beta-2.0-3.x86_64"]


def test_publish_again_without_one_removes_it(store, both, repo, tmp_path):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), both)

    result = publisher.publish(str(repo), {ALPHA: both[ALPHA]})

    assert result.added == () and result.removed == (BETA,) and result.changed
    assert not (repo / BETA).exists()
    assert os.path.exists(store.path(both[BETA])), "unpublishing must not touch the store"
    assert primary(repo) == {ALPHA: both[ALPHA]}
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64"]


def test_an_unchanged_set_does_not_rerun_createrepo(store, both, repo):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), both)
    repomd = repo / "repodata" / "repomd.xml"
    before = (repomd.read_bytes(), repomd.stat().st_mtime_ns, listing(repo))
    time.sleep(0.01)

    result = CreaterepoPublisher(store, createrepo="/nonexistent/createrepo_c").publish(str(repo), both)

    assert result == type(result)((), (), False)
    assert (repomd.read_bytes(), repomd.stat().st_mtime_ns, listing(repo)) == before


def logging_createrepo(tmp_path: Path) -> tuple[str, Path]:
    """The real createrepo_c behind a wrapper that records, per run, the
    package names of the --pkglist it was given (the packages it reads)."""
    log, wrapper = tmp_path / "createrepo.log", tmp_path / "createrepo_c"
    wrapper.write_text(f'#!/bin/sh\nprev=\nfor arg in "$@"; do\n'
                       f'  if [ "$prev" = --pkglist ]; then echo $(cat "$arg") >> {log}; fi\n'
                       f'  prev=$arg\ndone\nexec createrepo_c "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), log


def test_only_new_packages_are_read_and_a_replaced_file_is_read_again(store, both, repo, rpms, tmp_path):
    """createrepo_c reads a package once; the metadata of the others comes
    from the fragment cache. Same file name, other bytes (a rebuild of the
    same NVRA, which may keep size and mtime) is a new package: read again."""
    wrapper, log = logging_createrepo(tmp_path)
    publisher = CreaterepoPublisher(store, createrepo=wrapper)
    publisher.publish(str(repo), {ALPHA: both[ALPHA]})
    publisher.publish(str(repo), both)
    other = store.put(str(rpms["alpha-1.0-9"])).sha256

    result = publisher.publish(str(repo), {**both, ALPHA: other})

    assert log.read_text().splitlines() == [ALPHA, BETA, ALPHA]
    assert result.added == (ALPHA,) and result.changed
    assert os.path.samefile(repo / ALPHA, store.path(other))
    assert primary(repo) == {**both, ALPHA: other}
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-9.x86_64", "beta-2.0-3.x86_64"]


def test_a_package_replaced_behind_the_publishers_back_is_linked_again(store, both, repo, tmp_path):
    """A publish trusts the links it made (no stat of 10,000 artifacts), but
    only by inode: a file put in a package's place is another inode, and the
    next publish links the artifact back, even when nothing else changed."""
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), both)
    assert (repo / ".linked").read_text().count("\n") == 2
    forged = tmp_path / "forged.rpm"
    shutil.copy(store.path(both[BETA]), forged)  # valid RPM bytes, wrong package
    os.replace(forged, repo / ALPHA)

    result = publisher.publish(str(repo), both)

    assert result.added == (ALPHA,) and result.changed
    assert os.path.samefile(repo / ALPHA, store.path(both[ALPHA]))
    assert primary(repo) == both
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64", "beta-2.0-3.x86_64"]


def test_a_damaged_fragment_cache_is_read_again_from_the_packages(store, both, repo, tmp_path):
    wrapper, log = logging_createrepo(tmp_path)
    publisher = CreaterepoPublisher(store, createrepo=wrapper)
    publisher.publish(str(repo), both)
    [damaged] = [p for p in (repo / ".metadata-cache").iterdir() if p.name == both[BETA][:2]]
    damaged.write_bytes(damaged.read_bytes().replace(b"beta", b"BETA"))  # same length, wrong CRC
    (repo / ".published").unlink()  # as if the publish had been interrupted

    assert publisher.publish(str(repo), both).changed
    in_damaged = " ".join(name for name in sorted(both) if both[name][:2] == damaged.name)
    assert log.read_text().splitlines() == [f"{ALPHA} {BETA}", in_damaged]
    assert primary(repo) == both
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64", "beta-2.0-3.x86_64"]


def test_an_empty_set_makes_an_empty_repo(store, both, repo, tmp_path):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), both)

    result = publisher.publish(str(repo), {})

    assert result.removed == (ALPHA, BETA)
    assert not list(repo.glob("*.rpm")) and primary(repo) == {}
    assert dnf_list(f"file://{repo}", tmp_path) == []


@pytest.mark.parametrize("name", [
    "../evil.rpm", "../../etc/evil.rpm", "sub/x.rpm", "/tmp/x.rpm", ".hidden.rpm", "-rf.rpm",
    "a..b.rpm", "x.txt", "x.rpm.txt", ".rpm", "a b.rpm", "x\n.rpm", "x\0.rpm", "ä.rpm", "",
    "a" * 300 + ".rpm"])
def test_a_crafted_name_is_refused_with_nothing_changed(store, both, repo, tmp_path, name):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), {ALPHA: both[ALPHA]})
    before, outside = listing(repo), listing(tmp_path / "repos")

    with pytest.raises(BadInput) as caught:
        publisher.publish(str(repo), {BETA: both[BETA], name: both[BETA]})

    assert "not a valid RPM file name" in str(caught.value) and caught.value.hint
    assert listing(repo) == before and listing(tmp_path / "repos") == outside


@pytest.mark.parametrize("sha256", ["../../../etc/passwd", "ABC", "0" * 63, "g" * 64, "A" * 64])
def test_a_malformed_digest_is_refused(store, repo, sha256):
    with pytest.raises(BadInput, match="not a sha256 digest"):
        CreaterepoPublisher(store).publish(str(repo), {ALPHA: sha256})
    assert not repo.exists()


def test_a_missing_artifact_names_the_digest_and_changes_nothing(store, both, repo):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), {ALPHA: both[ALPHA]})
    before = listing(repo)
    absent = "ab" * 32

    with pytest.raises(BackendError) as caught:
        publisher.publish(str(repo), {BETA: both[BETA], "gamma-1-1.x86_64.rpm": absent})

    assert absent in caught.value.message and "gamma-1-1.x86_64.rpm" in caught.value.message
    assert "rebuild" in caught.value.hint
    assert listing(repo) == before


def test_a_createrepo_failure_keeps_command_status_output_and_old_metadata(store, both, repo, tmp_path):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), {ALPHA: both[ALPHA]})
    junk = tmp_path / "junk.rpm"
    junk.write_bytes(b"not an rpm at all\n")
    bad = store.put(str(junk)).sha256

    with pytest.raises(BackendError) as caught:
        publisher.publish(str(repo), {ALPHA: both[ALPHA], "junk-1-1.x86_64.rpm": bad})

    error = caught.value
    assert error.command[0] == "createrepo_c" and str(repo) in error.command
    assert error.status == 2 and "junk-1-1.x86_64.rpm" in error.output
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64"]
    # fixed by publishing without the junk: metadata is rebuilt, junk removed
    result = publisher.publish(str(repo), {ALPHA: both[ALPHA]})
    assert result.changed and result.removed == ("junk-1-1.x86_64.rpm",)
    assert primary(repo) == {ALPHA: both[ALPHA]}


def test_strays_are_removed_planted_symlinks_replaced_and_directories_kept_out(store, both, repo, tmp_path):
    secret = tmp_path / "secret.rpm"
    secret.write_text("do not touch\n")
    repo.mkdir(parents=True)
    (repo / "stray-1-1.x86_64.rpm").write_text("junk")
    (repo / "README").write_text("junk")
    (repo / ALPHA).symlink_to(secret)
    (repo / "sub").mkdir()
    shutil.copy(store.path(both[BETA]), repo / "sub" / "gamma-1-1.x86_64.rpm")

    result = CreaterepoPublisher(store).publish(str(repo), both)

    assert result.removed == ("README", "stray-1-1.x86_64.rpm")
    assert not (repo / ALPHA).is_symlink() and os.path.samefile(repo / ALPHA, store.path(both[ALPHA]))
    assert secret.read_text() == "do not touch\n"
    assert (repo / "sub" / "gamma-1-1.x86_64.rpm").exists(), "directories are never deleted"
    assert primary(repo) == both, "--pkglist keeps anything else out of the metadata"


def test_leftovers_of_an_interrupted_publish_are_cleared(store, both, repo):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), both)
    (repo / ".repodata").mkdir()  # what createrepo_c's own swap leaves
    (repo / "repodata.old.123.456").mkdir()
    (repo / ".repodata-new").mkdir()  # sluice's next metadata, never swapped in
    (repo / ".repodata-new" / "repomd.xml").write_text("half")
    (repo / ".repodata-old").mkdir()
    (repo / ".metadata-cache" / ".ab.tmp").write_text("half")
    (repo / f".incoming-{BETA}").write_text("half")
    (repo / ".published").unlink()  # as if the publish had died before finishing

    result = publisher.publish(str(repo), both)

    assert result.changed and result.added == ()
    assert sorted(p.name for p in repo.iterdir()) == [".linked", ".lock", ".metadata-cache", ".published", ALPHA, BETA,
                                                      "repodata"]
    assert sorted(p.name for p in (repo / ".metadata-cache").iterdir()) == sorted({both[ALPHA][:2],
                                                                                   both[BETA][:2]})
    assert primary(repo) == both


# ------------------------------------------------------------------ signing

def fake_signature(repomd: bytes) -> bytes:
    return b"-----FAKE SIGNATURE " + hashlib.sha256(repomd).hexdigest().encode() + b"\n"


def pair_matches(folder: Path) -> bool:
    return (folder / "repomd.xml.asc").read_bytes() == fake_signature((folder / "repomd.xml").read_bytes())


def test_repomd_is_signed_before_the_swap_and_a_reader_never_sees_a_mismatch(store, both, repo, monkeypatch):
    """The signature is written into the new metadata before it goes live:
    checked at the swap itself, and by a reader polling the live pair while
    the publisher works (a slow signer widens any window there could be)."""
    live = repo / "repodata"
    signed, swaps = [], []

    def sign(path: str) -> bytes:
        assert not Path(path).is_relative_to(live), "signed after the new repomd.xml went live"
        assert not live.exists() or pair_matches(live), "the live pair changed before the swap"
        time.sleep(0.05)
        signed.append(path)
        return fake_signature(Path(path).read_bytes())

    real_swap = publisher_module.swap_in

    def checked_swap(stage: str, live_dir: str, old: str) -> None:
        swaps.append(pair_matches(Path(stage)))
        real_swap(stage, live_dir, old)
        swaps.append(pair_matches(Path(live_dir)))

    monkeypatch.setattr(publisher_module, "swap_in", checked_swap)
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), {ALPHA: both[ALPHA]}, sign=sign)
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                first, asc = (live / "repomd.xml").read_bytes(), (live / "repomd.xml.asc").read_bytes()
                again = (live / "repomd.xml").read_bytes()
            except FileNotFoundError as exc:
                seen.append(f"missing {exc.filename}")
                continue
            if first == again:  # not torn by a swap between the two reads
                seen.append("match" if asc == fake_signature(first) else "MISMATCH")
            time.sleep(0.001)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(8):
            assert publisher.publish(str(repo), [both, {ALPHA: both[ALPHA]}][n % 2], sign=sign).changed
    finally:
        stop.set()
        reader.join()

    assert len(signed) == 9 and swaps == [True] * 18
    assert seen and set(seen) == {"match"}, sorted(set(seen))
    assert primary(repo) == {ALPHA: both[ALPHA]} and pair_matches(live)


def test_a_missing_signature_is_written_and_a_failed_signer_changes_nothing(store, both, repo, tmp_path):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), both)  # the buildroot way: no signature
    live = repo / "repodata"
    assert not (live / "repomd.xml.asc").exists()
    calls = []

    def sign(path: str) -> bytes:
        calls.append(path)
        return fake_signature(Path(path).read_bytes())

    assert publisher.publish(str(repo), both, sign=sign).changed and pair_matches(live)
    assert publisher.publish(str(repo), both, sign=sign).changed is False and len(calls) == 1
    before = listing(repo)

    def broken(path: str) -> bytes:
        raise BackendError("gpg could not sign", "check the key")

    with pytest.raises(BackendError, match="gpg could not sign"):
        publisher.publish(str(repo), {ALPHA: both[ALPHA]}, sign=broken)
    after = listing(repo)
    assert {k: v for k, v in after.items() if not k.startswith(".metadata-cache")} == \
        {k: v for k, v in before.items() if not k.startswith(".metadata-cache")}, "the old pair and packages stay"
    assert pair_matches(live) and dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64", "beta-2.0-3.x86_64"]
    assert publisher.publish(str(repo), {ALPHA: both[ALPHA]}, sign=sign).removed == (BETA,)
    assert pair_matches(live) and primary(repo) == {ALPHA: both[ALPHA]}


def test_a_client_holding_the_previous_repomd_still_finds_its_metadata(store, both, repo):
    publisher = CreaterepoPublisher(store)
    publisher.publish(str(repo), {ALPHA: both[ALPHA]})
    first = (repo / "repodata" / "repomd.xml").read_bytes()
    publisher.publish(str(repo), both)
    second = (repo / "repodata" / "repomd.xml").read_bytes()
    publisher.publish(str(repo), {BETA: both[BETA]})

    third = (repo / "repodata" / "repomd.xml").read_bytes()
    names = {p.name for p in (repo / "repodata").iterdir()}
    assert metadata_files(second) <= names, "the previous generation's files are kept"
    assert names == metadata_files(second) | metadata_files(third) | {"repomd.xml"}, "and no older one"
    assert metadata_files(first) - metadata_files(second) - metadata_files(third)


def metadata_files(repomd: bytes) -> set[str]:
    return {h.get("href").split("/")[-1] for h in ET.fromstring(repomd).findall("repo:data/repo:location", REPO_NS)}


def test_a_publish_waits_for_the_repo_lock(store, both, repo):
    repo.mkdir(parents=True)
    done = threading.Event()
    with open(repo / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        worker = threading.Thread(target=lambda: (CreaterepoPublisher(store).publish(str(repo), both),
                                                  done.set()))
        worker.start()
        time.sleep(0.5)
        assert not done.is_set() and not list(repo.glob("*.rpm")), "published while the lock was held"
    worker.join(timeout=30)
    assert done.is_set() and primary(repo) == both


def test_two_processes_publishing_one_repo_leave_it_consistent(store, both, repo, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from backends.artifacts import FileArtifactStore
        from backends.publisher import CreaterepoPublisher
        publisher = CreaterepoPublisher(FileArtifactStore({store.root!r}))
        sets = [{{{ALPHA!r}: {both[ALPHA]!r}}}, {both!r}, {{{BETA!r}: {both[BETA]!r}}}]
        for n in range(12):
            publisher.publish({str(repo)!r}, sets[(n + int(sys.argv[1])) % 3])
    """)
    workers = [subprocess.Popen([sys.executable, "-c", script, str(n)], stderr=subprocess.PIPE, text=True)
               for n in range(2)]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], errors

    # whoever finished last, the metadata matches the files beside it
    files = {p.name for p in repo.glob("*.rpm")}
    assert files and set(primary(repo)) == files
    assert not (repo / ".repodata").exists() and not list(repo.glob(".incoming-*"))
    CreaterepoPublisher(store).publish(str(repo), both)
    assert dnf_list(f"file://{repo}", tmp_path) == ["alpha-1.0-1.x86_64", "beta-2.0-3.x86_64"]


def test_another_filesystem_gets_checked_copies(store, both):
    if os.stat("/dev/shm").st_dev == os.stat(store.root).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the store here; no EXDEV to provoke")
    other = Path(tempfile.mkdtemp(prefix="sluice-repo-", dir="/dev/shm"))
    try:
        publisher = CreaterepoPublisher(store)
        result = publisher.publish(str(other), both)
        assert result.added == (ALPHA, BETA)
        for name, sha256 in both.items():
            copy, source = os.stat(other / name), os.stat(store.path(sha256))
            assert copy.st_ino != source.st_ino and copy.st_mtime_ns == source.st_mtime_ns
            assert (other / name).read_bytes() == Path(store.path(sha256)).read_bytes()
        assert primary(other) == both
        assert publisher.publish(str(other), both).changed is False
    finally:
        shutil.rmtree(other)


# ------------------------------------------------------------------ serving

def fetch(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    """A raw request: http.client sends the path exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_server_serves_a_published_repo_to_dnf(store, both, repo, tmp_path, capfd):
    CreaterepoPublisher(store).publish(str(repo), both)
    with RepoServer(str(tmp_path / "repos")) as server:
        status, body = fetch(server.port, "/f40/buildroot/repodata/repomd.xml")
        assert status == 200 and body == (repo / "repodata" / "repomd.xml").read_bytes()
        assert server.url("f40/buildroot/") == f"http://127.0.0.1:{server.port}/f40/buildroot/"
        assert dnf_list(server.url("f40/buildroot/"), tmp_path) == ["alpha-1.0-1.x86_64",
                                                                     "beta-2.0-3.x86_64"]
    assert "GET" not in capfd.readouterr().err, "request lines must not reach stderr"


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/f40/%2e%2e/%2e%2e/secret.txt", "/f40/..%2f..%2fsecret.txt",
    "/..%2fsecret.txt", "//secret.txt", "/f40/buildroot/.lock", "/f40/buildroot/.published",
    "/f40/buildroot/", "/f40/escape/secret.txt"])
def test_the_server_refuses_what_is_outside_the_root_or_private(store, both, repo, tmp_path, path):
    CreaterepoPublisher(store).publish(str(repo), both)
    (tmp_path / "secret.txt").write_text("private key material\n")
    (tmp_path / "repos" / "f40" / "escape").symlink_to(tmp_path)
    with RepoServer(str(tmp_path / "repos")) as server:
        status, body = fetch(server.port, path)
    assert status == 404, (path, status)
    assert b"private key material" not in body and b".lock" not in body


def test_the_server_is_read_only_and_stops(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    server = RepoServer(str(tmp_path))
    port = server.start()
    assert server.start() == port
    assert fetch(port, "/file.txt", "HEAD")[0] == 200
    for method in ("PUT", "POST", "DELETE"):
        assert fetch(port, "/file.txt", method)[0] == 501
    assert (tmp_path / "file.txt").read_text() == "x"
    server.stop()
    with pytest.raises(OSError):
        fetch(port, "/file.txt")
    server.stop()  # stopping twice is harmless


def test_a_stage_server_serves_that_stage_only(tmp_path):
    import urllib.error
    import urllib.request
    from backends.reposerver import RepoServer
    for stage in ("buildroot", "testing"):
        (tmp_path / "f41" / stage).mkdir(parents=True)
        (tmp_path / "f41" / stage / "file.txt").write_text(stage)
    with RepoServer(str(tmp_path), stage="buildroot") as server:
        assert urllib.request.urlopen(server.url("f41/buildroot/file.txt")).read() == b"buildroot"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.url("f41/testing/file.txt"))
        assert refused.value.code == 404


def test_extra_metadata_is_listed_in_repomd_and_follows_its_content(store, both, repo):
    publisher = CreaterepoPublisher(store)
    xml = b'<?xml version="1.0" encoding="UTF-8"?>\n<updates/>\n'
    publisher.publish(str(repo), both)
    before = listing(repo)
    for kind, data in (("primary", xml), ("Update Info", xml), ("updateinfo", "text")):
        with pytest.raises(BadInput):
            publisher.publish(str(repo), both, extra={kind: data})
    assert listing(repo) == before

    assert publisher.publish(str(repo), both, extra={"updateinfo": xml}).changed  # same packages, new file
    repomd = ET.parse(repo / "repodata/repomd.xml").getroot()
    ns = {"r": "http://linux.duke.edu/metadata/repo"}
    [data] = [d for d in repomd.findall("r:data", ns) if d.get("type") == "updateinfo"]
    href = data.find("r:location", ns).get("href")
    blob = (repo / href).read_bytes()
    assert gzip.decompress(blob) == xml
    assert data.findtext("r:checksum", namespaces=ns) == hashlib.sha256(blob).hexdigest()
    assert data.findtext("r:open-checksum", namespaces=ns) == hashlib.sha256(xml).hexdigest()
    assert primary(repo) == both
    assert not publisher.publish(str(repo), both, extra={"updateinfo": xml}).changed
    assert publisher.publish(str(repo), both).changed  # and gone again when not asked for
    assert b"updateinfo" not in (repo / "repodata/repomd.xml").read_bytes()
