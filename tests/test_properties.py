"""Property tests: any interleaving of work on two clones, synced both ways,
ends with both clones agreeing, no acknowledged event lost, and every event
valid for the state it was written on."""
from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app import builds
from app.actions import Action
from app.errors import SluiceError
from app.index import Index
from app.lifecycle import extend, fold
from app.model import Op, State, StoredEvent
from app.queue import Queue, make_event
from app.sync import Syncer
from backends.artifacts import FileArtifactStore
from backends.gitstore import GitStateStore
from backends.gitsync import GitCliTransport, GitMerger
from tests.conftest import ALICE, BOB, Clone
from tests.test_fold import POLICY, RECORD, submit_event

OPS = [Op.APPROVE, Op.APPROVE, Op.HOLD, Op.HOLD, Op.UNHOLD, Op.UNHOLD, Op.WITHDRAW, Op.CANCEL,
       Op.RESUBMIT, Op.RESOLVE, Op.RESOLVE, Op.FINISH]
step_strategy = st.one_of(
    st.tuples(st.just("op"), st.sampled_from("AB"), st.sampled_from(OPS), st.integers(0, 1)),
    st.tuples(st.just("sync"), st.sampled_from("AB")),
)


def _act(clone: Clone, op: Op, build: str) -> list[StoredEvent]:
    queue = Queue(clone.store, BOB, Index(clone.store))
    view = queue.view(build)
    if op is Op.FINISH:  # the runner builds it: start then finish, as admin
        if view.state is not State.QUEUED:
            return []
        runner = Queue(clone.store, ALICE, Index(clone.store))
        arch = view.record.arches[0]
        runner.record(build, Op.START, arch=arch, data={"tasks": {arch: "building"}})
        done = runner.record(build, Op.FINISH, dst=State.BUILT, arch=arch, data={"tasks": {arch: "built"}})
        return list(done.events[-2:])
    to = view.contenders[0] if op is Op.RESOLVE and view.contested else None
    if op is Op.RESOLVE and to is None:
        return []
    views = queue.perform(Action(op, build, "because", to))
    return [views[0].events[-1]]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step_strategy, min_size=3, max_size=20))
def test_two_clones_converge_and_lose_nothing(make_srpm, steps):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hub = GitStateStore.open(str(root / "hub.git"), create=True)
        clones = {}
        for name in ("A", "B"):
            store = GitStateStore.open(str(root / name), create=True)
            clones[name] = Clone(root / name, store, FileArtifactStore(str(root / "artifacts")))
        clones["A"].admin().init("x86_64")
        clones["A"].admin().grant("owner", BOB.email)
        ids = [clones["A"].submit(make_srpm("p0"), who=BOB),
               clones["A"].submit(make_srpm("p1"), who=BOB)]
        clones["A"].built(ids[0])  # one starts built (reviewable), one queued

        def sync(name: str) -> None:
            clone = clones[name]
            Syncer(clone.store, GitCliTransport(clone.store.repo), GitMerger(clone.store), BOB).sync(
                str(root / "hub.git"))
        sync("A")
        sync("B")
        acknowledged: set[str] = set()
        for step in steps:
            if step[0] == "sync":
                sync(step[1])
                continue
            _, name, op, which = step
            try:
                acknowledged |= {e.id for e in _act(clones[name], op, ids[which])}
            except SluiceError:
                pass  # not allowed in that state, or contested: refused, nothing written
        for name in ("A", "B", "A"):
            sync(name)
        a, b = clones["A"].store, clones["B"].store
        assert a.head() == b.head() == hub.head()
        final = {e.id for build in ids for e in builds.load_events(a.snapshot(), build)}
        assert acknowledged <= final
        for build in ids:
            va, vb = (builds.load_build(s.snapshot(), build) for s in (a, b))
            assert (va.state, va.contested, dict(va.tasks)) == (vb.state, vb.contested, dict(vb.tasks))
            event(f"final state {va.state}{' (contested)' if va.contested else ''}")
        event(f"{len(acknowledged)} acknowledged events")


def test_merging_is_the_same_whichever_side_merges(make_srpm, tmp_path):
    """Union is commutative: A merging B and B merging A give the same tree."""
    stores = {}
    for name in ("A", "B"):
        stores[name] = GitStateStore.open(str(tmp_path / name), create=True)
    a = Clone(tmp_path / "A", stores["A"], FileArtifactStore(str(tmp_path / "art")))
    a.admin().init("x86_64")
    a.admin().grant("owner", BOB.email)
    build = a.submit(make_srpm("shared"), who=BOB)
    b = Clone(tmp_path / "B", stores["B"], a.artifacts)
    Syncer(b.store, GitCliTransport(b.store.repo), GitMerger(b.store), BOB).sync(str(tmp_path / "A"))
    a.queue(BOB).perform(Action(Op.CANCEL, build))
    b.submit(make_srpm("other"), who=BOB)
    b.queue(BOB).perform(Action(Op.CANCEL, build))
    ha, hb = a.store.head(), b.store.head()
    GitCliTransport(a.store.repo).fetch(str(tmp_path / "B"))
    GitCliTransport(b.store.repo).fetch(str(tmp_path / "A"))
    ab = GitMerger(a.store).union(ha, hb, "m\n", BOB).commit
    ba = GitMerger(b.store).union(hb, ha, "m\n", BOB).commit
    assert a.store.repo[ab].tree.id == b.store.repo[ba].tree.id
    view = builds.load_build(a.store.snapshot(ab), build)
    assert view.state is State.CANCELLED and not view.contested  # same outcome twice: agreed


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fold_depends_only_on_the_set_of_events(data):
    """Two replicas write random valid events with random visibility of each
    other; every read order folds to the same state, and contested exactly when
    the heads disagree. Extending a view by one event equals folding again."""
    events = [submit_event()]
    seen = {"aaaa1111": [events[0]], "bbbb2222": [events[0]]}
    for _ in range(data.draw(st.integers(1, 10))):
        replica = data.draw(st.sampled_from(sorted(seen)))
        if data.draw(st.booleans()):  # learn everything the other replica wrote
            seen[replica] = list(events)
        view = fold(RECORD, seen[replica])
        op = data.draw(st.sampled_from([Op.CANCEL, Op.RESUBMIT, Op.START, Op.RESOLVE]))
        dst = view.contenders[0] if op is Op.RESOLVE and view.contested else None
        try:
            actor = "alice@example.org" if op is Op.START else "bob@example.org"
            event = make_event(view, op, actor, replica, dst=dst,
                               arch="x86_64" if op is Op.START else None,
                               data={"tasks": {"x86_64": "building"}} if op is Op.START else None)
            from app import lifecycle
            lifecycle.check(view, RECORD, event, POLICY)
        except SluiceError:
            continue
        stored = StoredEvent(event.encode()[0], event)
        assert extend(view, RECORD, stored) == fold(RECORD, seen[replica] + [stored])
        events.append(stored)
        seen[replica].append(stored)
    expected = fold(RECORD, events)
    for _ in range(5):
        again = fold(RECORD, random.sample(events, len(events)))
        assert (again.state, again.contested, again.heads, dict(again.tasks)) == \
            (expected.state, expected.contested, expected.heads, dict(expected.tasks))
    by_id = {e.id: e for e in events}
    outcomes = {by_id[h].event.dst for h in expected.heads}
    assert expected.contested == (len(outcomes) > 1)
