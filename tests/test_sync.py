"""`sluice sync` between real clones through a shared bare repo (a local path
remote); the SSH remote is in test_sync_ssh.py."""
from __future__ import annotations

import json
import os
import time

import pygit2
import pytest

from app import builds
from app.actions import Action
from app.errors import HistoryRefused, SluiceError, StateConflict
from app.index import Index
from app.model import Op, State
from app.queue import make_event
from app.sync import Syncer
from backends.base import BackendError
from backends.gitsync import GitCliTransport, GitMerger
from backends.gittree import write_tree
from tests.conftest import ALICE, BOB, MALLORY, folded, forge, syncer, tree_files


@pytest.fixture
def hub(make_clone):
    """A shared bare repo holding a queue, and two clones of it (alice's, bob's)."""
    origin = make_clone("origin")
    hub = make_clone("hub.git", init=False)
    syncer(origin).sync(str(hub.path))
    alice, bob = make_clone("alice", init=False), make_clone("bob", init=False)
    for clone in (alice, bob):
        syncer(clone).sync(str(hub.path))
    return hub, alice, bob


def test_joining_a_queue_adopts_its_history(hub):
    hub_clone, alice, bob = hub
    assert alice.store.head() == hub_clone.store.head() == bob.store.head()
    assert builds.load_policy(alice.store.snapshot()).is_admin(ALICE.email)


def test_events_written_on_two_clones_meet_in_both(hub, make_srpm):
    hub_clone, alice, bob = hub
    a = alice.submit(make_srpm("alpha"), who=ALICE)
    b = bob.submit(make_srpm("beta"), who=BOB)
    first = syncer(alice).sync(str(hub_clone.path))
    assert first.sent and first.commits == 0
    second = syncer(bob, BOB).sync(str(hub_clone.path))
    assert second.commits == 1 and second.events == 1 and second.sent
    syncer(alice).sync(str(hub_clone.path))
    assert alice.store.head() == bob.store.head() == hub_clone.store.head()
    for clone in (alice, bob):
        assert {clone.state(a), clone.state(b)} == {State.QUEUED}
    merge = alice.store.repo[alice.store.head()]
    assert len(merge.parents) == 2 and "Sluice-Op: sync" in merge.message


def test_concurrent_decisions_are_contested_until_resolved(hub, make_srpm):
    hub_clone, alice, bob = hub
    build = alice.submit(make_srpm("inventor"), who=BOB)
    alice.built(build)
    syncer(alice).sync(str(hub_clone.path))
    syncer(bob, BOB).sync(str(hub_clone.path))
    alice.queue(BOB).perform(Action(Op.APPROVE, build))
    bob.queue(BOB).perform(Action(Op.WITHDRAW, build, "broken ABI"))
    syncer(alice).sync(str(hub_clone.path))
    syncer(bob, BOB).sync(str(hub_clone.path))
    syncer(alice).sync(str(hub_clone.path))
    views = [c.queue().view(build) for c in (alice, bob)]
    assert all(v.contested and v.state is State.WITHDRAWN for v in views)
    for clone in (alice, bob):  # the index, caught up across the merge, agrees
        index = Index(clone.store)
        index.refresh()
        assert json.loads(index.summaries_json()) == folded(clone)
    assert set(views[0].contenders) == {State.NEEDSIGN, State.WITHDRAWN}
    with pytest.raises(StateConflict, match="contested"):
        bob.queue(BOB).perform(Action(Op.HOLD, build, "x"))
    bob.queue(BOB).perform(Action(Op.RESOLVE, build, "withdraw it", to=State.WITHDRAWN))
    syncer(bob, BOB).sync(str(hub_clone.path))
    syncer(alice).sync(str(hub_clone.path))
    for clone in (alice, bob):
        view = clone.queue().view(build)
        assert not view.contested and view.state is State.WITHDRAWN
        index = Index(clone.store)
        index.refresh()
        assert json.loads(index.summaries_json()) == folded(clone)


