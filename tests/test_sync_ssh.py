"""`sluice sync` with a hub reached over ssh://, through a real sshd.

test_sync.py proves the merge rules over a local path; these prove they hold
over the transport maintainers really use: git over OpenSSH, with the host key
checked strictly and never learned on the fly. Each test starts its own sshd
(tests/sshd.py) and points GIT_SSH_COMMAND at its key and known_hosts; the
server's log shows the traffic really went over ssh.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app import builds
from app.model import State
from backends.gitstore import GitStateStore
from backends.gitsync import GitCliTransport
from tests.conftest import ALICE, BOB, MALLORY, forge, syncer, tree_files

FORGED_POLICY = b'[[grant]]\nrole = "admin"\nemail = "mallory@example.org"\n'


@pytest.fixture
def ssh_hub(ssh_host, make_clone, monkeypatch):
    """A bare hub holding a queue, served by a real sshd; returns (host, hub).
    The queue reaches the hub by a first push over ssh, which creates its ref.
    Artifacts travel over paramiko, which reads ~/.ssh/config as a user's
    would have it (git's ssh here reads none: GIT_SSH_COMMAND says how)."""
    host = ssh_host()
    monkeypatch.setenv("GIT_SSH_COMMAND", host.ssh_command)
    ssh = Path(os.environ["HOME"]) / ".ssh"
    ssh.mkdir(exist_ok=True)
    (ssh / "config").write_text(f"Host {host.host}\n  IdentityFile {host.key}\n"
                                f"  UserKnownHostsFile {host.known_hosts}\n")
    origin = make_clone("origin")
    hub = make_clone("hub.git", init=False)
    assert syncer(origin).sync(host.url(hub.path)).sent
    assert hub.store.head() == origin.store.head() is not None
    assert host.logins() == 2  # the fetch and the push
    return host, hub


def join(sluice, url: str, clone) -> None:
    result = sluice("sync", url, repo_path=str(clone.path))
    assert result.code == 0, result.err


def test_two_clones_meet_through_a_hub_over_ssh(ssh_hub, make_clone, make_srpm, sluice, monkeypatch):
    host, hub = ssh_hub
    url = host.url(hub.path)
    alice, bob = make_clone("alice", init=False), make_clone("bob", init=False)
    join(sluice, url, alice)
    join(sluice, url, bob)
    a = alice.submit(make_srpm("alpha"), who=ALICE)
    b = bob.submit(make_srpm("beta"), who=BOB)
    logins = host.logins()

    monkeypatch.setenv("SLUICE_ARTIFACTS", alice.artifacts.root)
    first = sluice("--json", "sync", url, repo_path=str(alice.path))
    assert first.code == 0, first.err
    assert first.json["pushed"] and first.json["commits"] == 0
    monkeypatch.setenv("SLUICE_ARTIFACTS", bob.artifacts.root)
    second = sluice("--json", "sync", url, repo_path=str(bob.path), user=BOB)
    assert second.code == 0, second.err
    assert second.json["pushed"] and (second.json["commits"], second.json["events"]) == (1, 1)
    monkeypatch.setenv("SLUICE_ARTIFACTS", alice.artifacts.root)
    third = sluice("--json", "sync", url, repo_path=str(alice.path))
    assert third.code == 0, third.err
    assert not third.json["pushed"] and (third.json["commits"], third.json["events"]) == (2, 1)
    # the SRPMs went over SFTP to the hub's artifact folder; alice, the admin who builds, fetched bob's
    assert (first.json["artifacts"]["sent"], second.json["artifacts"]["sent"]) == (1, 1)
    assert (second.json["artifacts"]["fetched"], third.json["artifacts"]["fetched"]) == (0, 1)

    assert alice.store.head() == bob.store.head() == hub.store.head() == third.json["head"]
    for clone in (alice, bob):
        assert (clone.state(a), clone.state(b)) == (State.QUEUED, State.QUEUED)
    merge = hub.store.repo[hub.store.head()]
    assert len(merge.parents) == 2 and f"Sluice-Remote: {url}" in merge.message
    assert host.logins() - logins >= 5  # every fetch and push logged in over ssh


def test_an_empty_clone_joins_the_queue_over_ssh(ssh_hub, sluice, tmp_path):
    host, hub = ssh_hub
    head = hub.store.head()
    path = tmp_path / "carol.git"
    assert not path.exists()
    result = sluice("--json", "sync", host.url(hub.path), repo_path=str(path))
    assert result.code == 0, result.err
    assert result.json["head"] == head and not result.json["pushed"]
    assert result.json["commits"] == len(list(hub.store.repo.walk(head))) >= 2
    carol = GitStateStore.open(str(path))
    assert carol.head() == head == hub.store.head()
    policy = builds.load_policy(carol.snapshot())
    assert policy.is_admin(ALICE.email) and policy.has(BOB.email, "owner")


def _another_key(host, directory) -> str:
    """A known_hosts line giving [host]:port a key that is not the server's."""
    key = directory / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, capture_output=True)
    return f"[{host.host}]:{host.port} " + " ".join(key.with_suffix(".pub").read_text().split()[:2]) + "\n"


