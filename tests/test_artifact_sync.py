"""Artifacts travel with `sluice sync`: real clones, each with its own
artifact store and repos, sharing a bare hub on a local path (and over a
real sshd for the SSH artifact remote), with the real runner, gpg, rpmsign
and createrepo_c. Nothing here is a double."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from backends.artifact_remote import Location, beside, parse
from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL
from tests.test_signing import built_and_approved, gnupg, queue, submit  # noqa: F401 (fixtures)

ARCH = os.uname().machine


class Machine:
    """One maintainer's machine: its own state repo, artifact store and repos."""

    def __init__(self, sluice, monkeypatch, root: Path | None, repo: str) -> None:
        self.sluice, self.monkeypatch, self.root, self.repo = sluice, monkeypatch, root, repo

    def __call__(self, *argv: str, user=ALICE):
        for var, folder in (("SLUICE_ARTIFACTS", "artifacts"), ("SLUICE_REPOS", "repos")):
            if self.root is None:  # the test's default machine: XDG folders
                self.monkeypatch.delenv(var, raising=False)
            else:
                self.monkeypatch.setenv(var, str(self.root / folder))
        return self.sluice(*argv, user=user, repo_path=self.repo)

    def store(self, isolated: Path) -> Path:
        root = self.root / "artifacts" if self.root else isolated / ".local/share/sluice/artifacts"
        return root / "sha256"

    def has(self, isolated: Path, sha256: str) -> bool:
        path = self.store(isolated) / sha256[:2] / sha256
        return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


@pytest.fixture
def machines(queue, monkeypatch, tmp_path):  # noqa: F811
    """(hub path, runner machine A with the queue, signer machine B, empty):
    A is the queue fixture's repo (alice admin, bob owner, carol signer)."""
    hub = tmp_path / "hub.git"
    GitStateStore.open(str(hub), create=True)
    runner = Machine(queue, monkeypatch, None, queue.repo)
    signer = Machine(queue, monkeypatch, tmp_path / "signer", str(tmp_path / "signer" / "state.git"))
    assert runner("key", "create", "--target", "default", "--no-passphrase").code == 0
    return hub, runner, signer


def artifacts_of(machine, build: str) -> dict[str, dict]:
    return {a["name"]: a for a in machine("--json", "show", build).json["artifacts"]}


def test_a_signer_on_another_machine_signs_and_the_runner_publishes(machines, make_srpm, isolated, tmp_path):
    hub, runner, signer = machines
    [build] = built_and_approved(runner, make_srpm("travel", "1.0", "1"))
    rpm = f"travel-1.0-1.{ARCH}.rpm"
    built = artifacts_of(runner, build)[rpm]["sha256"]

    first = runner("sync", str(hub))
    assert first.code == 0, first.err
    assert "sync: artifacts: fetched 0 (0 B), sent " in first.out
    sent = (hub / "sluice-artifacts/sha256" / built[:2] / built)
    assert sent.exists() and hashlib.sha256(sent.read_bytes()).hexdigest() == built
    assert not list((hub / "sluice-artifacts").rglob("*.part"))

    refused = signer("sign", build[:7], user=CAROL)  # not joined yet: no such build here
    assert refused.code != 0
    joined = signer("--json", "sync", str(hub), user=CAROL)
    assert joined.code == 0, joined.err
    assert joined.json["artifacts"]["fetched"] == 1 and joined.json["artifacts"]["refused"] == []
    assert joined.json["artifacts"]["fetched_bytes"] == sent.stat().st_size
    assert signer.has(isolated, built)

    signed = signer("sign", build[:7], user=CAROL)
    assert signed.code == 0, signed.err
    after = artifacts_of(signer, build)[rpm]
    assert after["signed_by"] and after["sha256"] != built and signer.has(isolated, after["sha256"])
    back = signer("sync", str(hub), user=CAROL)
    assert back.code == 0 and "sent 1 (" in back.out, back.out + back.err
    assert not runner.has(isolated, after["sha256"])

    home = runner("--json", "sync", str(hub))
    assert home.code == 0, home.err
    assert home.json["commits"] >= 1 and home.json["artifacts"]["fetched"] == 1
    assert runner.has(isolated, after["sha256"])
    pushed = runner("push", "testing", build[:7])
    assert pushed.code == 0, pushed.err
    published = isolated / ".local/share/sluice/repos/default/testing" / rpm
    assert hashlib.sha256(published.read_bytes()).hexdigest() == after["sha256"]

    again = runner("--json", "sync", str(hub))  # nothing new: nothing moves
    assert again.code == 0 and again.json["artifacts"]["fetched"] == again.json["artifacts"]["sent"] == 0


