"""Keys and `sluice sign` with the real gpg, rpmsign and rpmkeys: no doubles.

The RPMs are built for real by the embedded local builder (`sluice run
--once`), as in test_runner.py. The GnuPG home sits in a short folder under
/tmp, because gpg-agent's socket path must fit in 108 bytes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL, tree_files

SECRET = "correct horse battery staple 4711"


@pytest.fixture
def gnupg(monkeypatch):
    home = tempfile.mkdtemp(prefix="sg-", dir="/tmp")
    monkeypatch.setenv("SLUICE_GNUPGHOME", os.path.join(home, "g"))
    yield os.path.join(home, "g")
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": os.path.join(home, "g")},
                   capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def queue(sluice, gnupg):
    assert sluice("init").code == 0
    for role, who in (("owner", BOB), ("signer", CAROL)):
        assert sluice("policy", "grant", role, who.email).code == 0
    return sluice


@pytest.fixture
def phrase_file(tmp_path):
    path = tmp_path / "phrase"
    path.write_text(SECRET + "\n")
    return str(path)


def submit(sluice, srpm, *extra) -> str:
    result = sluice("--json", "submit", str(srpm), *extra, user=BOB)
    assert result.code == 0, result.err
    return result.json[0]["id"]


def built_and_approved(sluice, *srpms, batch: str | None = None, approve: bool = True) -> list[str]:
    ids = [submit(sluice, srpm, *(["--batch", batch] if batch else [])) for srpm in srpms]
    run = sluice("run", "--once")
    assert run.code == 0, run.err
    if approve:
        result = sluice("approve", ids[0][:7], user=BOB)
        assert result.code == 0, result.err
        if not batch:
            for other in ids[1:]:
                assert sluice("approve", other[:7], user=BOB).code == 0
    return ids


def store_path(isolated: Path, sha256: str) -> Path:
    return isolated / ".local/share/sluice/artifacts/sha256" / sha256[:2] / sha256


def checksig(path: Path, key: Path) -> subprocess.CompletedProcess:
    db = tempfile.mkdtemp(prefix="sluice-test-db-")
    try:
        subprocess.run(["rpmkeys", "--dbpath", db, "--import", str(key)], check=True, capture_output=True)
        return subprocess.run(["rpmkeys", "--dbpath", db, "--define", "_pkgverify_level signature",
                               "--checksig", str(path)], capture_output=True, text=True)
    finally:
        shutil.rmtree(db)


def test_a_built_rpm_is_signed_verified_and_shown_with_its_signer(queue, make_srpm, isolated, phrase_file, gnupg):
    created = queue("--json", "key", "create", "--target", "default", "--passphrase-file", phrase_file)
    assert created.code == 0, created.err
    fingerprint = created.json["fingerprint"]
    assert len(fingerprint) == 40 and created.json["algorithm"] == "ed25519"
    assert oct(os.stat(gnupg).st_mode & 0o777) == "0o700"
    key = isolated / ".local/share/sluice/repos/default/RPM-GPG-KEY-sluice-default"
    assert b"BEGIN PGP PUBLIC KEY BLOCK" in key.read_bytes()
    assert f"signing_key = \"{fingerprint}\"" in queue("target", "show", "default").out + \
        GitStateStore.open(queue.repo).snapshot().read("config/targets/default.toml").decode()

    [build] = built_and_approved(queue, make_srpm("signme", "1.0", "1"))
    unsigned = {a["name"]: a for a in queue("--json", "show", build).json["artifacts"]}
    signed = queue("--json", "sign", build[:7], "--passphrase-file", phrase_file, user=CAROL)
    assert signed.code == 0, signed.err
    assert signed.json[0]["state"] == "signed"

    shown = queue("--json", "show", build).json
    rpm = f"signme-1.0-1.{os.uname().machine}.rpm"
    artifact = {a["name"]: a for a in shown["artifacts"]}[rpm]
    assert artifact["signed_by"] == fingerprint and artifact["sha256"] != unsigned[rpm]["sha256"]
    assert {a["name"]: a for a in shown["artifacts"]}["signme-1.0-1.src.rpm"]["signed_by"] is None
    sign_events = [e for e in shown["events"] if e["op"] == "sign"]
    assert len(sign_events) == 1 and sign_events[0]["data"]["key"] == fingerprint
    path = store_path(isolated, artifact["sha256"])
    assert checksig(path, key).returncode == 0
    assert checksig(store_path(isolated, unsigned[rpm]["sha256"]), key).returncode != 0  # unsigned stays
    # the buildroot repo keeps the RPMs as built: every builder has those
    assert (isolated / ".local/share/sluice/repos/default/buildroot" / rpm).stat().st_ino == \
        store_path(isolated, unsigned[rpm]["sha256"]).stat().st_ino


def test_the_passphrase_never_leaks(queue, make_srpm, isolated, phrase_file, tmp_path):
    assert queue("key", "create", "--target", "default", "--passphrase-file", phrase_file).code == 0
    [build] = built_and_approved(queue, make_srpm("secretive", "1.0", "1"))
    wrong = tmp_path / "wrong"
    wrong.write_text(SECRET[::-1] + "\n")
    failed = queue("sign", build[:7], "--passphrase-file", str(wrong), user=CAROL)
    signed = queue("sign", build[:7], "--passphrase-file", phrase_file, user=CAROL)
    assert failed.code == 1 and signed.code == 0, signed.err
    shown = queue("--json", "show", build)
    never_leaked(queue, isolated, (SECRET, SECRET[::-1]), (failed, signed, shown), b"secretive")


def test_the_passphrase_reaches_gpg_through_a_pipe_never_a_file(queue, make_srpm, phrase_file, tmp_path,
                                                                   monkeypatch):
    """An rpmsign on PATH that notes what kind of file it was told to give gpg
    as --passphrase-file, then runs the real rpmsign."""
    real = shutil.which("rpmsign")
    shims, seen = tmp_path / "shims", tmp_path / "seen"
    shims.mkdir()
    (shims / "rpmsign").write_text(
        "#!/bin/sh\nfor arg in \"$@\"; do case $arg in *--passphrase-file*)\n"
        "  stat -c %F \"${arg##*--passphrase-file }\" >> " + str(seen) + " ;; esac; done\n"
        f"exec {real} \"$@\"\n")
    (shims / "rpmsign").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    assert queue("key", "create", "--target", "default", "--passphrase-file", phrase_file).code == 0
    [build] = built_and_approved(queue, make_srpm("piped", "1.0", "1"))
    signed = queue("sign", build[:7], "--passphrase-file", phrase_file, user=CAROL)
    assert signed.code == 0, signed.err
    kinds = seen.read_text().split("\n")
    assert kinds[0] == "fifo" and set(filter(None, kinds)) == {"fifo"}


def never_leaked(sluice, isolated: Path, secrets, results, known: bytes) -> None:
    """No secret in the commands' output, any git object, or any file sluice
    keeps outside its GnuPG home (logs, artifacts, repos, the index);
    `known` must be found in the objects, so the check reads real content."""
    objects = subprocess.run(["git", "-C", sluice.repo, "cat-file", "--batch-all-objects", "--batch"],
                             capture_output=True, check=True).stdout
    assert known in objects
    files = [p for p in (isolated / ".local/share/sluice").rglob("*")
             if p.is_file() and not p.is_symlink() and "gnupg" not in p.parts]
    assert files
    for secret in secrets:
        for result in results:
            assert secret not in result.out and secret not in result.err
        assert secret.encode() not in objects
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
    assert not list(Path(tempfile.gettempdir()).glob("sluice-sign-*/passphrase"))


def test_a_wrong_passphrase_signs_nothing_and_writes_nothing(queue, make_srpm, isolated, phrase_file, tmp_path):
    assert queue("key", "create", "--target", "default", "--passphrase-file", phrase_file).code == 0
    [build] = built_and_approved(queue, make_srpm("wrongpass", "1.0", "1"))
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    store = isolated / ".local/share/sluice/artifacts/sha256"
    files_before = sorted(p.name for p in store.rglob("*") if p.is_file())
    before = tree_files(GitStateStore.open(queue.repo))
    result = queue("sign", build[:7], "--passphrase-file", str(wrong), user=CAROL)
    assert result.code == 1 and "wrong passphrase" in result.err and "nothing was signed" in result.err
    assert tree_files(GitStateStore.open(queue.repo)) == before
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == files_before
    assert queue("--json", "show", build).json["state"] == "needsign"


def test_a_key_without_passphrase_signs_unattended_and_rsa_is_offered(queue, make_srpm, isolated):
    created = queue("--json", "key", "create", "--target", "default", "--no-passphrase")
    assert created.code == 0, created.err
    assert queue("key", "create", "--target", "default", "--no-passphrase").code == 4  # one key per target
    [build] = built_and_approved(queue, make_srpm("unattended", "1.0", "1"))
    result = queue("sign", build[:7], user=CAROL)
    assert result.code == 0, result.err and "signed" in result.out
    assert queue("--json", "show", build).json["state"] == "signed"


def test_who_may_sign_and_what(queue, make_srpm):
    assert queue("key", "create", "--target", "default", "--no-passphrase").code == 0
    assert queue("key", "create", "--target", "other", "--no-passphrase").code == 2  # no such target
    denied = queue("key", "create", "--target", "default", "--no-passphrase", user=BOB)
    assert denied.code == 3 and "only admins" in denied.err
    first, second = built_and_approved(queue, make_srpm("gate", "1.0", "1"), make_srpm("gate2", "1.0", "1"),
                                       approve=False)
    assert queue("approve", first[:7], user=BOB).code == 0
    not_signer = queue("sign", first[:7], user=BOB)
    assert not_signer.code == 3 and "signer" in not_signer.err
    not_ready = queue("sign", second[:7], user=CAROL)
    assert not_ready.code == 4 and "it is built" in not_ready.err
    both = queue("sign", first[:7], second[:7], user=CAROL)  # all named builds are checked first
    assert both.code == 4 and queue("--json", "show", first).json["state"] == "needsign"
    not_signer_all = queue("sign", "--all", user=BOB)  # never "nothing to sign" for someone who may not
    assert not_signer_all.code == 3 and "signer" in not_signer_all.err
    everything = queue("--json", "sign", "--all", user=CAROL)
    assert everything.code == 0 and [v["id"] for v in everything.json] == [first]


def test_a_batch_is_signed_whole_or_not_at_all(queue, make_srpm):
    assert queue("key", "create", "--target", "default", "--no-passphrase").code == 0
    liba, libb = built_and_approved(queue, make_srpm("liba", "2.0", "1"), make_srpm("libb", "1.0", "2"),
                                    batch="abi")
    assert queue("hold", libb[:7], "-m", "not yet", user=BOB).code == 0
    before = tree_files(GitStateStore.open(queue.repo))
    refused = queue("sign", liba[:7], user=CAROL)
    assert refused.code == 4 and "libb-1.0-2" in refused.err and "held" in refused.err
    assert tree_files(GitStateStore.open(queue.repo)) == before
    assert queue("unhold", libb[:7], user=BOB).code == 0
    signed = queue("--json", "sign", liba[:7], user=CAROL)
    assert signed.code == 0 and {v["id"] for v in signed.json} == {liba, libb}
    log = subprocess.run(["git", "-C", queue.repo, "log", "-1", "--format=%B", "refs/sluice/state"],
                         capture_output=True, text=True).stdout
    assert log.count("Sluice-Build:") == 2  # one commit for the batch


def test_missing_keys_and_passphrases_are_clear_errors(queue, make_srpm, gnupg, phrase_file):
    [build] = built_and_approved(queue, make_srpm("keyless", "1.0", "1"))
    no_key = queue("sign", build[:7], user=CAROL)
    assert no_key.code == 2 and "sluice key create --target default" in no_key.err
    assert queue("key", "create", "--target", "default", "--passphrase-file", phrase_file).code == 0
    no_phrase = queue("sign", build[:7], user=CAROL)  # stdin is not a terminal: no prompt
    assert no_phrase.code == 2 and "--passphrase-file" in no_phrase.err
    shutil.rmtree(gnupg)  # another machine: the key is not here
    elsewhere = queue("sign", build[:7], user=CAROL)
    assert elsewhere.code == 2 and "not on this machine" in elsewhere.err
    assert queue("--json", "show", build).json["state"] == "needsign"


def test_key_list_warns_about_a_key_that_expires_soon(queue, gnupg):
    assert queue("target", "add", "soon", "--arch", "x86_64").code == 0
    assert queue("key", "create", "--target", "default", "--no-passphrase", "--rsa").code == 0
    assert queue("key", "create", "--target", "soon", "--no-passphrase", "--expires", "10d").code == 0
    listed = queue("--json", "key", "list")
    assert listed.code == 0
    keys = {k["target"]: k for k in listed.json}
    assert keys["default"]["algorithm"].startswith("rsa4096") and keys["default"]["warning"] is None
    assert keys["soon"]["days_left"] in (9, 10) and "expires on" in keys["soon"]["warning"]
    text = queue("key", "list")
    assert "warning: the signing key" in text.err and "of target soon expires" in text.err
    assert "of target default" not in text.err and keys["default"]["fingerprint"] in text.out
    assert queue("key", "create", "--target", "default", "--expires", "soon").code == 2
