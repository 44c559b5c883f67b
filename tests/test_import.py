"""`sluice import`: a real upstream repo (rpmbuild, rpmsign with real gpg keys,
createrepo_c) served over http on 127.0.0.1, real rpmkeys checks, and the
admins' mail received by a real aiosmtpd server.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, tree_files
from tests import test_notify, test_repomerge
from tests.test_repomerge import createrepo

# fixtures shared with those tests: aiosmtpd, a queue that mails, an http mirror
smtp, mailing, http_root = test_notify.smtp, test_notify.mailing, test_repomerge.http_root


@pytest.fixture(scope="module")
def keys():
    """Two ed25519 signing keys in a short GnuPG home: trusted and stranger."""
    home = tempfile.mkdtemp(prefix="si-", dir="/tmp")
    gnupg = os.path.join(home, "g")
    os.mkdir(gnupg, 0o700)
    env = {**os.environ, "GNUPGHOME": gnupg}
    found = {}
    for who in ("trusted", "stranger"):
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{who} <{who}@upstream.example>",
                        "ed25519", "sign", "0"], env=env, check=True, capture_output=True)
        listing = subprocess.run(["gpg", "--with-colons", "--list-keys", f"{who}@upstream.example"], env=env,
                                 check=True, capture_output=True, text=True).stdout
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))
        public = Path(home) / f"{who}.asc"
        public.write_bytes(subprocess.run(["gpg", "--armor", "--export", fingerprint], env=env, check=True,
                                          capture_output=True).stdout)
        found[who] = (fingerprint, public)
    yield gnupg, found
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def put(folder: Path, srpm: Path, keys=None, signer: str | None = None) -> Path:
    """A copy of `srpm` in the upstream folder, signed by `signer` if given."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / srpm.name
    shutil.copy(srpm, copy)
    if signer:
        gnupg, found = keys
        subprocess.run(["rpmsign", "--addsign", "--define", f"_gpg_name {found[signer][0]}",
                        "--define", "__gpg /usr/bin/gpg", "--define", f"_gpg_path {gnupg}",
                        "--define", "_gpg_sign_cmd_extra_args --batch", str(copy)],
                       check=True, capture_output=True)
    return copy


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def admin_queue(mailing, keys):
    """An initialised queue (alice admin, bob owner) mailing through aiosmtpd,
    whose default target trusts the `trusted` key."""
    sluice, inbox, _ = mailing
    trusted = sluice("--json", "target", "trust", "default", str(keys[1]["trusted"][1]))
    assert trusted.code == 0, trusted.err
    assert trusted.json["fingerprint"] == keys[1]["trusted"][0]
    return sluice, inbox


def log(sluice) -> str:
    return subprocess.run(["git", "-C", sluice.repo, "log", "--format=%B", "refs/sluice/state"],
                          capture_output=True, text=True, check=True).stdout