@pytest.mark.parametrize("known, says", [
    ("empty", "No ED25519 host key is known for"),
    ("another key", "REMOTE HOST IDENTIFICATION HAS CHANGED"),
])
def test_an_unknown_host_key_is_refused(ssh_hub, make_clone, sluice, monkeypatch, tmp_path, known, says):
    host, hub = ssh_hub
    url = host.url(hub.path)
    alice = make_clone("alice", init=False)
    join(sluice, url, alice)
    alice.admin().grant("tester", "tess@example.org")  # something alice would push
    ours, theirs, logins = alice.store.head(), hub.store.head(), host.logins()
    wrong = tmp_path / "known_hosts-wrong"
    wrong.write_text("" if known == "empty" else _another_key(host, tmp_path))
    before = wrong.read_text()
    monkeypatch.setenv("GIT_SSH_COMMAND", host.trusting(wrong).ssh_command)

    result = sluice("sync", url, repo_path=str(alice.path))
    assert result.code == 1
    assert f"cannot fetch the queue from {url}" in result.err
    assert says in result.err and "Host key verification failed" in result.err
    assert (alice.store.head(), hub.store.head()) == (ours, theirs)
    assert host.logins() == logins  # refused before logging in
    assert wrong.read_text() == before  # and the key was not learned

    monkeypatch.setenv("GIT_SSH_COMMAND", host.ssh_command)  # the right key: the same sync works
    result = sluice("--json", "sync", url, repo_path=str(alice.path))
    assert result.code == 0 and result.json["pushed"], result.err
    assert hub.store.head() == alice.store.head() == ours


def test_a_forged_history_on_the_hub_is_refused_over_ssh(ssh_hub, make_clone, sluice):
    host, hub = ssh_hub
    url = host.url(hub.path)
    alice = make_clone("alice", init=False)
    join(sluice, url, alice)
    forged = forge(hub.store, {"config/policy.toml": FORGED_POLICY}, MALLORY, "make mallory admin")
    files, head = tree_files(alice.store), alice.store.head()

    result = sluice("sync", url, repo_path=str(alice.path))
    assert result.code == 3
    assert "nothing was merged" in result.err
    assert f"{MALLORY.email} changed config/policy.toml but is not an admin" in result.err
    assert alice.store.head() == head and tree_files(alice.store) == files
    assert hub.store.head() == forged  # nothing was pushed over it either
    space = GitCliTransport(alice.store.repo).namespace(url)
    fetched = alice.store.repo.references[f"refs/remotes/{space}/sluice/state"]
    assert str(fetched.target) == forged  # it did arrive over ssh, and was refused on inspection
    assert not builds.load_policy(alice.store.snapshot()).is_admin(MALLORY.email)
