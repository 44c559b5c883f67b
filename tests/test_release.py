"""The release path end to end with real parts: the embedded local builder,
gpg, rpmsign, createrepo_c and Debian's real dnf installing from the stable
repo with gpgcheck=1 and repo_gpgcheck=1, then refusing tampered repos."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from backends.base import Person
from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL, tree_files
from tests.test_signing import (SECRET, built_and_approved, gnupg, never_leaked, phrase_file,  # noqa: F401
                                queue, store_path)

DAVE = Person("Dave Tester", "dave@example.org")
ARCH = os.uname().machine


@pytest.fixture
def release(queue):  # noqa: F811
    """A queue with a tester who is not the owner and an unprotected target key."""
    assert queue("policy", "grant", "tester", DAVE.email).code == 0
    assert queue("key", "create", "--target", "default", "--no-passphrase").code == 0
    return queue


def repos(isolated: Path) -> Path:
    return isolated / ".local/share/sluice/repos/default"


def signed(sluice, *srpms) -> list[str]:
    ids = built_and_approved(sluice, *srpms)
    for build in ids:
        result = sluice("sign", build[:7], user=CAROL)
        assert result.code == 0, result.err
    return ids


def to_stable(sluice, build: str, in_testing: bool = False) -> None:
    steps = ((("push", "testing", build[:7]), CAROL), (("mark-tested", build[:7]), DAVE),
             (("push", "stable", build[:7]), ALICE))
    for argv, who in steps[1:] if in_testing else steps:
        result = sluice(*argv, user=who)
        assert result.code == 0, (argv, result.err)


def manifests(sluice, stage: str) -> dict[str, dict]:
    files = tree_files(GitStateStore.open(sluice.repo))
    prefix = f"repos/default/{stage}/manifests/"
    return {p[len(prefix):]: json.loads(d) for p, d in files.items() if p.startswith(prefix)}


def dnf_command(sluice, tmp_path: Path, stage: str = "stable", stanza: str | None = None) -> tuple[Path, list[str]]:
    """The real dnf with a fresh installroot, cache and config and no system
    repos, reading the .repo stanza `sluice repo-file` prints (or `stanza`):
    the folder and the command line up to the dnf subcommand."""
    work = Path(tempfile.mkdtemp(prefix="dnf-", dir=tmp_path))
    (work / "dnf.conf").write_text("[main]\n")
    for folder in ("repos.d", "log", "cache", "persist", "root"):
        (work / folder).mkdir()
    if stanza is None:
        printed = sluice("repo-file", "default", "--stage", stage)
        assert printed.code == 0, printed.err
        stanza = printed.out
    (work / "repos.d" / "sluice.repo").write_text(stanza)
    return work, ["dnf", "-y", f"--installroot={work}/root", f"--config={work}/dnf.conf",
                  f"--setopt=reposdir={work}/repos.d", f"--setopt=cachedir={work}/cache",
                  f"--setopt=logdir={work}/log", f"--setopt=persistdir={work}/persist",
                  "--setopt=skip_if_unavailable=False", "--setopt=install_weak_deps=False", "--noplugins",
                  "--releasever=sluice"]


def dnf_install(sluice, package: str, tmp_path: Path, stage: str = "stable",
                stanza: str | None = None) -> subprocess.CompletedProcess:
    """Install with the real dnf into a fresh installroot (see dnf_command).
    `.installed` says whether rpm finds it, `.nevr` what it found."""
    work, command = dnf_command(sluice, tmp_path, stage, stanza)
    result = subprocess.run([*command, "install", package], capture_output=True, text=True, timeout=300)
    query = subprocess.run(["rpm", "--root", f"{work}/root", "-q", package], capture_output=True, text=True)
    result.installed, result.nevr = query.returncode == 0, query.stdout.strip()
    return result


def test_submit_to_stable_then_dnf_installs_it_and_refuses_tampering(release, make_srpm, isolated, tmp_path,
                                                                     gnupg):  # noqa: F811
    [build] = signed(release, make_srpm("shipit", "1.0", "1"))
    fingerprint = release("--json", "key", "list").json[0]["fingerprint"]
    pushed = release("--json", "push", "testing", build[:7], user=CAROL)
    assert pushed.code == 0, pushed.err
    assert pushed.json[0]["state"] == "testing"
    rpm = f"shipit-1.0-1.{ARCH}.rpm"
    [first] = manifests(release, "testing").values()
    [package] = first["packages"]
    artifact = {a["name"]: a for a in release("--json", "show", build).json["artifacts"]}[rpm]
    assert package == {"name": rpm, "nevra": f"shipit-1.0-1.{ARCH}", "sha256": artifact["sha256"],
                       "signed_by": fingerprint, "build": build}
    assert (repos(isolated) / "testing" / rpm).stat().st_ino == store_path(isolated, artifact["sha256"]).stat().st_ino
    assert (repos(isolated) / "testing/repodata/repomd.xml.asc").read_bytes().startswith(b"-----BEGIN PGP SIGNATURE")

    assert release("mark-tested", build[:7], user=BOB).code == 3  # the owner may not test his own build
    to_stable(release, build, in_testing=True)
    assert [m["packages"] for m in manifests(release, "stable").values()] == [[package]]
    assert sorted(m["packages"] == [] for m in manifests(release, "testing").values()) == [False, True]
    assert not (repos(isolated) / "testing" / rpm).exists()
    log = subprocess.run(["git", "-C", release.repo, "log", "--format=%ae %s", "refs/sluice/state", "--",
                          "repos/default/stable"], capture_output=True, text=True).stdout
    assert log.strip() == f"{ALICE.email} publish: stable repo of default, 1 packages"

    before = tree_files(GitStateStore.open(release.repo))
    assert release("publish").out.strip() == "the repos already match the queue"
    shutil.rmtree(repos(isolated) / "stable")  # derived state: rebuilt, no new manifest
    assert release("publish", "default").code == 0
    assert tree_files(GitStateStore.open(release.repo)) == before

    installed = dnf_install(release, "shipit", tmp_path)
    assert installed.returncode == 0 and installed.installed, installed.stdout + installed.stderr

    stable = repos(isolated) / "stable"
    repomd = stable / "repodata/repomd.xml"
    good = repomd.read_bytes()
    repomd.write_bytes(good.replace(b"<revision>", b"<revision>1", 1))  # a tampered repomd.xml
    refused = dnf_install(release, "shipit", tmp_path)
    assert refused.returncode != 0 and not refused.installed
    assert "repomd.xml GPG signature verification error" in refused.stderr, refused.stderr
    repomd.write_bytes(good)

    published = stable / rpm
    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0xFF
    published.unlink()  # never write through the hard link into the artifact store
    published.write_bytes(bytes(data))
    refused = dnf_install(release, "shipit", tmp_path)
    assert refused.returncode != 0 and not refused.installed
    assert "incorrect checksum" in refused.stderr, refused.stderr
    assert store_path(isolated, artifact["sha256"]).read_bytes() != bytes(data)

    # an unsigned copy with metadata and repomd.xml.asc that match it: gpgcheck refuses it
    published.unlink()
    shutil.copyfile(_unsigned(release, build, rpm, isolated), published)
    subprocess.run(["createrepo_c", "--general-compress-type", "gz", "--no-database", str(stable)], check=True,
                   capture_output=True)
    subprocess.run(["gpg", "--homedir", gnupg, "--batch", "--yes", "--armor", "--detach-sign", "--local-user",
                    fingerprint, "--output", str(repomd) + ".asc", str(repomd)], check=True, capture_output=True)
    refused = dnf_install(release, "shipit", tmp_path)
    assert refused.returncode != 0 and not refused.installed
    assert "is not signed" in refused.stderr and "GPG check FAILED" in refused.stderr, refused.stderr

    healed = release("publish", user=CAROL)  # the repo is derived state: publish puts it right
    assert healed.code == 0 and "stable default" in healed.out, healed.err
    assert published.stat().st_ino == store_path(isolated, artifact["sha256"]).stat().st_ino
    assert dnf_install(release, "shipit", tmp_path).installed


def _unsigned(sluice, build: str, rpm: str, isolated: Path) -> Path:
    for event in sluice("--json", "show", build).json["events"]:
        for artifact in event.get("data", {}).get("artifacts", []) or []:
            if artifact["name"] == rpm and not artifact.get("signed_by"):
                return store_path(isolated, artifact["sha256"])
    raise AssertionError("no unsigned artifact")


def test_a_passphrase_protected_key_pushes_to_stable_and_a_wrong_passphrase_pushes_nothing(
        queue, make_srpm, isolated, tmp_path, phrase_file):  # noqa: F811
    assert queue("policy", "grant", "tester", DAVE.email).code == 0
    assert queue("key", "create", "--target", "default", "--passphrase-file", phrase_file).code == 0
    [build] = built_and_approved(queue, make_srpm("guarded", "1.0", "1"))
    results = [queue("sign", build[:7], "--passphrase-file", phrase_file, user=CAROL)]
    assert results[0].code == 0, results[0].err
    wrong = tmp_path / "wrong"
    wrong.write_text(SECRET[::-1] + "\n")
    store = GitStateStore.open(queue.repo)

    def refused(stage: str, state: str) -> None:
        before = tree_files(store)
        asked = queue("push", stage, build[:7], user=ALICE)  # stdin is not a terminal: nobody to ask
        assert asked.code == 2 and "--passphrase-file" in asked.err, asked.err
        mistyped = queue("push", stage, build[:7], "--passphrase-file", str(wrong), user=ALICE)
        assert mistyped.code == 1 and "wrong passphrase" in mistyped.err, mistyped.err
        assert tree_files(store) == before and queue("--json", "show", build).json["state"] == state
        assert not list((repos(isolated) / stage).glob("*.rpm"))
        results.extend((asked, mistyped))

    refused("testing", "signed")
    assert manifests(queue, "testing") == {}
    results.append(queue("push", "testing", build[:7], "--passphrase-file", phrase_file, user=CAROL))
    assert results[-1].code == 0, results[-1].err
    assert queue("mark-tested", build[:7], user=DAVE).code == 0
    refused("stable", "tested")
    assert manifests(queue, "stable") == {} and len(manifests(queue, "testing")) == 1
    results.append(queue("push", "stable", build[:7], "--passphrase-file", phrase_file))
    assert results[-1].code == 0, results[-1].err
    assert [len(m["packages"]) for m in manifests(queue, "stable").values()] == [1]
    results.append(queue("publish", "--passphrase-file", phrase_file))
    assert results[-1].out.strip() == "the repos already match the queue"

    installed = dnf_install(queue, "guarded", tmp_path)
    assert installed.returncode == 0 and installed.installed, installed.stdout + installed.stderr
    never_leaked(queue, isolated, (SECRET, SECRET[::-1]), results, b"guarded")


def test_pushing_needs_the_role_and_the_state(release, make_srpm, isolated):
    [build] = built_and_approved(release, make_srpm("gated", "1.0", "1"))
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    early = release("push", "testing", build[:7], user=CAROL)
    assert early.code == 4 and "needsign" in early.err
    assert release("sign", build[:7], user=CAROL).code == 0
    before = tree_files(store)
    refused = release("push", "testing", build[:7], user=BOB)
    assert refused.code == 3 and "signer" in refused.err
    assert release("push", "stable", build[:7]).code == 4  # signed, not tested
    assert tree_files(store) == before
    assert not (repos(isolated) / "testing").exists() or not list((repos(isolated) / "testing").glob("*.rpm"))


def test_an_unwritable_repo_directory_pushes_and_records_nothing(release, make_srpm, isolated):
    [build] = signed(release, make_srpm("nowrite", "1.0", "1"))
    (repos(isolated) / "testing").write_text("a file where the repo should be\n")
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    result = release("push", "testing", build[:7], user=CAROL)
    assert result.code == 2 and "cannot write the repo directory" in result.err and "repos" in result.err
    assert tree_files(store) == before
    assert release("--json", "show", build).json["state"] == "signed"


def test_stable_never_goes_back_to_an_older_nevr(release, make_srpm, isolated):
    newer, older = signed(release, make_srpm("downgrade", "2.0", "1"), make_srpm("downgrade", "1.0", "5"))
    to_stable(release, newer)
    for argv, who in ((("push", "testing", older[:7]), CAROL), (("mark-tested", older[:7]), DAVE)):
        assert release(*argv, user=who).code == 0
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    refused = release("push", "stable", older[:7])
    assert refused.code == 4
    assert "downgrade-1.0-5" in refused.err and "downgrade-2.0-1" in refused.err
    assert tree_files(store) == before
    assert sorted(p.name for p in (repos(isolated) / "stable").glob("*.rpm")) == [f"downgrade-2.0-1.{ARCH}.rpm"]


def test_repo_file_points_at_the_published_repo_and_key(release, isolated, tmp_path):
    stanza = release("repo-file", "default").out
    root = repos(isolated)
    assert f"baseurl=file://{root}/stable/" in stanza and "gpgcheck=1" in stanza and "repo_gpgcheck=1" in stanza
    assert f"gpgkey=file://{root}/RPM-GPG-KEY-sluice-default" in stanza
    assert "gpgcheck=0" in release("repo-file", "default", "--stage", "buildroot").out
    config = tmp_path / "config.toml"
    config.write_text('repos_url = "https://repos.example.org/sluice/"\n')
    served = release("--config", str(config), "repo-file", "default", "--stage", "testing").out
    assert "baseurl=https://repos.example.org/sluice/default/testing/" in served
    assert "gpgkey=https://repos.example.org/sluice/default/RPM-GPG-KEY-sluice-default" in served
    missing = release("repo-file", "nosuch")
    assert missing.code == 2 and "nosuch" in missing.err


def test_withdrawing_from_testing_unpushes_it_with_a_new_manifest(release, make_srpm, isolated):
    [build] = signed(release, make_srpm("recall", "1.0", "1"))
    assert release("push", "testing", build[:7], user=CAROL).code == 0
    rpm = repos(isolated) / "testing" / f"recall-1.0-1.{ARCH}.rpm"
    assert rpm.exists()
    withdrawn = release("--yes", "withdraw", build[:7], "-m", "broken on upgrade")  # alice: admin
    assert withdrawn.code == 0, withdrawn.err
    assert not rpm.exists()
    assert sorted(len(m["packages"]) for m in manifests(release, "testing").values()) == [0, 1]


def test_publishing_needs_a_signer_or_admin_and_changes_nothing_otherwise(release, isolated):
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    refused = release("publish", "default", user=BOB)
    assert refused.code == 3 and "only signers and admins" in refused.err
    assert release("publish", "nosuch").code == 2
    assert tree_files(store) == before and not (repos(isolated) / "stable").exists()
    first = release("publish", user=CAROL)  # empty repos dnf can read; an empty repo needs no manifest
    assert first.out.splitlines() == ["testing default: 0 packages (+0 -0)", "stable default: 0 packages (+0 -0)"]
    assert (repos(isolated) / "stable/repodata/repomd.xml.asc").exists() and tree_files(store) == before
    assert release("publish", user=CAROL).out.strip() == "the repos already match the queue"


def test_nevra_comes_from_the_checked_file_name_and_the_build_epoch():
    from app.release import nevra
    assert nevra("foo-doc-1.0~rc1-3.fc41.noarch.rpm", None) == "foo-doc-1.0~rc1-3.fc41.noarch"
    assert nevra("foo-1.0-3.x86_64.rpm", 2) == "foo-2:1.0-3.x86_64"