def test_a_damaged_copy_on_the_artifact_remote_is_refused_and_not_stored(machines, make_srpm, isolated):
    hub, runner, signer = machines
    [build] = built_and_approved(runner, make_srpm("damaged", "1.0", "1"))
    assert runner("sync", str(hub)).code == 0
    digest = artifacts_of(runner, build)[f"damaged-1.0-1.{ARCH}.rpm"]["sha256"]
    copy = hub / "sluice-artifacts/sha256" / digest[:2] / digest
    os.chmod(copy, 0o644)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))

    result = signer("sync", str(hub), user=CAROL)
    assert result.code == 1
    assert "synced the queue" in result.err and "damaged" in result.err and digest[:12] in result.err
    assert "remove them there" in result.err
    assert not signer.has(isolated, digest) and not (signer.store(isolated) / digest[:2] / digest).exists()
    assert GitStateStore.open(signer.repo).head() == GitStateStore.open(str(hub)).head()  # the queue synced
    refused = signer("sign", build[:7], user=CAROL)
    assert refused.code == 2 and "not in this machine's artifact store" in refused.err
    assert "sluice sync" in refused.err

    copy.unlink()  # repaired: the runner sends it again, the signer gets it
    assert runner("sync", str(hub), "--all-artifacts").code == 0 and copy.exists()
    healed = signer("--json", "sync", str(hub), user=CAROL)
    assert healed.code == 0 and healed.json["artifacts"]["fetched"] == 1, healed.err
    assert signer("sign", build[:7], user=CAROL).code == 0


def test_who_fetches_what_and_no_artifacts(machines, make_srpm, isolated, tmp_path):
    hub, runner, signer = machines
    [build] = built_and_approved(runner, make_srpm("roles", "1.0", "1"))
    assert runner("sync", str(hub)).code == 0
    srpm = artifacts_of(runner, build)["roles-1.0-1.src.rpm"]["sha256"]
    rpm = artifacts_of(runner, build)[f"roles-1.0-1.{ARCH}.rpm"]["sha256"]

    owner = Machine(runner.sluice, runner.monkeypatch, tmp_path / "owner", str(tmp_path / "owner" / "state.git"))
    skipped = owner("--json", "sync", str(hub), "--no-artifacts", user=BOB)
    assert skipped.code == 0 and skipped.json["artifacts"] == {"skipped": "--no-artifacts"}
    only_queue = owner("--json", "sync", str(hub), user=BOB)  # an owner needs no RPMs here
    assert only_queue.code == 0 and only_queue.json["artifacts"]["fetched"] == 0, only_queue.err
    assert not owner.has(isolated, rpm)

    later = submit(runner, make_srpm("queued", "1.0", "1"))
    assert runner("sync", str(hub)).code == 0
    queued_srpm = artifacts_of(runner, later)["queued-1.0-1.src.rpm"]["sha256"]
    admin = Machine(runner.sluice, runner.monkeypatch, tmp_path / "admin", str(tmp_path / "admin" / "state.git"))
    fetched = admin("--json", "sync", str(hub))  # the runner's admin: SRPMs to build, the buildroot's RPMs
    assert fetched.code == 0 and fetched.json["artifacts"]["fetched"] == 2, fetched.err
    assert admin.has(isolated, queued_srpm) and admin.has(isolated, rpm) and not admin.has(isolated, srpm)


