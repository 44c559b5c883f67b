"""Build lifecycle: who may move a build from which state to which, and the fold.

A build's state is never stored; it is derived by `fold` from its events.
Events form a DAG through `prev` (the heads the writer had seen). With one
head, or several heads that agree, the state is the heads' `to`. Heads that
disagree were written concurrently on different clones: the build is
*contested*, the branch holding the stronger op wins (withdraw beats approve,
cancel beats start: stopping beats advancing), and only `resolve` may follow.
Every clone folds the same events to the same answer.

`check` is the one validation of an event: the service runs it before writing,
and sync runs it again on every event fetched from another clone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from app import tasks
from app.errors import Contested, NotPermitted, StateConflict, UsageError
from app.model import BuildRecord, Event, Op, State, StoredEvent
from app.policy import Policy

S = State
_OWNER = frozenset({"owner", "admin"})


@dataclass(frozen=True)
class Rule:
    sources: frozenset[State]
    target: State | None  # None: chosen per event (unhold, finish, resolve)
    who: frozenset[str]
    scratch: bool = True  # allowed on scratch builds


RULES: Mapping[Op, Rule] = {
    Op.SUBMIT: Rule(frozenset(), S.QUEUED, _OWNER),
    Op.CANCEL: Rule(frozenset({S.QUEUED, S.BUILDING}), S.CANCELLED, _OWNER),
    Op.RESUBMIT: Rule(frozenset({S.FAILED, S.CANCELLED}), S.QUEUED, _OWNER),
    Op.START: Rule(frozenset({S.QUEUED, S.BUILDING}), S.BUILDING, frozenset({"runner"})),
    Op.FINISH: Rule(frozenset({S.BUILDING}), None, frozenset({"runner"})),
    Op.RESCUE: Rule(frozenset({S.FAILED_TO_IMPORT}), S.BUILT, _OWNER),
    Op.APPROVE: Rule(frozenset({S.BUILT}), S.NEEDSIGN, _OWNER, scratch=False),
    Op.HOLD: Rule(frozenset({S.BUILT, S.NEEDSIGN}), S.HELD, _OWNER, scratch=False),
    Op.UNHOLD: Rule(frozenset({S.HELD}), None, _OWNER, scratch=False),
    Op.WITHDRAW: Rule(frozenset({S.BUILT, S.HELD, S.NEEDSIGN, S.SIGNED, S.TESTING}), S.WITHDRAWN,
                      _OWNER, scratch=False),
    Op.SIGN: Rule(frozenset({S.NEEDSIGN}), S.SIGNED, frozenset({"signer"}), scratch=False),
    Op.PUSH_TESTING: Rule(frozenset({S.SIGNED}), S.TESTING, frozenset({"signer", "admin"}), scratch=False),
    Op.MARK_TESTED: Rule(frozenset({S.TESTING}), S.TESTED, frozenset({"tester"}), scratch=False),
    Op.PUSH_STABLE: Rule(frozenset({S.TESTED}), S.STABLE, frozenset({"admin"}), scratch=False),
    Op.SUPERSEDE: Rule(frozenset({S.BUILT, S.HELD, S.NEEDSIGN, S.FAILED_TO_IMPORT}), S.SUPERSEDED,
                       frozenset({"runner"}), scratch=False),
    Op.RESOLVE: Rule(frozenset(State), None, _OWNER),
}
FINISH_TARGETS = frozenset({S.BUILDING, S.BUILT, S.FAILED, S.FAILED_TO_IMPORT})
# What a finished attempt makes of its task: queued again when the host was
# lost and another attempt is due.
TASK_RESULTS = frozenset({S.BUILT, S.FAILED, S.FAILED_TO_IMPORT, S.QUEUED})

# Which concurrent op wins a contest: the one that stops or holds a build
# beats the one that advances it.
PRECEDENCE: Mapping[Op, int] = {
    Op.WITHDRAW: 90, Op.SUPERSEDE: 85, Op.CANCEL: 80, Op.HOLD: 70, Op.RESOLVE: 60,
    Op.UNHOLD: 40, Op.RESUBMIT: 35, Op.RESCUE: 30, Op.FINISH: 25, Op.START: 20,
    Op.APPROVE: 15, Op.SIGN: 14, Op.PUSH_TESTING: 13, Op.MARK_TESTED: 12, Op.PUSH_STABLE: 11,
    Op.SUBMIT: 0,
}


@dataclass(frozen=True)
class BuildView:
    """A build as its events fold: the answer every clone agrees on."""

    record: BuildRecord
    events: tuple[StoredEvent, ...]  # in fold order
    state: State
    contested: bool
    contenders: tuple[State, ...]  # the heads' states when contested
    heads: tuple[str, ...]
    tasks: Mapping[str, State]
    before_hold: State | None
    updated: str  # the newest event's time (the record's when there is none)
    last: tuple[int, str, str] | None  # the fold key of the last event

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def lamport(self) -> int:
        return self.last[0] if self.last else 0

    def summary(self) -> dict:
        r = self.record
        return {"id": r.id, "package": r.package, "nvr": r.nvr, "owner": r.owner, "target": r.target,
                "state": str(self.state), "arches": {a: str(s) for a, s in self.tasks.items()},
                "batch": r.batch, "scratch": r.scratch, "contested": self.contested,
                "created": r.created, "updated": self.updated}

    def detail(self) -> dict:
        """`show --json`: the summary plus events, tasks (with attempts) and artifacts."""
        r = self.record
        attempts = tasks.attempts(self)
        return {**self.summary(), "epoch": r.epoch, "version": r.version, "release": r.release,
                "nevr": r.nevr, "after": r.after, "buildrequires": list(r.buildrequires),
                "contenders": [str(s) for s in self.contenders],
                "events": [{"id": s.id, **s.event.to_json()} for s in self.events],
                "tasks": [{"arch": arch, "state": str(state),
                           "host": attempts[arch][-1].host if attempts.get(arch) else None,
                           "attempts": [a.to_json() for a in attempts.get(arch, [])],
                           "logs": tasks.logs(self, arch)}
                          for arch, state in self.tasks.items()],
                "artifacts": [a.to_json() for a in tasks.artifacts(self)],
                "buildroot": tasks.buildroot_of(self), "installed": tasks.installed(self)}


def fold(record: BuildRecord, events: Iterable[StoredEvent]) -> BuildView:
    order = sorted(events, key=lambda e: e.key)
    by_id = {e.id: e for e in order}
    seen = {p for e in order for p in e.event.prev if p in by_id}
    heads = [e for e in order if e.id not in seen]
    if not heads:
        return BuildView(record, (), S.QUEUED, False, (), (), {a: S.QUEUED for a in record.arches}, None,
                         record.created, None)
    outcomes = tuple(dict.fromkeys(h.event.dst for h in heads))
    if len(outcomes) == 1:
        winner, branch = heads[-1], order
    else:
        closures = {h.id: _closure(h, by_id) for h in heads}
        common = set.intersection(*closures.values())
        winner = max(heads, key=lambda h: (max(PRECEDENCE[by_id[i].event.op] for i in closures[h.id] - common),
                                           h.key))
        branch = [e for e in order if e.id in closures[winner.id]]
    tasks: dict[str, State] = {}
    before_hold = None
    for stored in branch:
        tasks.update((arch, State(s)) for arch, s in stored.event.tasks.items())
        if stored.event.op is Op.HOLD:
            before_hold = stored.event.src
    return BuildView(record, tuple(order), winner.event.dst, len(outcomes) > 1,
                     outcomes if len(outcomes) > 1 else (), tuple(h.id for h in heads), tasks, before_hold,
                     max((e.event.at for e in order), default=record.created), order[-1].key)


def follows(view: BuildView | None, stored: StoredEvent) -> bool:
    """Whether `stored` comes after every event of an uncontested `view` and
    names every head in `prev`: the usual write, whose author saw the whole
    build. Then the fold with it follows from `view` alone."""
    return view is not None and not view.contested and view.last is not None and stored.key > view.last \
        and set(view.heads) <= set(stored.event.prev)


def extend(view: BuildView | None, record: BuildRecord, stored: StoredEvent) -> BuildView:
    """`fold` of the view's events plus `stored`, in O(1) when `stored` follows."""
    if not follows(view, stored):
        if view is not None and view.last is not None and not view.events:
            raise ValueError("a resumed view lacks its events: it can only take events that follow it")
        return fold(record, (view.events if view else ()) + (stored,))
    event = stored.event
    tasks = {**view.tasks, **{arch: State(s) for arch, s in event.tasks.items()}}
    before_hold = event.src if event.op is Op.HOLD else view.before_hold
    return BuildView(record, view.events + (stored,), event.dst, False, (), (stored.id,), tasks, before_hold,
                     max(view.updated, event.at), stored.key)