def test_only_the_good_srpm_is_queued_the_others_refused_recorded_and_mailed(
        admin_queue, make_srpm, http_root, keys):
    sluice, inbox = admin_queue
    root, url = http_root
    upstream = root / "updates"
    put(upstream / "Packages", make_srpm("goodpkg", "2.0", "1"), keys, "trusted")
    tampered = put(upstream / "Packages", make_srpm("tamperpkg", "1.0", "1"), keys, "trusted")
    put(upstream / "Packages", make_srpm("unsignedpkg", "1.0", "1"))
    flip_last_byte(put(upstream / "Packages", make_srpm("badsigpkg", "1.0", "1"), keys, "trusted"))
    createrepo(upstream)
    as_signed = tampered.read_bytes()
    flip_last_byte(tampered)  # after createrepo_c: the metadata's checksum no longer matches

    result = sluice("--json", "import", f"{url}/updates")
    assert result.code == 1, result.err  # something was refused: cron must notice
    doc = result.json
    outcomes = {p["nevr"]: p for p in doc["packages"]}
    assert outcomes["goodpkg-2.0-1"]["outcome"] == "queued"
    assert outcomes["goodpkg-2.0-1"]["signed_by"] == keys[1]["trusted"][0]
    assert "checksum" in outcomes["tamperpkg-1.0-1"]["reason"]
    assert "unsigned" in outcomes["unsignedpkg-1.0-1"]["reason"]
    assert "changed after it was signed" in outcomes["badsigpkg-1.0-1"]["reason"]
    assert {p["outcome"] for n, p in outcomes.items() if n != "goodpkg-2.0-1"} == {"refused"}
    assert doc["counts"] == {"queued": 1, "skipped": 0, "replaced": 0, "refused": 3}

    listed = sluice("--json", "list").json
    assert [(b["nvr"], b["state"], b["owner"]) for b in listed] == [("goodpkg-2.0-1", "queued", ALICE.email)]
    assert listed[0]["id"] == outcomes["goodpkg-2.0-1"]["build"]
    shown = sluice("--json", "show", listed[0]["id"]).json
    srpm = next(a for a in shown["artifacts"] if a["arch"] == "src")
    assert srpm["name"] == "goodpkg-2.0-1.src.rpm"

    files = tree_files(GitStateStore.open(sluice.repo))
    [record] = [p for p in files if p.startswith("imports/default/")]
    assert record == f"imports/default/{doc['record']}.json"
    assert b"unsignedpkg-1.0-1" in files[record] and b"checksum" in files[record]
    history = log(sluice)
    assert "import into default from" in history and "1 queued" in history and "3 refused" in history

    [(to, mail)] = inbox.mails
    assert to == [ALICE.email] and mail["X-Sluice-Import"] == doc["record"]
    body = mail.get_payload(decode=True).decode()
    for words in ("tamperpkg-1.0-1", "unsignedpkg-1.0-1", "badsigpkg-1.0-1", "sluice target trust", "checksum"):
        assert words in body, words
    assert "goodpkg" not in body.split("Refused")[1].split("Also")[0]

    again = sluice("--json", "import", f"{url}/updates")
    assert again.code == 1
    assert again.json["counts"]["queued"] == 0 and again.json["seen"] == 1
    assert all(p.get("again") == doc["record"] for p in again.json["packages"])
    assert again.json["record"] is None and len(inbox.mails) == 1  # no new record, no second mail
    assert tree_files(GitStateStore.open(sluice.repo)) == files
    assert len(sluice("--json", "list").json) == 1

    tampered.write_bytes(as_signed)  # the mirror finished its sync
    healed = sluice("--json", "import", f"{url}/updates")
    assert {p["nevr"]: p["outcome"] for p in healed.json["packages"]}["tamperpkg-1.0-1"] == "queued"


