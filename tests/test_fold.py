"""The fold: deterministic order, concurrency, precedence and `contested`."""
from __future__ import annotations

import itertools
import random

import pytest

from app import lifecycle
from app.errors import BadInput, Contested, NotPermitted, StateConflict, UsageError
from app.lifecycle import extend, fold, resume
from app.model import BuildRecord, Event, Op, State, StoredEvent, decode_event
from app.policy import Policy
from app.queue import make_event

RECORD = BuildRecord(id="ab" * 20, package="inventor", epoch=None, version="2.1.5", release="12.fc5",
                     target="default", arches=("x86_64", "aarch64"), owner="bob@example.org",
                     created="2026-11-21T10:00:00.000Z", srpm={"name": "inventor.src.rpm"})
POLICY = Policy.initial("alice@example.org").grant("owner", "bob@example.org", "inventor") \
    .grant("signer", "sam@example.org").grant("tester", "carol@example.org")


def stored(event: Event) -> StoredEvent:
    event_id, _ = event.encode()
    return StoredEvent(event_id, event)


def submit_event() -> StoredEvent:
    return stored(Event(Op.SUBMIT, None, State.QUEUED, "bob@example.org", "aaaa1111", 1, (),
                        "2026-11-21T10:00:00.000Z", data={"tasks": {"x86_64": "queued", "aarch64": "queued"}}))


def step(events: list[StoredEvent], op: Op, actor: str, replica: str = "aaaa1111", **how) -> StoredEvent:
    """The event `actor` writes after seeing `events` (checked like a real write)."""
    view = fold(RECORD, events)
    event = make_event(view, op, actor, replica, **how)
    lifecycle.check(view, RECORD, event, POLICY)
    return stored(event)


def built_history() -> list[StoredEvent]:
    events = [submit_event()]
    for arch in ("x86_64", "aarch64"):
        events.append(step(events, Op.START, "alice@example.org", arch=arch, data={"tasks": {arch: "building"}}))
    events.append(step(events, Op.FINISH, "alice@example.org", dst=State.BUILDING, arch="x86_64",
                       data={"tasks": {"x86_64": "built"}}))
    events.append(step(events, Op.FINISH, "alice@example.org", dst=State.BUILT, arch="aarch64",
                       data={"tasks": {"aarch64": "built"}}))
    return events


def test_linear_history_folds_to_last_state_and_tasks():
    events = built_history()
    view = fold(RECORD, events)
    assert view.state is State.BUILT
    assert not view.contested
    assert dict(view.tasks) == {"x86_64": State.BUILT, "aarch64": State.BUILT}
    assert view.heads == (events[-1].id,)


def test_fold_ignores_the_order_events_are_read_in():
    events = built_history()
    events.append(step(events, Op.HOLD, "bob@example.org", reason="wait"))
    expected = fold(RECORD, events)
    shuffle = random.Random(7)
    for _ in range(20):
        shuffled = shuffle.sample(events, len(events))
        view = fold(RECORD, shuffled)
        assert (view.state, view.heads, dict(view.tasks)) == (expected.state, expected.heads, dict(expected.tasks))


def test_unhold_returns_to_the_state_before_the_hold():
    events = built_history()
    events.append(step(events, Op.APPROVE, "bob@example.org"))
    events.append(step(events, Op.HOLD, "bob@example.org", reason="libcdio first"))
    events.append(step(events, Op.UNHOLD, "bob@example.org"))
    assert fold(RECORD, events).state is State.NEEDSIGN


@pytest.mark.parametrize("strong, weak, winner", [
    (Op.WITHDRAW, Op.APPROVE, State.WITHDRAWN),
    (Op.HOLD, Op.APPROVE, State.HELD),
    (Op.WITHDRAW, Op.HOLD, State.WITHDRAWN),
])
def test_concurrent_different_outcomes_are_contested_and_precedence_picks(strong, weak, winner):
    base = built_history()
    a = step(base, strong, "bob@example.org", replica="aaaa1111", reason="why")
    b = step(base, weak, "alice@example.org", replica="bbbb2222", reason="why")
    for order in itertools.permutations(base + [a, b]):
        view = fold(RECORD, order)
        assert view.contested
        assert view.state is winner
        assert set(view.contenders) == {a.event.dst, b.event.dst}