def resume(record: BuildRecord, state: State, heads: tuple[str, ...], tasks: Mapping[str, State],
           before_hold: State | None, updated: str, last: tuple[int, str, str]) -> BuildView:
    """An uncontested view rebuilt from what the index kept of it, without its
    events: only for extending with events that follow it (see `follows`) and
    for its summary. `events` is empty; never show or check against it."""
    return BuildView(record, (), state, False, (), heads, tasks, before_hold, updated, last)


def _closure(head: StoredEvent, by_id: Mapping[str, StoredEvent]) -> set[str]:
    found, stack = set(), [head.id]
    while stack:
        current = stack.pop()
        if current in found or current not in by_id:
            continue
        found.add(current)
        stack.extend(by_id[current].event.prev)
    return found


def branch_tasks(view: BuildView, state: State) -> dict[str, State]:
    """The task states along the strongest head that reached `state` (for resolve)."""
    by_id = {e.id: e for e in view.events}
    heads = [by_id[h] for h in view.heads if by_id[h].event.dst == state]
    head = max(heads, key=lambda h: (PRECEDENCE[h.event.op], h.key))
    members = _closure(head, by_id)
    tasks: dict[str, State] = {}
    for stored in view.events:
        if stored.id in members:
            tasks.update((arch, State(s)) for arch, s in stored.event.tasks.items())
    return tasks


