"""The git state store on real temporary repositories."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from app import audit
from app.errors import StateConflict
from app.model import Op, State
from app.actions import Action
from backends.base import BackendError, BadInput
from backends.gitstore import STATE_REF, GitStateStore
from tests.conftest import ALICE, BOB


def test_open_refuses_a_missing_repo_unless_asked_to_create(tmp_path):
    with pytest.raises(BadInput, match="sluice init"):
        GitStateStore.open(str(tmp_path / "nope"))
    store = GitStateStore.open(str(tmp_path / "new.git"), create=True)
    assert store.repo.is_bare and store.head() is None
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(BadInput, match="not empty"):
        GitStateStore.open(str(tmp_path / "full"), create=True)


def test_an_unreadable_repo_is_named_with_its_cause_not_called_missing(tmp_path):
    GitStateStore.open(str(tmp_path / "state.git"), create=True)
    with open(tmp_path / "state.git" / "config", "a") as config:
        config.write("[broken\n")
    with pytest.raises(BackendError, match=r"cannot open the git repository .*config") as failed:
        GitStateStore.open(str(tmp_path / "state.git"))
    assert "sluice init" not in failed.value.hint


def test_reading_a_folder_as_a_file_is_bad_input(clone):
    folder = str(clone.store.repo[clone.store.head()].tree["config"].id)
    with pytest.raises(BadInput, match="not a file"):
        clone.store.blob(folder)


def test_works_inside_an_existing_project_repo_without_touching_its_branches(tmp_path, make_srpm):
    work = tmp_path / "project"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README").write_text("hi\n")
    subprocess.run(["git", "-C", str(work), "add", "."], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"],
                   check=True)
    before = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    (work / "sub").mkdir()
    with pytest.raises(BadInput):  # never a repo further up
        GitStateStore.open(str(work / "sub"))
    store = GitStateStore.open(str(work))
    from tests.conftest import Clone
    from backends.artifacts import FileArtifactStore
    clone = Clone(work, store, FileArtifactStore(str(tmp_path / "art")))
    clone.admin().init("x86_64")
    build = clone.submit(make_srpm())
    assert clone.state(build) is State.QUEUED
    assert store.repo.path.rstrip("/").endswith(".git")
    after = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert before == after
    refs = subprocess.run(["git", "-C", str(work), "for-each-ref", "--format=%(refname)"],
                          capture_output=True, text=True).stdout.split()
    assert STATE_REF in refs


def test_commits_have_the_person_as_author_and_the_replica_as_committer(clone, make_srpm):
    build = clone.submit(make_srpm(), who=BOB)
    commit = clone.store.repo[clone.store.head()]
    assert (commit.author.name, commit.author.email) == (BOB.name, BOB.email)
    assert clone.store.replica in commit.committer.name
    entry = audit.entry(next(clone.store.history()))
    assert entry.values("Build") == [build]
    assert entry.values("Op") == ["submit"] and entry.values("To") == ["queued"]
    assert entry.values("Actor") == [BOB.email]


def test_replica_id_is_kept_in_the_repo_config(tmp_path):
    first = GitStateStore.open(str(tmp_path / "r.git"), create=True)
    again = GitStateStore.open(str(tmp_path / "r.git"))
    assert first.replica == again.replica and len(first.replica) == 8


def test_a_moved_ref_makes_the_plan_run_again_on_the_new_state(clone, make_srpm):
    build = clone.submit(make_srpm())
    other = GitStateStore.open(str(clone.path))  # a second writer on the same repo
    calls = []
    plan_queue = clone.queue(BOB)
    original_update = clone.store.update

    def racing_update(plan):
        def wrapped(snap):
            calls.append(snap.commit)
            if len(calls) == 1:  # someone else cancels between our snapshot and our swap
                from app.queue import Queue
                from app.index import Index
                Queue(other, ALICE, Index(other)).perform(Action(Op.CANCEL, build))
            return plan(snap)
        return original_update(wrapped)

    clone.store.update = racing_update
    with pytest.raises(StateConflict, match="it is cancelled"):
        plan_queue.perform(Action(Op.CANCEL, build))
    assert len(calls) == 2 and calls[0] != calls[1]
    assert clone.state(build) is State.CANCELLED
    events = clone.queue().view(build).events
    assert [e.event.op for e in events] == [Op.SUBMIT, Op.CANCEL]  # one cancel, not two


def test_a_stuck_lock_gives_a_clear_error(clone, make_srpm):
    clone.store.timeout = 0.3
    lock = clone.path / (STATE_REF + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    before = clone.store.head()
    with pytest.raises(BackendError) as failed:
        clone.admin().grant("tester", "x@example.org")
    assert str(lock) in failed.value.hint
    lock.unlink()
    assert clone.store.head() == before


def test_changes_only_for_descendants(clone, make_srpm):
    old = clone.store.head()
    build = clone.submit(make_srpm())
    new = clone.store.head()
    changes = clone.store.changes(old, new)
    assert "build.json" in {c.path.split("/")[-1] for c in changes}
    assert all(build in c.path and c.old is None and c.new for c in changes)
    assert clone.store.changes(new, old) is None


def test_a_lock_left_by_a_killed_writer_is_removed_and_the_write_lands(clone):
    """libgit2 holds the ref's lock for well under a millisecond; one that has
    been there for a minute was left by a process killed while holding it."""
    clone.store.timeout = 0.3
    lock = clone.path / (STATE_REF + ".lock")
    lock.write_text("")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    before = clone.store.head()
    clone.admin().grant("tester", "x@example.org")
    assert not lock.exists() and clone.store.head() != before