def test_policy_skip_replace_an_untrusted_key_and_a_dry_run(admin_queue, make_srpm, http_root, keys, tmp_path):
    sluice, inbox = admin_queue
    root, url = http_root
    upstream = root / "os"
    for name in ("kernel", "openssl", "zlib"):
        put(upstream, make_srpm(name, "1.0", "1"), keys, "trusted")
    put(upstream, make_srpm("strangerpkg", "1.0", "1"), keys, "stranger")
    createrepo(upstream)
    shown = sluice("target", "show", "default").out
    target = GitStateStore.open(sluice.repo).snapshot().read("config/targets/default.toml").decode()
    assert keys[1]["trusted"][0] in shown
    config = tmp_path / "default.toml"
    config.write_text(target + '\n[import]\nkernel = "skip"\n"openss*" = "replace openssl-ours"\n')
    assert sluice("target", "load", "default", str(config)).code == 0

    before = tree_files(GitStateStore.open(sluice.repo))
    dry = sluice("--json", "import", f"{url}/os", "--dry-run")
    assert dry.code == 1 and dry.json["dry_run"] is True
    planned = {p["nevr"]: p for p in dry.json["packages"]}
    assert tree_files(GitStateStore.open(sluice.repo)) == before and inbox.mails == []
    assert sluice("--json", "list").json == []

    done = sluice("import", f"{url}/os")
    assert done.code == 1
    table = {line.split()[0]: line for line in done.out.splitlines()[1:-1]}
    assert "skipped" in table["kernel-1.0-1"] and "[import] kernel = skip" in table["kernel-1.0-1"]
    assert "replaced" in table["openssl-1.0-1"] and "openssl-ours" in table["openssl-1.0-1"]
    assert "queued" in table["zlib-1.0-1"]
    assert "refused" in table["strangerpkg-1.0-1"] and "does not trust" in table["strangerpkg-1.0-1"]
    assert planned["strangerpkg-1.0-1"]["outcome"] == "refused" and planned["zlib-1.0-1"]["outcome"] == "queued"
    assert [b["nvr"] for b in sluice("--json", "list").json] == ["zlib-1.0-1"]
    assert "strangerpkg-1.0-1" in inbox.mails[0][1].get_payload(decode=True).decode()

    assert sluice("target", "trust", "default", str(keys[1]["stranger"][1])).code == 0
    trusted_now = sluice("--json", "import", f"{url}/os")
    assert trusted_now.code == 0, trusted_now.err
    assert [p["nevr"] for p in trusted_now.json["packages"]] == ["strangerpkg-1.0-1"]  # skip/replace not repeated
    assert trusted_now.json["seen"] == 3


def test_refusals_before_anything_happens(admin_queue, sluice, make_srpm, http_root, keys, tmp_path):
    sluice, _ = admin_queue
    root, url = http_root
    put(root / "r", make_srpm("permpkg", "1.0", "1"), keys, "trusted")
    createrepo(root / "r")
    before = tree_files(GitStateStore.open(sluice.repo))
    not_admin = sluice("import", f"{url}/r", user=BOB)
    assert not_admin.code == 3 and "only admins" in not_admin.err
    assert sluice("target", "trust", "default", str(keys[1]["stranger"][1]), user=BOB).code == 3
    unreachable = sluice("import", "http://127.0.0.1:9/nothing")
    assert unreachable.code == 1 and "unreachable" in unreachable.err and "nothing was queued" in unreachable.err
    assert sluice("import", "ftp://example.org/repo").code == 2
    assert sluice("import", f"{url}/r", "--target", "nosuch").code == 2
    assert sluice("target", "add", "bare", "--arch", "x86_64").code == 0
    no_keys = sluice("import", f"{url}/r", "--target", "bare")
    assert no_keys.code == 2 and "sluice target trust bare" in no_keys.err
    secret = tmp_path / "secret.asc"
    secret.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")
    assert sluice("target", "trust", "default", str(secret)).code == 2
    assert sluice("target", "trust", "default", str(keys[1]["trusted"][1])).code == 4  # already trusted
    after = tree_files(GitStateStore.open(sluice.repo))
    assert {p for p in after if p not in before} == {"config/targets/bare.toml"}


def test_an_import_travels_with_sync(admin_queue, make_srpm, http_root, keys, tmp_path):
    sluice, _ = admin_queue
    root, url = http_root
    put(root / "s", make_srpm("syncpkg", "1.0", "1"), keys, "trusted")
    put(root / "s", make_srpm("syncunsigned", "1.0", "1"))
    createrepo(root / "s")
    assert sluice("import", f"{url}/s").code == 1
    other = str(tmp_path / "other.git")
    joined = sluice("sync", sluice.repo, repo_path=other)
    assert joined.code == 0, joined.err
    theirs = tree_files(GitStateStore.open(other))
    assert any(p.startswith("imports/default/") for p in theirs)
    assert f"config/keys/{keys[1]['trusted'][0]}.asc" in theirs
    assert [b["nvr"] for b in sluice("--json", "list", repo_path=other).json] == ["syncpkg-1.0-1"]