def finish_state(tasks: Mapping[str, State]) -> State:
    """The build's state once its tasks are as given: building while any task
    is still to run, else built when all built, failed when any failed (a
    rebuild is needed anyway), else failed-to-import (rescue can fix that)."""
    states = set(tasks.values())
    if states & {S.QUEUED, S.BUILDING}:
        return S.BUILDING
    if states <= {S.BUILT}:
        return S.BUILT
    return S.FAILED if S.FAILED in states else S.FAILED_TO_IMPORT


def next_state(view: BuildView | None, op: Op, chosen: State | None = None) -> State:
    """The state `op` leads to from `view` (before any check)."""
    rule = RULES[op]
    if rule.target is not None:
        return rule.target
    if op is Op.UNHOLD:
        return (view.before_hold if view else None) or S.BUILT
    if chosen is None:
        raise UsageError(f"{op} needs a target state")
    return chosen


def allowed_ops(view: BuildView, actor: str, policy: Policy) -> list[Op]:
    """The ops `actor` may apply to `view` now (for messages and the TUI)."""
    found = []
    for op, rule in RULES.items():
        if op in (Op.SUBMIT, Op.START, Op.FINISH, Op.SUPERSEDE):
            continue
        if (op is Op.RESOLVE) != view.contested:
            continue
        if view.state in rule.sources and (rule.scratch or not view.record.scratch) \
                and _permitted(rule, op, actor, view.record, policy):
            found.append(op)
    return found


def check(view: BuildView | None, record: BuildRecord, event: Event, policy: Policy) -> None:
    """Refuse `event` unless its actor may apply it to the build as folded in
    `view` (None for a new build). Raises NotPermitted, StateConflict or
    Contested, with what to do next."""
    op, rule, name = event.op, RULES[event.op], f"{record.nvr} ({record.short})"
    if not _permitted(rule, op, event.actor, record, policy):
        raise NotPermitted(f"{event.actor} may not {op} {name}: that needs {_who(rule, op)}",
                           _permission_hint(rule, record))
    state = view.state if view else None
    if view is not None and view.contested and op is not Op.RESOLVE:
        raise Contested(f"{name} is contested: concurrent events ended in "
                        f"{' and '.join(view.contenders)}",
                        f"decide with `sluice resolve {record.short} --to STATE`")
    if op is Op.RESOLVE and (view is None or not view.contested):
        raise StateConflict(f"{name} is not contested; there is nothing to resolve")
    if (state is None) != (op is Op.SUBMIT) or (state is not None and state not in rule.sources):
        options = ", ".join(allowed_ops(view, event.actor, policy)) if view else ""
        raise StateConflict(f"cannot {op} {name}: it is {state}",
                            f"in {state} you may: {options}" if options else
                            f"nothing you may do changes a build in {state}")
    if record.scratch and not rule.scratch:
        raise StateConflict(f"cannot {op} {name}: scratch builds stop at built and never enter a repo")
    _check_target(view, event)
    _check_shape(view, record, event)


