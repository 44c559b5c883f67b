"""Signed history with the real gpg, real git repos and a real `git push`:
commits signed with each person's own key, sync refusing what the policy
does not allow, `sluice verify`, and the pre-receive hook on a bare repo.

The keys are ed25519 without passphrase (`%no-protection`, made in ~0.1 s)
in a GnuPG home under /tmp (gpg-agent's socket path must fit in 108 bytes);
GNUPGHOME points there, so sluice, git and gpg all read the same keyring.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from app import builds, trust
from app.actions import Action
from app.errors import HistoryRefused, NotPermitted, UsageError
from app.gate import Gate
from app.model import Op
from app.queue import make_event
from app.sync import Syncer
from backends.commitsign import GnupgCommitSigner, GnupgCommitVerifier
from backends.gitstore import STATE_REF
from backends.gitsync import GitCliTransport, GitMerger
from tests.conftest import ALICE, BOB, MALLORY, forge, tree_files

KEY = """\
Key-Type: EDDSA
Key-Curve: ed25519
Key-Usage: sign
{protection}
Name-Real: {name}
Name-Email: {email}
Expire-Date: 0
%commit
"""
SECRET = "tr0ub4dor & 3 passphrase 9931"


@dataclass
class Keys:
    home: str
    fpr: dict[str, str]  # email -> fingerprint


def make_keys(home: str, people, passphrase: str | None = None) -> dict[str, str]:
    protection = f"Passphrase: {passphrase}" if passphrase else "%no-protection"
    batch = "".join(KEY.format(protection=protection, name=p.name, email=p.email) for p in people)
    subprocess.run(["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--gen-key"], input=batch, text=True, check=True,
                   capture_output=True)
    listing = subprocess.run(["gpg", "--homedir", home, "--list-keys", "--with-colons"], text=True,
                             check=True, capture_output=True).stdout
    found, fpr = {}, None
    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] == "fpr" and fpr is None:
            fpr = fields[9]
        elif fields[0] == "uid":
            found[fields[9].split("<")[1].rstrip(">")] = fpr
        elif fields[0] == "pub":
            fpr = None
    return found


@pytest.fixture
def keys(monkeypatch):
    top = tempfile.mkdtemp(prefix="sk-", dir="/tmp")
    home = os.path.join(top, "g")
    os.mkdir(home, 0o700)
    fpr = make_keys(home, (ALICE, BOB, MALLORY))
    monkeypatch.setenv("GNUPGHOME", home)
    monkeypatch.delenv("SLUICE_USER_GNUPGHOME", raising=False)
    yield Keys(home, fpr)
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)
    shutil.rmtree(top, ignore_errors=True)


def signing(clone, key=trust.commit_key):
    """The clone signs as the CLI does: the user's keyring, the policy's rule."""
    clone.store.sign_commits(GnupgCommitSigner(None), key)
    return clone


def sync(clone, who, remote) -> object:
    verifier = GnupgCommitVerifier(clone.store.repo, None)
    return Syncer(clone.store, GitCliTransport(clone.store.repo), GitMerger(clone.store), who,
                  verifier).sync(str(remote))


def audit(clone):
    return Gate(clone.store, GitMerger(clone.store), GnupgCommitVerifier(clone.store.repo, None)).audit()


@pytest.fixture
def signed(make_clone, keys):
    """alice's queue: bootstrap commits unsigned, then keys named and signed
    commits required (that commit signed by alice); shared through a bare hub
    that bob has joined."""
    alice = signing(make_clone("alice"))
    for person in (ALICE, BOB, MALLORY):
        alice.admin().set_key(person.email, keys.fpr[person.email])
    alice.admin().require_signed(True)
    hub = make_clone("hub.git", init=False)
    sync(alice, ALICE, hub.path)
    bob = signing(make_clone("bob", init=False))
    sync(bob, BOB, hub.path)
    return alice, bob, hub


def git_log_signatures(path: Path) -> str:
    return subprocess.run(["git", "--git-dir", str(path), "log", "--show-signature", "--format=%H %ae",
                           STATE_REF], capture_output=True, text=True, check=True).stdout


def test_signed_history_syncs_and_stock_git_verifies_it(signed, make_srpm, keys):
    alice, bob, hub = signed
    build = bob.submit(make_srpm("signedpkg"), who=BOB)
    sync(bob, BOB, hub.path)
    alice.submit(make_srpm("otherpkg"))
    result = sync(alice, ALICE, hub.path)  # a merge commit, signed by alice
    assert result.commits == 1 and result.sent
    assert alice.state(build).value == "queued"
    merge = alice.store.repo[alice.store.head()]
    assert len(merge.parents) == 2 and merge.gpg_signature[0]
    log = git_log_signatures(hub.path)
    switched = sum(1 for c in alice.store.history() if trust.rule(
        builds.load_policy(alice.store.snapshot(c.parents[0])) if c.parents else None,
        builds.load_policy(alice.store.snapshot(c.id)), c.author.email)[0])
    assert switched == 4  # require-signed on, bob's submit, alice's submit, the merge
    assert log.count("Good signature") == switched and "BAD signature" not in log
    assert f'Good signature from "Bob Packager <{BOB.email}>"' in log
    assert audit(alice).findings == ()


def test_writing_without_a_named_key_is_refused_before_anything_is_written(signed, make_srpm, make_clone):
    alice, bob, hub = signed
    carol_email = "carol@example.org"
    alice.admin().grant("owner", carol_email)
    head = alice.store.head()
    from backends.base import Person
    with pytest.raises(NotPermitted, match="names no key for carol"):
        alice.submit(make_srpm("carolpkg"), who=Person("Carol", carol_email))
    assert alice.store.head() == head


def test_an_unsigned_commit_is_refused(signed, make_srpm):
    alice, bob, hub = signed
    build = bob.submit(make_srpm("victim"), who=BOB)
    sync(bob, BOB, hub.path)
    sync(alice, ALICE, hub.path)
    bob.store.signing_key = None  # a sluice that does not sign (an old one, or a hand-made commit)
    bob.queue(BOB).perform(Action(Op.CANCEL, build))
    sync(bob, BOB, hub.path)  # bob's own commits are not checked on his side
    before = tree_files(alice.store)
    with pytest.raises(HistoryRefused) as refused:
        sync(alice, ALICE, hub.path)
    bad = bob.store.head()[:10]
    assert any(f.startswith(f"{bad} by {BOB.email}: is not signed") for f in refused.value.findings), \
        refused.value.findings
    assert tree_files(alice.store) == before


def test_a_commit_signed_with_someone_elses_key_is_refused(signed, make_srpm, keys):
    alice, bob, hub = signed
    signing(bob, lambda snap, change: keys.fpr[MALLORY.email])
    bob.submit(make_srpm("stolen"), who=BOB)
    sync(bob, BOB, hub.path)
    head = alice.store.head()
    with pytest.raises(HistoryRefused) as refused:
        sync(alice, ALICE, hub.path)
    expected = f"is signed by key {keys.fpr[MALLORY.email]}, but the policy names {keys.fpr[BOB.email]} for {BOB.email}"
    assert any(expected in f for f in refused.value.findings), refused.value.findings
    assert alice.store.head() == head


def tamper(store, commit: str) -> str:
    """The commit with its message changed and its old signature kept."""
    signature, payload = store.repo[commit].gpg_signature
    changed = payload.replace(b"Sluice-Op: submit", b"Sluice-Op: submit\n\nanother text")
    assert changed != payload
    forged = str(store.repo.create_commit_with_signature(changed.decode(), signature.decode()))
    store.repo.references.get(STATE_REF).set_target(forged)
    return forged


def test_a_tampered_signature_is_refused(signed, make_srpm):
    alice, bob, hub = signed
    bob.submit(make_srpm("tampered"), who=BOB)
    sync(bob, BOB, hub.path)
    forged = tamper(hub.store, hub.store.head())
    head = alice.store.head()
    with pytest.raises(HistoryRefused) as refused:
        sync(alice, ALICE, hub.path)
    assert any(f.startswith(forged[:10]) and "does not verify" in f for f in refused.value.findings)
    assert alice.store.head() == head


def test_a_signed_transition_the_actor_may_not_make_is_refused(signed, make_srpm):
    alice, bob, hub = signed
    build = bob.submit(make_srpm("approveme"), who=BOB)
    bob.built(build)  # the runner's events, as admin alice (signed with her key)
    sync(bob, BOB, hub.path)
    sync(alice, ALICE, hub.path)
    event = make_event(alice.queue().view(build), Op.APPROVE, MALLORY.email, "m4110ry0")
    event_id, body = event.encode()
    signing(hub)
    forge(hub.store, {builds.event_path(build, event_id): body}, MALLORY)  # signed with mallory's own key
    assert hub.store.repo[hub.store.head()].gpg_signature[0]
    with pytest.raises(HistoryRefused) as refused:
        sync(alice, ALICE, hub.path)
    assert any(MALLORY.email in f and "may not approve" in f for f in refused.value.findings)
    assert not any("signed" in f for f in refused.value.findings)


def test_verify_lists_every_finding_of_the_whole_history(signed, make_srpm, keys, sluice):
    alice, bob, hub = signed
    build = alice.submit(make_srpm("audited"), who=BOB)  # good: signed by bob's key
    alice.store.signing_key = None
    alice.admin().grant("tester", "carol@example.org")  # unsigned
    unsigned = alice.store.head()
    signing(alice, lambda snap, change: keys.fpr[MALLORY.email])
    alice.queue(BOB).perform(Action(Op.CANCEL, build))  # bob's event, mallory's key
    wrong_key = alice.store.head()
    signing(alice)
    event = make_event(alice.queue().view(build), Op.RESUBMIT, MALLORY.email, "m4110ry0")
    event_id, body = event.encode()
    forge(alice.store, {builds.event_path(build, event_id): body}, MALLORY)  # signed, not allowed
    disallowed = alice.store.head()
    path = next(f"{builds.build_dir(build)}/events/{n}"
                for n in alice.store.snapshot().list(f"{builds.build_dir(build)}/events"))
    forge(alice.store, {path: b'{"op": "submit"}'}, ALICE)  # signed, but modifies an event
    modified = alice.store.head()
    alice.submit(make_srpm("lastone"))
    tampered = tamper(alice.store, alice.store.head())

    result = sluice("verify", repo_path=str(alice.path))
    assert result.code == 1, result.err
    lines = result.out.splitlines()
    expected = [(unsigned, ALICE, "is not signed"), (wrong_key, BOB, f"is signed by key {keys.fpr[MALLORY.email]}"),
                (modified, ALICE, "may never change"), (disallowed, MALLORY, "may not resubmit"),
                (tampered, ALICE, "does not verify")]
    for commit, who, words in expected:
        assert any(line.startswith(f"{commit[:10]} by {who.email}: ") and words in line for line in lines), \
            (words, lines)
    assert lines[-1].endswith(f"{len(lines) - 1} finding(s)")
    doc = sluice("--json", "verify", repo_path=str(alice.path)).json
    assert doc["clean"] is False and doc["head"] == tampered
    assert {(f["commit"], f["actor"]) for f in doc["findings"]} >= {(c, w.email) for c, w, _ in expected}


def test_verify_accepts_the_unsigned_bootstrap_and_exits_0(signed, sluice):
    alice, bob, hub = signed
    result = sluice("verify", repo_path=str(alice.path))
    assert result.code == 0, result.out + result.err
    assert result.out.strip().endswith("clean")
    first = next(c for c in alice.store.history() if not c.parents)
    assert not alice.store.repo[first.id].gpg_signature[0]  # the bootstrap is unsigned, and accepted


# ------------------------------------------------------------------ the hook

HOOK = """#!/bin/sh
# the sluice pre-receive hook: refuse pushes to refs/sluice/* that sync would refuse
exec {sluice} hook pre-receive
"""


def install_hook(bare: Path) -> None:
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(HOOK.format(sluice=Path(sys.executable).parent / "sluice"))
    hook.chmod(0o755)


def git_push(clone, server: Path, refspec: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--git-dir", str(clone.path), "push", *options, str(server), refspec],
                          capture_output=True, text=True)


def test_the_pre_receive_hook_refuses_what_sync_would_refuse(signed, make_srpm, keys, make_clone, tmp_path):
    alice, bob, _ = signed
    server = tmp_path / "server.git"
    pygit2.init_repository(str(server), bare=True, initial_head="main")
    install_hook(server)
    server_repo = pygit2.Repository(str(server))

    def server_head():
        ref = server_repo.references.get(STATE_REF)
        return str(ref.target) if ref else None
    assert sync(alice, ALICE, server).sent  # the whole history, checked by the hook
    assert server_head() == alice.store.head()
    sync(bob, BOB, server)
    build = bob.submit(make_srpm("hooked"), who=BOB)
    assert sync(bob, BOB, server).sent  # signed by bob's own key: welcome
    good = server_head()
    assert good == bob.store.head()

    def attempt(write, *words):
        bob.store.repo.references.get(STATE_REF).set_target(good)
        write()
        pushed = git_push(bob, server, f"{bob.store.head()}:{STATE_REF}")
        assert pushed.returncode != 0 and "pre-receive hook declined" in pushed.stderr, pushed.stderr
        for word in words:
            assert word in pushed.stderr, pushed.stderr
        assert server_head() == good

    bob.store.signing_key = None
    attempt(lambda: bob.submit(make_srpm("plain"), who=BOB), "refused:", BOB.email, "is not signed")
    signing(bob, lambda snap, change: keys.fpr[MALLORY.email])
    attempt(lambda: bob.submit(make_srpm("plain"), who=BOB), f"is signed by key {keys.fpr[MALLORY.email]}")
    signing(bob)
    attempt(lambda: tamper(bob.store, bob.submit(make_srpm("plain"), who=BOB) and bob.store.head()),
            "does not verify")
    deleted = git_push(bob, server, f":{STATE_REF}")
    assert deleted.returncode != 0 and "deleting the queue is refused" in deleted.stderr
    first = next(c.id for c in bob.store.history() if not c.parents)
    rewritten = git_push(bob, server, f"{first}:{STATE_REF}", "--force")
    assert rewritten.returncode != 0 and "never rewrite it" in rewritten.stderr
    assert server_head() == good

    bob.store.repo.references.get(STATE_REF).set_target(good)
    bob.queue(BOB).perform(Action(Op.CANCEL, build))
    assert sync(bob, BOB, server).sent
    assert server_head() == bob.store.head() != good
    assert "Good signature" in git_log_signatures(server)


def test_the_passphrase_never_reaches_git_or_the_output(sluice, tmp_path, monkeypatch):
    top = tempfile.mkdtemp(prefix="sp-", dir="/tmp")
    home = os.path.join(top, "g")
    os.mkdir(home, 0o700)
    try:
        fpr = make_keys(home, (ALICE,), passphrase=SECRET)[ALICE.email]
        phrase = tmp_path / "phrase"
        phrase.write_text(SECRET + "\n")
        monkeypatch.setenv("SLUICE_USER_GNUPGHOME", home)
        monkeypatch.setenv("SLUICE_COMMIT_PASSPHRASE_FILE", str(phrase))
        outputs = [sluice("init"), sluice("policy", "key", ALICE.email, fpr),
                   sluice("policy", "require-signed", "on"), sluice("policy", "grant", "owner", BOB.email)]
        assert [r.code for r in outputs] == [0, 0, 0, 0], [r.err for r in outputs]
        repo = Path(sluice.repo)
        head = pygit2.Repository(str(repo)).references.get(STATE_REF).target
        assert pygit2.Repository(str(repo))[head].gpg_signature[0]
        objects = subprocess.run(["git", "--git-dir", str(repo), "cat-file", "--batch-all-objects", "--batch"],
                                 capture_output=True, check=True).stdout
        assert b"-----BEGIN PGP SIGNATURE-----" in objects
        assert SECRET.encode() not in objects
        for path in repo.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
        assert not any(SECRET in r.out + r.err for r in outputs)
        log = subprocess.run(["git", "--git-dir", str(repo), "log", "--show-signature", STATE_REF],
                             capture_output=True, text=True, env={**os.environ, "GNUPGHOME": home})
        assert "Good signature" in log.stdout + log.stderr and SECRET not in log.stdout + log.stderr
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def test_requiring_signatures_needs_an_admin_key(clone):
    with pytest.raises(UsageError, match="no admin's key"):
        clone.admin().require_signed(True)
    with pytest.raises(UsageError, match="not a key fingerprint"):
        clone.admin().set_key(ALICE.email, "1234")