def test_an_artifact_folder_named_in_the_config(machines, make_srpm, isolated, tmp_path):
    hub, runner, signer = machines
    submit(runner, make_srpm("configured", "1.0", "1"))
    shared = tmp_path / "shared-artifacts"
    config = tmp_path / "config.toml"
    config.write_text(f'[sync.artifacts]\n"{hub}" = "{shared}"\n')
    moved = runner("--json", "--config", str(config), "sync", str(hub))
    assert moved.code == 0 and moved.json["artifacts"]["sent"] == 1, moved.err
    assert moved.json["artifacts"]["remote"] == str(shared) and not (hub / "sluice-artifacts").exists()

    config.write_text(f'[sync.artifacts]\n"{hub}" = false\n')
    off = runner("--json", "--config", str(config), "sync", str(hub))
    assert off.code == 0 and "turns them off" in off.json["artifacts"]["skipped"]
    head = GitStateStore.open(runner.repo).head()
    for text, words in (('[sync]\nartifact = "x"\n', "unknown setting 'artifact'"),
                        ('[sync]\nartifacts = "https://files.example.org/a"\n', "no folder sluice can reach"),
                        ('[sync]\nkey = 3\n', "sync.key must be a string")):
        config.write_text(text)
        bad = runner("--config", str(config), "sync", str(hub))
        assert bad.code == 2 and words in bad.err, bad.err
    assert GitStateStore.open(runner.repo).head() == head


def test_artifact_folders_beside_git_remotes(tmp_path):
    assert parse("https://git.example.org/q.git") is None and parse("git://host/q.git") is None
    assert beside("https://git.example.org/q.git") is None
    assert beside("ssh://sluice@files.example.org:2222/srv/q.git") == \
        Location("/srv/q.git/sluice-artifacts", "files.example.org", 2222, "sluice")
    assert beside("git@host.example.org:queues/q.git") == \
        Location("queues/q.git/sluice-artifacts", "host.example.org", None, "git")
    assert beside("ssh://host/~/q.git") == Location("q.git/sluice-artifacts", "host", None, None)
    assert beside(f"file://{tmp_path}/q.git") == Location(f"{tmp_path}/q.git/sluice-artifacts")
    worktree = tmp_path / "work"
    (worktree / ".git").mkdir(parents=True)
    assert beside(str(worktree)) == Location(f"{worktree}/.git/sluice-artifacts")
    assert beside("./a:b/q.git").host is None  # a slash before the colon: a path, as git reads it


def test_an_ssh_artifact_remote_checks_the_host_key(ssh_host, make_clone, make_srpm, sluice, monkeypatch, tmp_path,
                                                    isolated):
    host = ssh_host()
    monkeypatch.setenv("GIT_SSH_COMMAND", host.ssh_command)
    hub = make_clone("hub.git", init=False)
    alice = make_clone("alice")
    build = alice.submit(make_srpm("over-ssh"), who=ALICE)
    digest = alice.queue().view(build).record.srpm["sha256"]
    url = host.url(hub.path)
    wrong = tmp_path / "known_hosts-empty"
    wrong.write_text("")
    config = tmp_path / "config.toml"
    config.write_text(f'[sync]\nkey = "{host.key}"\nknown_hosts = "{wrong}"\n')
    monkeypatch.setenv("SLUICE_ARTIFACTS", str(alice.artifacts.root))
    logins = host.logins()

    refused = sluice("--config", str(config), "sync", url, repo_path=str(alice.path))
    assert refused.code == 1
    assert "synced the queue" in refused.err and f"is not in {wrong}" in refused.err
    assert "SHA256:" in refused.err and f">> {wrong}" in refused.err  # the fingerprint, and what to do
    assert hub.store.head() == alice.store.head()  # the queue itself went over git's own ssh
    assert host.logins() == logins + 2  # git's fetch and push; paramiko was refused before logging in
    assert wrong.read_text() == "" and not (Path(hub.path) / "sluice-artifacts").exists()

    config.write_text(f'[sync]\nkey = "{host.key}"\nknown_hosts = "{host.known_hosts}"\n')
    moved = sluice("--json", "--config", str(config), "sync", url, repo_path=str(alice.path))
    assert moved.code == 0 and moved.json["artifacts"]["sent"] == 1, moved.err
    copy = Path(hub.path) / "sluice-artifacts/sha256" / digest[:2] / digest
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    assert moved.json["artifacts"]["remote"].startswith(f"{host.user}@{host.host}:{host.port}:")

    monkeypatch.setenv("SLUICE_ARTIFACTS", str(tmp_path / "laptop-artifacts"))
    joined = sluice("--json", "--config", str(config), "sync", url, repo_path=str(tmp_path / "laptop.git"))
    assert joined.code == 0 and joined.json["artifacts"]["fetched"] == 1, joined.err  # alice (admin) builds it
    assert (tmp_path / "laptop-artifacts/sha256" / digest[:2] / digest).read_bytes() == copy.read_bytes()