def _permitted(rule: Rule, op: Op, actor: str, record: BuildRecord, policy: Policy) -> bool:
    if not policy.permits(actor, rule.who, record.package):
        return False
    if op is Op.MARK_TESTED and actor == record.owner and not policy.owner_may_mark_tested:
        return False
    return True


def _who(rule: Rule, op: Op) -> str:
    roles = " or ".join(sorted("admin (runner)" if r == "runner" else r for r in rule.who))
    return roles + (" who is not the build's owner" if op is Op.MARK_TESTED else "")


def _permission_hint(rule: Rule, record: BuildRecord) -> str:
    role = sorted(rule.who - {"admin", "runner"} or rule.who)[0]
    role = "admin" if role == "runner" else role
    return f"ask an admin: `sluice policy grant {role} EMAIL --package {record.package}`"


def _check_target(view: BuildView | None, event: Event) -> None:
    op, dst = event.op, event.dst
    if op is Op.UNHOLD:
        expected: Sequence[State] = (next_state(view, op),)
    elif op is Op.FINISH:
        expected = tuple(FINISH_TARGETS)
    elif op is Op.RESOLVE:
        expected = view.contenders if view else ()
        if dst not in expected:
            raise UsageError(f"resolve must choose one of {', '.join(expected)}, not {dst}")
    else:
        expected = (RULES[op].target,)
    if dst not in expected:
        raise StateConflict(f"{op} leads to {' or '.join(map(str, expected))}, not {dst}")


def _check_shape(view: BuildView | None, record: BuildRecord, event: Event) -> None:
    """The bookkeeping an honest writer gets right: from, lamport and prev."""
    state = view.state if view else None
    if event.src != state:
        raise StateConflict(f"{event.op} event says the build was {event.src}, but it was {state}")
    lamport = (view.lamport if view else 0) + 1
    heads = tuple(sorted(view.heads)) if view else ()
    if event.lamport != lamport or tuple(sorted(event.prev)) != heads:
        raise StateConflict(f"{event.op} event does not follow the events it names "
                            f"(lamport {event.lamport}, expected {lamport})")
    for arch in event.tasks:
        if arch not in record.arches:
            raise StateConflict(f"{event.op} event names arch {arch}, which the build does not have")
    if view is not None and event.op in (Op.START, Op.FINISH, Op.RESCUE):
        _check_task_step(view, record, event)


def _check_task_step(view: BuildView, record: BuildRecord, event: Event) -> None:
    """The runner's steps move one task at a time: start claims a queued task
    (so two runners never build one task twice), finish ends a building one
    and the build's state follows from all its tasks; rescue turns every
    failed-to-import task into built."""
    op, arch, name = event.op, event.arch, f"{record.nvr} ({record.short})"
    changes = {a: State(s) for a, s in event.tasks.items()}
    if op is Op.RESCUE:
        wanted = {a: S.BUILT for a, s in view.tasks.items() if s is S.FAILED_TO_IMPORT}
        if changes != wanted:
            raise StateConflict(f"rescue of {name} must turn exactly its failed-to-import tasks into built")
        return
    if arch is None or set(changes) != {arch}:
        raise StateConflict(f"{op} of {name} must name one arch and change only that task")
    current = view.tasks.get(arch)
    if op is Op.START:
        if current is not S.QUEUED or changes[arch] is not S.BUILDING:
            raise StateConflict(f"cannot start {name} on {arch}: that task is {current}, not queued",
                                "another runner may have claimed it first")
        return
    if current is not S.BUILDING or changes[arch] not in TASK_RESULTS:
        raise StateConflict(f"cannot finish {name} on {arch}: that task is {current}, not building")
    expected = finish_state({**view.tasks, **changes})
    if event.dst is not expected:
        raise StateConflict(f"finish of {name} on {arch} leads to {expected}, not {event.dst}")
