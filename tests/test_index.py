"""The disposable SQLite index: catch-up by tree diff, rebuilds, and that it
always gives the answer folding the tree would."""
from __future__ import annotations

import json
import sqlite3

from app import builds
from app.actions import Action
from app.index import Filters, Index
from app.model import Op
from backends.base import Change
from tests.conftest import ALICE, BOB, folded


def test_catch_up_refolds_only_changed_builds(clone, make_srpm, monkeypatch):
    a = clone.submit(make_srpm("a"), who=BOB)
    b = clone.submit(make_srpm("b"), who=BOB)
    index = Index(clone.store)
    index.refresh()
    assert json.loads(index.summaries_json()) == folded(clone)
    clone.queue(BOB).perform(Action(Op.CANCEL, a))
    folded_whole, decoded = [], []
    load_build, load_event = builds.load_build, builds.load_event
    monkeypatch.setattr(builds, "load_build", lambda snap, i: folded_whole.append(i) or load_build(snap, i))
    monkeypatch.setattr(builds, "load_event", lambda snap, i, *rest: decoded.append(i) or load_event(snap, i, *rest))
    index.refresh()
    assert folded_whole == [] and decoded == [a]  # extended by its one new event, not refolded
    assert index.indexed() == clone.store.head()
    assert json.loads(index.summaries_json()) == folded(clone)
    assert [r["id"] for r in index.rows(Filters(states=("cancelled",)))] == [a]
    assert [r["id"] for r in index.rows(Filters(states=("queued",)))] == [b]


def test_catch_up_extends_or_refolds_and_always_matches_the_tree(clone, make_srpm):
    """Every kind of step, the index refreshed after each one: the answer is
    always what folding the tree gives."""
    index = Index(clone.store)
    a = clone.submit(make_srpm("a"), who=BOB)
    b = clone.submit(make_srpm("b"), who=BOB)
    index.refresh()
    clone.built(a)
    index.refresh()
    steps = [(Op.HOLD, a, "wait"), (Op.UNHOLD, a, ""), (Op.APPROVE, a, ""), (Op.HOLD, a, "again"),
             (Op.UNHOLD, a, ""), (Op.WITHDRAW, a, "broken"), (Op.CANCEL, b, ""), (Op.RESUBMIT, b, "")]
    for op, build, why in steps:
        clone.queue(BOB).perform(Action(op, build, why))
        index.refresh()
        assert json.loads(index.summaries_json()) == folded(clone), op
    assert [r["state"] for r in index.rows(Filters())] == ["queued", "withdrawn"]


def test_a_replaced_history_is_rebuilt_not_patched(clone, make_srpm):
    clone.submit(make_srpm("kept"), who=BOB)
    index = Index(clone.store)
    index.refresh()
    old = clone.store.head()
    clone.submit(make_srpm("dropped"), who=BOB)
    index.refresh()
    assert index.count() == 2
    clone.store.repo.references["refs/sluice/state"].set_target(old)  # history rewound
    index.refresh()
    assert index.count() == 1 and json.loads(index.summaries_json()) == folded(clone)


def test_deleting_or_changing_the_schema_rebuilds_the_same_answer(clone, make_srpm):
    clone.submit(make_srpm("x"), who=BOB)
    index = Index(clone.store)
    index.refresh()
    before = index.summaries_json()
    index.close()
    db = sqlite3.connect(index.path)
    db.execute("UPDATE meta SET value = 'old' WHERE key = 'schema'")
    db.commit()
    db.close()
    again = Index(clone.store)
    again.refresh()
    assert again.summaries_json() == before
    again.close()
    import os
    os.remove(index.path)
    fresh = Index(clone.store)
    fresh.refresh()
    assert fresh.summaries_json() == before


def test_a_newer_index_is_not_rewound_by_an_older_snapshot(clone, make_srpm):
    clone.submit(make_srpm("one"), who=BOB)
    older = clone.store.snapshot()
    clone.submit(make_srpm("two"), who=BOB)
    index = Index(clone.store)
    index.refresh()
    assert index.refresh(older) == clone.store.head()  # stays at the newer commit
    assert index.count() == 2


def test_an_unreadable_build_is_reported_not_fatal(clone, make_srpm, sluice):
    good = clone.submit(make_srpm("good"), who=BOB)
    bad = "ee" + "0" * 38
    clone.store.update(lambda snap: Change({builds.record_path(bad): b"{not json"}, "broken\n", ALICE))
    index = Index(clone.store)
    index.refresh()
    assert [r["id"] for r in index.rows()] == [good]
    assert any(bad[:7] in p for p in index.problems)
    result = sluice("--json", "list", repo_path=str(clone.path))
    assert result.code == 0 and "warning" in result.err and len(result.json) == 1


def test_a_build_that_becomes_unreadable_leaves_the_listing(clone, make_srpm):
    """Its last readable state is not shown as if current; the problem says why,
    and a later event cannot extend the stale fold and hide the problem."""
    kept = clone.submit(make_srpm("kept"), who=BOB)
    broken = clone.submit(make_srpm("broken"), who=BOB)
    index = Index(clone.store)
    index.refresh()
    clone.store.update(lambda snap: Change({builds.record_path(broken): b"{not json"}, "broken\n", ALICE))
    index.refresh()
    assert [r["id"] for r in index.rows()] == [kept]
    assert any(broken[:7] in p for p in index.problems)
    clone.queue(BOB).perform(Action(Op.CANCEL, kept))
    index.refresh()
    assert any(broken[:7] in p for p in index.problems)


def test_an_index_moved_on_by_another_process_is_not_rewound(clone, make_srpm, monkeypatch):
    """Another process refreshes past a writer's older snapshot between the
    writer's first look and its lock: the writer must not rebuild backwards."""
    clone.submit(make_srpm("one"), who=BOB)
    older = clone.store.snapshot()
    clone.submit(make_srpm("two"), who=BOB)
    Index(clone.store).refresh()  # the other process: now at the head
    writer = Index(clone.store)
    real = writer.indexed
    looks = iter([None])  # the writer's first look predates that refresh
    monkeypatch.setattr(writer, "indexed", lambda: next(looks, None) or real())
    assert writer.refresh(older) == clone.store.head()
    assert writer.count() == 2