def test_a_rejected_push_is_retried_after_merging_again(hub, make_srpm):
    hub_clone, alice, bob = hub
    alice.submit(make_srpm("alpha"))
    bob.submit(make_srpm("beta"), who=BOB)
    transport = GitCliTransport(alice.store.repo)
    fetch = transport.fetch
    raced = []

    def fetch_then_lose_the_race(remote):
        head = fetch(remote)
        if not raced:  # bob pushes between alice's fetch and alice's push
            raced.append(syncer(bob, BOB).sync(remote))
        return head
    transport.fetch = fetch_then_lose_the_race
    result = Syncer(alice.store, transport, GitMerger(alice.store), ALICE).sync(str(hub_clone.path))
    assert result.attempts == 2 and result.sent
    assert len(list(builds.build_ids(hub_clone.store.snapshot()))) == 2


def test_a_remote_that_modifies_an_existing_event_is_refused(hub, make_srpm):
    hub_clone, alice, bob = hub
    build = bob.submit(make_srpm("victim"), who=BOB)
    syncer(bob, BOB).sync(str(hub_clone.path))
    snap = hub_clone.store.snapshot()
    path = next(f"{builds.build_dir(build)}/events/{n}" for n in snap.list(f"{builds.build_dir(build)}/events"))
    doc = json.loads(snap.read(path))
    doc["to"] = "stable"
    forge(hub_clone.store, {path: json.dumps(doc).encode()}, BOB)
    before = tree_files(alice.store)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any("modifies" in f and "may never change" in f for f in refused.value.findings)
    assert tree_files(alice.store) == before


def test_a_forged_approval_by_someone_without_the_role_is_refused(hub, make_srpm):
    hub_clone, alice, bob = hub
    build = bob.submit(make_srpm("target"), who=BOB)
    bob.built(build)
    syncer(bob, BOB).sync(str(hub_clone.path))
    view = bob.queue().view(build)
    event = make_event(view, Op.APPROVE, MALLORY.email, "m4110ry0")
    event_id, body = event.encode()
    forge(hub_clone.store, {builds.event_path(build, event_id): body}, MALLORY)
    before = alice.store.head()
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert refused.value.exit_code == 3
    assert any(MALLORY.email in f and "may not approve" in f for f in refused.value.findings)
    assert alice.store.head() == before


def test_an_event_whose_actor_is_not_the_commit_author_is_refused(hub, make_srpm):
    hub_clone, alice, bob = hub
    build = bob.submit(make_srpm("spoof"), who=BOB)
    bob.built(build)
    syncer(bob, BOB).sync(str(hub_clone.path))
    event = make_event(bob.queue().view(build), Op.APPROVE, BOB.email, "m4110ry0")
    event_id, body = event.encode()
    forge(hub_clone.store, {builds.event_path(build, event_id): body}, MALLORY)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any("claims actor" in f for f in refused.value.findings)


@pytest.mark.parametrize("path, content, words", [
    ("builds/..%2f..%2fetc/passwd", b"x", "no part of a sluice queue"),
    ("builds/zz/evil/build.json", b"{}", "no part of a sluice queue"),
    ("notes.txt", b"hi", "no part of a sluice queue"),
    ("config/targets/evil.toml", b'arches = ["x86_64"]\n', "is not an admin"),
    ("config/policy.toml", b'[[grant]]\nrole = "admin"\nemail = "mallory@example.org"\n', "is not an admin"),
])
def test_crafted_trees_are_refused(hub, path, content, words):
    hub_clone, alice, bob = hub
    forge(hub_clone.store, {path: content}, MALLORY)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any(words in f for f in refused.value.findings), refused.value.findings


def test_a_malformed_policy_from_an_admin_is_refused_naming_file_and_line(hub):
    hub_clone, alice, bob = hub
    forge(hub_clone.store, {"config/policy.toml": b'[[grant]]\nrole = "admin"\nemail = \n'}, ALICE)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any("config/policy.toml, line 3" in f for f in refused.value.findings)


