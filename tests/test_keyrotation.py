"""`sluice key rotate` with the real gpg, rpmsign, createrepo_c and dnf: RPMs
signed by the retired key keep installing with gpgcheck=1 and
repo_gpgcheck=1 from a repo whose repomd.xml the new key signs, and the
retired key never signs again."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL
from tests.test_release import ARCH, DAVE, dnf_install, release, repos, signed  # noqa: F401 (fixture)
from tests.test_signing import gnupg, phrase_file, queue  # noqa: F401 (fixtures)


def key_file_keys(path: Path) -> list[str]:
    """The fingerprints of the public keys in a key file, as gpg reads it."""
    shown = subprocess.run(["gpg", "--show-keys", "--with-colons", str(path)], capture_output=True, text=True,
                           check=True).stdout
    found, primary = [], False
    for line in shown.splitlines():
        if line.startswith("fpr:") and primary:
            found.append(line.split(":")[9])
        primary = line.startswith("pub:")
    return found


def repomd_signer(folder: Path, key_file: Path) -> str:
    home = tempfile.mkdtemp(prefix="sv-", dir="/tmp")
    try:
        subprocess.run(["gpg", "--homedir", home, "--batch", "--import", str(key_file)], check=True,
                       capture_output=True)
        status = subprocess.run(["gpg", "--homedir", home, "--batch", "--status-fd", "1", "--verify",
                                 str(folder / "repodata/repomd.xml.asc"), str(folder / "repodata/repomd.xml")],
                                capture_output=True, text=True).stdout
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={"GNUPGHOME": home}, capture_output=True)
        subprocess.run(["rm", "-rf", home])
    return next(line.split()[2] for line in status.splitlines() if line.startswith("[GNUPG:] VALIDSIG"))


def test_a_rotated_key_signs_from_now_on_and_what_the_old_one_signed_still_installs(
        release, make_srpm, isolated, tmp_path, phrase_file):  # noqa: F811
    [old_build] = signed(release, make_srpm("rotold", "1.0", "1"))
    assert release("push", "testing", old_build[:7], user=CAROL).code == 0
    old = release("--json", "key", "list").json[0]["fingerprint"]
    store = GitStateStore.open(release.repo)
    key_file = repos(isolated) / "RPM-GPG-KEY-sluice-default"
    assert key_file_keys(key_file) == [old]

    head = store.head()
    assert release("key", "rotate", "--target", "default", "--no-passphrase", "-m", "x", user=BOB).code == 3
    assert release("key", "rotate", "--target", "default", "--no-passphrase", "-m", " ").code == 2
    assert release("key", "rotate", "--target", "default", "--no-passphrase").code == 2  # -m is required
    assert release("target", "add", "keyless", "--arch", ARCH).code == 0
    assert release("key", "rotate", "--target", "keyless", "--no-passphrase", "-m", "x").code == 4
    assert store.snapshot().read("config/targets/default.toml") == store.snapshot(head).read(
        "config/targets/default.toml")

    rotated = release("--json", "key", "rotate", "--target", "default", "--passphrase-file", phrase_file,
                      "-m", "the old key expires in March")
    assert rotated.code == 0, rotated.err
    new = rotated.json["fingerprint"]
    assert new != old and rotated.json["retired"] == old and rotated.json["retired_in_repos"]
    assert rotated.json["resigned"] == ["testing", "stable"]
    config = store.snapshot().read("config/targets/default.toml").decode()
    assert f'signing_key = "{new}"' in config and old in config.split("retired_keys")[1]
    log = subprocess.run(["git", "-C", release.repo, "log", "-1", "--format=%ae%n%B", "refs/sluice/state"],
                         capture_output=True, text=True).stdout
    assert log.startswith(f"{ALICE.email}\nkey: rotate the signing key of target default")
    for line in ("the old key expires in March", "Sluice-Op: key-rotate", f"Sluice-Key: {new}",
                 f"Sluice-Retired: {old}"):
        assert line in log, log
    listed = {k["fingerprint"]: k for k in release("--json", "key", "list").json if k["target"] == "default"}
    assert (listed[new]["status"], listed[old]["status"], listed[old]["in_repos"]) == ("current", "retired", True)
    assert "retired, in the repos" in release("key", "list").out

    # the old key's RPM, the new key's repomd.xml.asc, a key file with both: dnf installs it
    assert sorted(key_file_keys(key_file)) == sorted([new, old])
    assert repomd_signer(repos(isolated) / "testing", key_file) == new
    installed = dnf_install(release, "rotold", tmp_path, stage="testing")
    assert installed.returncode == 0 and installed.installed, installed.stdout + installed.stderr

    # the retired key never signs again: a new build is signed by the new key (and needs its passphrase)
    [new_build] = signed_with(release, make_srpm("rotnew", "1.0", "1"), phrase_file)
    artifacts = release("--json", "show", new_build).json["artifacts"]
    assert {a["signed_by"] for a in artifacts if not a["name"].endswith(".src.rpm")} == {new}
    for argv, who in ((("push", "testing", new_build[:7], "--passphrase-file", phrase_file), CAROL),
                      (("mark-tested", new_build[:7]), DAVE),
                      (("push", "stable", new_build[:7], "--passphrase-file", phrase_file), ALICE)):
        result = release(*argv, user=who)
        assert result.code == 0, (argv, result.err)
    assert repomd_signer(repos(isolated) / "stable", key_file) == new

    # once no RPM of the old key is left in the repos, its public key leaves the key file
    assert release("--yes", "withdraw", old_build[:7], "-m", "replaced").code == 0
    assert release("publish", "--passphrase-file", phrase_file).code == 0
    assert key_file_keys(key_file) == [new]
    listed = {k["fingerprint"]: k for k in release("--json", "key", "list").json}
    assert listed[old]["in_repos"] is False
    assert dnf_install(release, "rotnew", tmp_path).installed


def signed_with(sluice, srpm, phrase: str) -> list[str]:
    from tests.test_signing import built_and_approved
    ids = built_and_approved(sluice, srpm)
    refused = sluice("sign", ids[0][:7], user=CAROL)  # no passphrase: the new key has one, the old none
    assert refused.code == 2 and "--passphrase-file" in refused.err
    assert sluice("sign", ids[0][:7], "--passphrase-file", phrase, user=CAROL).code == 0
    return ids


def test_a_retired_key_cannot_come_back_by_loading_a_target_file(release, tmp_path):  # noqa: F811
    old = release("--json", "key", "list").json[0]["fingerprint"]
    assert release("key", "rotate", "--target", "default", "--no-passphrase", "-m", "yearly").code == 0
    shown = release("target", "show", "default").out
    assert f"retired key: {old}" in shown
    back = tmp_path / "default.toml"
    back.write_text(f'arches = ["{ARCH}"]\nsigning_key = "{old}"\n')
    refused = release("target", "load", "default", str(back))
    assert refused.code == 2 and "retired" in refused.err
    back.write_text(f'arches = ["{ARCH}"]\n')  # a file without keys keeps them all
    assert release("target", "load", "default", str(back)).code == 0
    assert f"retired key: {old}" in release("target", "show", "default").out