def test_cancel_beats_start():
    base = [submit_event()]
    cancel = step(base, Op.CANCEL, "bob@example.org", replica="aaaa1111")
    start = step(base, Op.START, "alice@example.org", replica="bbbb2222", arch="x86_64",
                 data={"tasks": {"x86_64": "building"}})
    view = fold(RECORD, base + [cancel, start])
    assert view.contested and view.state is State.CANCELLED
    assert view.tasks["x86_64"] is State.CANCELLED  # tasks follow the winning branch


def test_the_stronger_branch_wins_even_when_the_other_is_longer():
    base = built_history()
    withdraw = step(base, Op.WITHDRAW, "bob@example.org", replica="aaaa1111", reason="bad ABI")
    approve = step(base, Op.APPROVE, "bob@example.org", replica="bbbb2222")
    sign = step(base + [approve], Op.SIGN, "sam@example.org", replica="bbbb2222")
    view = fold(RECORD, base + [withdraw, approve, sign])
    assert view.contested and view.state is State.WITHDRAWN


def test_concurrent_events_with_the_same_outcome_are_not_contested():
    base = built_history()
    a = step(base, Op.HOLD, "bob@example.org", replica="aaaa1111", reason="one")
    b = step(base, Op.HOLD, "alice@example.org", replica="bbbb2222", reason="two")
    view = fold(RECORD, base + [a, b])
    assert not view.contested and view.state is State.HELD
    assert set(view.heads) == {a.id, b.id}
    after = step(base + [a, b], Op.UNHOLD, "bob@example.org")
    assert set(after.event.prev) == {a.id, b.id}
    assert fold(RECORD, base + [a, b, after]).state is State.BUILT


def test_contested_build_refuses_everything_but_resolve():
    base = built_history()
    events = base + [step(base, Op.WITHDRAW, "bob@example.org", "aaaa1111", reason="x"),
                     step(base, Op.APPROVE, "bob@example.org", "bbbb2222")]
    view = fold(RECORD, events)
    with pytest.raises(Contested) as refused:
        lifecycle.check(view, RECORD, make_event(view, Op.UNHOLD, "bob@example.org", "aaaa1111"), POLICY)
    assert "sluice resolve" in refused.value.hint
    assert lifecycle.allowed_ops(view, "bob@example.org", POLICY) == [Op.RESOLVE]


def test_resolve_settles_on_a_contending_state_and_clears_the_flag():
    base = built_history()
    events = base + [step(base, Op.WITHDRAW, "bob@example.org", "aaaa1111", reason="x"),
                     step(base, Op.APPROVE, "bob@example.org", "bbbb2222")]
    resolved = step(events, Op.RESOLVE, "bob@example.org", dst=State.NEEDSIGN, reason="the ABI is fine")
    view = fold(RECORD, events + [resolved])
    assert not view.contested and view.state is State.NEEDSIGN
    with pytest.raises(UsageError):
        step(events, Op.RESOLVE, "bob@example.org", dst=State.STABLE)


def test_resolve_on_an_uncontested_build_is_refused():
    with pytest.raises(StateConflict):
        step(built_history(), Op.RESOLVE, "bob@example.org", dst=State.BUILT)


def test_transition_not_allowed_in_state_names_state_and_allowed_ops():
    with pytest.raises(StateConflict) as refused:
        step([submit_event()], Op.APPROVE, "bob@example.org")
    assert "it is queued" in refused.value.message
    assert "cancel" in refused.value.hint


def test_permissions_follow_the_table():
    events = built_history()
    with pytest.raises(NotPermitted) as refused:
        step(events, Op.APPROVE, "mallory@example.org")
    assert "policy grant owner" in refused.value.hint
    events.append(step(events, Op.APPROVE, "bob@example.org"))
    with pytest.raises(NotPermitted):
        step(events, Op.SIGN, "alice@example.org")  # admins are not signers unless granted
    events.append(step(events, Op.SIGN, "sam@example.org"))
    events.append(step(events, Op.PUSH_TESTING, "sam@example.org"))
    with pytest.raises(NotPermitted):
        lifecycle.check(fold(RECORD, events), RECORD,
                        make_event(fold(RECORD, events), Op.MARK_TESTED, "bob@example.org", "aaaa1111"),
                        POLICY.grant("tester", "bob@example.org"))  # the owner may not test his own
    events.append(step(events, Op.MARK_TESTED, "carol@example.org"))
    with pytest.raises(NotPermitted):
        step(events, Op.PUSH_STABLE, "sam@example.org")
    events.append(step(events, Op.PUSH_STABLE, "alice@example.org"))
    assert fold(RECORD, events).state is State.STABLE