def test_policy_changed_on_both_sides_needs_a_choice(hub):
    hub_clone, alice, bob = hub
    bob_admin = bob.admin(ALICE)
    alice.admin().grant("tester", "tess@example.org")
    bob_admin.grant("signer", "sam@example.org")
    syncer(alice).sync(str(hub_clone.path))
    with pytest.raises(StateConflict) as conflict:
        syncer(bob).sync(str(hub_clone.path))
    assert "--theirs config/policy.toml" in conflict.value.hint
    syncer(bob).sync(str(hub_clone.path), ["config/policy.toml"])
    policy = builds.load_policy(bob.store.snapshot())
    assert policy.has("tess@example.org", "tester") and not policy.has("sam@example.org", "signer")


def test_an_unrelated_queue_is_refused(make_clone, hub):
    hub_clone, alice, bob = hub
    stranger = make_clone("stranger")
    with pytest.raises(HistoryRefused) as refused:
        syncer(stranger).sync(str(hub_clone.path))
    assert any("shares no history" in f for f in refused.value.findings)


def test_an_unreachable_remote_fails_clearly(clone, tmp_path):
    with pytest.raises(BackendError) as failed:
        syncer(clone).sync(str(tmp_path / "nowhere.git"))
    assert failed.value.exit_code == 1 and "git fetch" in failed.value.hint


def test_sync_from_the_cli_reports_and_refuses(sluice, hub, make_srpm):
    hub_clone, alice, bob = hub
    bob.submit(make_srpm("cli"), who=BOB)
    syncer(bob, BOB).sync(str(hub_clone.path))
    result = sluice("--json", "sync", str(hub_clone.path), repo_path=str(alice.path))
    assert result.code == 0 and result.json["commits"] == 1 and result.json["events"] == 1
    forge(hub_clone.store, {"notes.txt": b"x"}, MALLORY)
    result = sluice("sync", str(hub_clone.path), repo_path=str(alice.path))
    assert result.code == 3 and "notes.txt" in result.err and "nothing was merged" in result.err
    assert sluice("sync", repo_path=str(alice.path)).code == 2  # no remote named


def test_a_file_mode_on_a_folder_is_refused_not_crashed_on(hub):
    """A crafted tree can give a file's mode to a folder's id. git's fetch
    already refuses to carry it (sluice's own check, should one get through,
    is in test_store); either way the sync fails with a clear error and
    changes nothing."""
    hub_clone, alice, bob = hub
    repo = hub_clone.store.repo
    head = repo[hub_clone.store.head()]
    folder = head.tree["config"].id
    pygit2.settings.enable_strict_object_creation(False)  # what an attacker's own git does
    try:
        tree = write_tree(repo, head.tree, {"config/targets/evil.toml": folder})
    finally:
        pygit2.settings.enable_strict_object_creation(True)
    sig = pygit2.Signature(MALLORY.name, MALLORY.email)
    commit = repo.create_commit(None, sig, sig, "crafted\n", tree, [head.id])
    repo.references["refs/sluice/state"].set_target(commit)
    before = tree_files(alice.store)
    with pytest.raises(SluiceError) as refused:
        syncer(alice).sync(str(hub_clone.path))
    said = " ".join([refused.value.message, *getattr(refused.value, "findings", [])])
    assert "cannot fetch" in said or "evil.toml is not a regular file" in said
    assert tree_files(alice.store) == before


# ---------------------------------------------------------------- repo manifests

def _manifest(actor: str, number: int = 1, name: str = "a-1-1.x86_64.rpm") -> tuple[str, bytes]:
    from app import manifests
    package = manifests.Package(name, "a-1-1.x86_64", "ab" * 32, "A" * 40, "cd" * 20)
    manifest = manifests.Manifest("default", "stable", number, (package,), "A" * 40, actor, "2025-01-01T00:00:00Z")
    data = manifest.encode()
    return manifests.path_of(manifest, data), data


