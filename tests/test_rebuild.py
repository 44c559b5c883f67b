"""`sluice publish TARGET --from-manifest N --into DIR` with real parts: the
local builder, gpg, rpmsign, createrepo_c, and Debian's dnf installing from
the rebuilt repo with gpgcheck=1 and repo_gpgcheck=1."""
from __future__ import annotations

import os

from backends.base import sha256_file
from backends.gitstore import GitStateStore
from tests.conftest import BOB, tree_files
from tests.test_release import (dnf_install, manifests, release, repos, signed,  # noqa: F401 (fixture)
                                to_stable)
from tests.test_signing import checksig, gnupg, queue, store_path  # noqa: F401 (fixtures)


def test_a_stable_repo_is_rebuilt_as_an_older_manifest_lists_it_without_touching_the_published_one(
        release, make_srpm, isolated, tmp_path):  # noqa: F811
    older, newer = signed(release, make_srpm("rollme", "1.0", "1"), make_srpm("rollme", "2.0", "1"))
    to_stable(release, older)
    to_stable(release, newer)
    history = manifests(release, "stable")
    first = min(history)
    assert [len(history[n]["packages"]) for n in sorted(history)] == [1, 2]
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    published = sorted(p.name for p in (repos(isolated) / "stable").glob("*.rpm"))

    into = tmp_path / "rollback"
    done = release("--json", "publish", "default", "--stage", "stable", "--from-manifest", "1", "--into", str(into))
    assert done.code == 0, done.err
    rebuilt = into / "default" / "stable"
    assert done.json["manifest"] == first[:-len(".json")] and done.json["repo_dir"] == str(rebuilt)
    # the package set, byte for byte: each file is the sha256 the manifest names, signed as it says
    listed = {p["name"]: p for p in history[first]["packages"]}
    assert {p.name: sha256_file(str(p)) for p in rebuilt.glob("*.rpm")} == \
        {name: p["sha256"] for name, p in listed.items()}
    key_file = into / "default" / "RPM-GPG-KEY-sluice-default"
    for name in listed:
        assert checksig(rebuilt / name, key_file).returncode == 0
    assert (rebuilt / "repodata/repomd.xml.asc").exists()
    assert tree_files(store) == before  # no manifest, no event: the state is untouched
    assert sorted(p.name for p in (repos(isolated) / "stable").glob("*.rpm")) == published

    text = release("publish", "default", "--from-manifest", first[:-len(".json")], "--into", str(into))
    assert text.code == 0 and "(already so)" in text.out, text.err
    assert f"baseurl=file://{into}/default/stable/" in text.out and "[sluice-default-stable-" in text.out
    stanza = text.out[text.out.index("[sluice-"):]
    installed = dnf_install(release, "rollme", tmp_path, stanza=stanza)
    assert installed.returncode == 0 and installed.nevr.startswith("rollme-1.0-1"), \
        installed.stdout + installed.stderr
    assert dnf_install(release, "rollme", tmp_path).nevr.startswith("rollme-2.0-1")  # the published repo


def test_a_rebuild_refuses_what_it_cannot_do_exactly_and_writes_nothing(release, make_srpm, isolated,
                                                                        tmp_path):  # noqa: F811
    [build] = signed(release, make_srpm("partial", "1.0", "1"))
    to_stable(release, build)
    [package] = next(iter(manifests(release, "stable").values()))["packages"]
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    into = tmp_path / "out"

    def refused(*argv: str, user=None) -> str:
        result = release("publish", *argv, user=user)
        assert result.code in (2, 3), (argv, result.code, result.err)
        assert not (into / "default").exists() and tree_files(store) == before
        return f"{result.code} {result.err}"

    base = ("default", "--from-manifest", "1", "--into", str(into))
    assert "--into" in refused("default", "--from-manifest", "1")
    assert "--from-manifest" in refused("--into", str(into))
    assert refused(*base, user=BOB).startswith("3 ")
    assert "no manifest '7'" in refused("default", "--from-manifest", "7", "--into", str(into))
    assert "no manifest" in refused("default", "--stage", "testing", "--from-manifest", "3", "--into", str(into))
    assert "inside the published repos" in refused("default", "--from-manifest", "1", "--into",
                                                   str(repos(isolated)))
    (into / "default" / "stable").mkdir(parents=True)
    (into / "default" / "stable" / "notes.txt").write_text("mine\n")
    assert "new or empty directory" in release("publish", *base).err
    assert (into / "default" / "stable" / "notes.txt").exists()
    (into / "default" / "stable" / "notes.txt").unlink()
    (into / "default" / "stable").rmdir()
    (into / "default").rmdir()

    stored = store_path(isolated, package["sha256"])
    os.chmod(stored.parent, 0o755)
    for link in (repos(isolated) / "stable" / package["name"], repos(isolated) / "testing" / package["name"]):
        if link.exists():
            link.unlink()
    stored.unlink()  # the signed RPM is gone from this machine's store
    missing = refused(*base)
    assert missing.startswith("2 ") and package["name"] in missing and package["sha256"][:12] in missing
    assert "nothing was written" in missing


def test_a_manifest_is_found_by_number_or_name(release, make_srpm, isolated, tmp_path):  # noqa: F811
    from app import manifests as found
    [build] = signed(release, make_srpm("findme", "1.0", "1"))
    to_stable(release, build)
    snap = GitStateStore.open(release.repo).snapshot()
    [name] = manifests(release, "stable")
    for which in ("1", "00000001", name, name[:-len(".json")]):
        assert found.find(snap, "default", "stable", which)[0] == name[:-len(".json")]