def test_owner_may_mark_tested_when_policy_allows():
    policy = Policy(POLICY.grant("tester", "bob@example.org").grants, owner_may_mark_tested=True)
    events = built_history()
    for op, who in ((Op.APPROVE, "bob@example.org"), (Op.SIGN, "sam@example.org"),
                    (Op.PUSH_TESTING, "sam@example.org")):
        events.append(step(events, op, who))
    view = fold(RECORD, events)
    strict = Policy(policy.grants, owner_may_mark_tested=False)
    with pytest.raises(NotPermitted):  # the same tester, but the build's owner, by default
        lifecycle.check(view, RECORD, make_event(view, Op.MARK_TESTED, "bob@example.org", "aaaa1111"), strict)
    tested = make_event(view, Op.MARK_TESTED, "bob@example.org", "aaaa1111")
    lifecycle.check(view, RECORD, tested, policy)
    assert fold(RECORD, events + [stored(tested)]).state is State.TESTED


def test_scratch_builds_stop_at_built():
    scratch = BuildRecord(**{**RECORD.__dict__, "scratch": True})
    events = built_history()
    view = fold(scratch, events)
    with pytest.raises(StateConflict) as refused:
        lifecycle.check(view, scratch, make_event(view, Op.APPROVE, "bob@example.org", "aaaa1111"), POLICY)
    assert "scratch" in refused.value.message


def test_forged_bookkeeping_is_refused():
    events = built_history()
    view = fold(RECORD, events)
    honest = make_event(view, Op.HOLD, "bob@example.org", "aaaa1111", reason="x")
    for forged in (Event(**{**honest.__dict__, "lamport": 99}),
                   Event(**{**honest.__dict__, "prev": ()}),
                   Event(**{**honest.__dict__, "src": State.NEEDSIGN}),
                   Event(**{**honest.__dict__, "dst": State.STABLE})):
        with pytest.raises(StateConflict):
            lifecycle.check(view, RECORD, forged, POLICY)


@pytest.mark.parametrize("reason, ok", [("line one\nline two\tindented", True), ("bell\x07", False),
                                         ("escape \x1b[31mred", False), ("nul\x00", False)])
def test_stored_events_refuse_control_characters_but_newlines_and_tabs(reason, ok):
    view = fold(RECORD, built_history())
    event = make_event(view, Op.HOLD, "bob@example.org", "aaaa1111", reason=reason)
    event_id, body = event.encode()
    if ok:
        assert decode_event(event_id, body).event.reason == reason
    else:
        with pytest.raises(BadInput, match="control characters"):
            decode_event(event_id, body)


def test_extend_equals_fold_through_hold_and_unhold():
    events = built_history()
    for op, actor in ((Op.HOLD, "bob@example.org"), (Op.UNHOLD, "bob@example.org"),
                      (Op.APPROVE, "bob@example.org"), (Op.HOLD, "bob@example.org")):
        view = fold(RECORD, events)
        following = step(events, op, actor, reason="x" if op is Op.HOLD else "")
        assert extend(view, RECORD, following) == fold(RECORD, events + [following])
        events.append(following)
    assert fold(RECORD, events).before_hold is State.NEEDSIGN


def test_a_resumed_view_refuses_an_event_it_cannot_take_exactly():
    events = built_history()
    view = fold(RECORD, events)
    resumed = resume(RECORD, view.state, view.heads, view.tasks, view.before_hold, view.updated, view.last)
    following = step(events, Op.HOLD, "bob@example.org", reason="x")
    assert extend(resumed, RECORD, following).summary() == fold(RECORD, events + [following]).summary()
    stale = stored(Event(**{**following.event.__dict__, "prev": (), "lamport": 2}))
    with pytest.raises(ValueError, match="resumed view"):
        extend(resumed, RECORD, stale)