def test_a_manifest_published_by_an_admin_travels_with_sync(hub):
    hub_clone, alice, bob = hub
    path, data = _manifest(ALICE.email)
    forge(hub_clone.store, {path: data}, ALICE)
    syncer(alice).sync(str(hub_clone.path))
    assert alice.store.snapshot().read(path) == data


@pytest.mark.parametrize("who, change, words", [
    (MALLORY, None, "neither a signer nor an admin"),
    (ALICE, b"tampered", "does not match its content"),
    (BOB, "actor", "neither a signer nor an admin"),
    (ALICE, "actor", "claims actor"),
])
def test_forged_or_broken_manifests_are_refused(hub, who, change, words):
    hub_clone, alice, bob = hub
    path, data = _manifest(BOB.email if change == "actor" else who.email)
    if isinstance(change, bytes):
        data = change
    before = alice.store.head()
    forge(hub_clone.store, {path: data}, who)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any(words in f for f in refused.value.findings), refused.value.findings
    assert alice.store.head() == before


def test_a_manifest_once_written_never_changes(hub):
    hub_clone, alice, bob = hub
    path, data = _manifest(ALICE.email)
    forge(hub_clone.store, {path: data}, ALICE)
    syncer(alice).sync(str(hub_clone.path))
    forge(hub_clone.store, {path: data.replace(b"a-1-1", b"b-1-1")}, ALICE)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any("may never change" in f for f in refused.value.findings)


def test_a_push_killed_on_the_remote_leaves_a_lock_that_sync_names(sluice, hub, make_srpm):
    """git's receive-pack on the hub is SIGKILLed while it holds the ref's
    lock (by a reference-transaction hook, run between locking and
    committing): the file stays. Every later push is refused on it; sync must
    name the file and say to remove it, not "try again"."""
    hub_clone, alice, bob = hub
    hook = hub_clone.path / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text('#!/bin/sh\n[ "$1" = prepared ] && kill -9 $PPID\nexit 0\n')
    hook.chmod(0o755)
    alice.submit(make_srpm("locked"))
    before = hub_clone.store.head()
    killed = sluice("sync", str(hub_clone.path), repo_path=str(alice.path))
    assert killed.code == 1 and "cannot push" in killed.err
    hook.unlink()
    lock = hub_clone.path / "refs" / "sluice" / "state.lock"
    assert lock.exists()
    aged = time.time() - 600
    os.utime(lock, (aged, aged))
    result = sluice("sync", str(hub_clone.path), repo_path=str(alice.path))
    assert result.code == 1 and f"its lock file {lock} is there, 60" in result.err, result.err
    assert f"remove {lock} on that machine" in result.err and "try again" not in result.err
    assert hub_clone.store.head() == before
    lock.unlink()  # as the hint says
    assert sluice("sync", str(hub_clone.path), repo_path=str(alice.path)).code == 0
    assert hub_clone.store.head() == alice.store.head() != before


def test_a_live_pushers_lock_is_waited_for(hub, make_srpm):
    """A lock that goes away between two tries is a live pusher's: sync
    retries and gets through."""
    hub_clone, alice, bob = hub
    alice.submit(make_srpm("waits"))
    lock = hub_clone.path / "refs" / "sluice" / "state.lock"
    transport = GitCliTransport(alice.store.repo)
    push, pushes = transport.push, []

    def push_once_locked(remote, commit):
        pushes.append(commit)
        if len(pushes) == 1:
            lock.write_text(commit + "\n")
            try:
                return push(remote, commit)
            finally:
                lock.unlink()
        return push(remote, commit)
    transport.push = push_once_locked
    result = Syncer(alice.store, transport, GitMerger(alice.store), ALICE).sync(str(hub_clone.path))
    assert result.sent and result.attempts == 2
    assert hub_clone.store.head() == alice.store.head()
