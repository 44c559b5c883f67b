"""The service that changes builds: every transition goes through `Queue`.

The CLI and the TUI both call `perform(Action)`; the runner (issue 3) calls
`record` for its own ops. Each call is one compare-and-swap write whose plan
resolves the id, folds the build, checks the event against the policy and the
state it lands on, and is redone from scratch when another writer got there
first.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from app import audit, builds, lifecycle
from app.actions import Action
from app.errors import StateConflict
from app.index import Index
from app.lifecycle import RULES, BuildView, extend
from app.model import Event, Op, State, StoredEvent, decode_event, timestamp
from backends.base import Change, Person, Snapshot, StateStore

BATCH_OPS = frozenset({Op.APPROVE, Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE})


def make_event(view: BuildView, op: Op, actor: str, replica: str, *, reason: str = "",
               dst: State | None = None, arch: str | None = None,
               data: Mapping[str, Any] | None = None) -> Event:
    """The next event on `view`'s build, with the task changes `op` implies."""
    if op is Op.FINISH and dst is None:  # the build's state follows from its tasks
        changed = {a: State(s) for a, s in (data or {}).get("tasks", {}).items()}
        dst = lifecycle.finish_state({**view.tasks, **changed})
    target = lifecycle.next_state(view, op, dst)
    tasks: Mapping[str, State] = {}
    if op is Op.CANCEL:
        tasks = {a: State.CANCELLED for a, s in view.tasks.items() if s in (State.QUEUED, State.BUILDING)}
    elif op is Op.RESUBMIT:
        tasks = {a: State.QUEUED for a in view.record.arches}
    elif op is Op.RESOLVE and view.contested and target in view.contenders:
        tasks = lifecycle.branch_tasks(view, target)
    body = dict(data or {})
    if tasks or "tasks" in body:
        body["tasks"] = {**{a: str(s) for a, s in tasks.items()}, **body.get("tasks", {})}
    return Event(op, view.state, target, actor, replica, view.lamport + 1, tuple(sorted(view.heads)),
                 timestamp(), reason, arch, body)


class Queue:
    def __init__(self, store: StateStore, actor: Person, index: Index) -> None:
        self.store = store
        self.actor = actor
        self.index = index
        # told of every write: [(the build before, after, the event id)]; mail hangs here
        self.listeners: list[Callable[[list[tuple[BuildView, BuildView, str]]], None]] = []

    def view(self, build: str) -> BuildView:
        snap = self.store.snapshot()
        return builds.load_build(snap, builds.resolve(snap, build))

    def allowed(self, view: BuildView) -> list[Op]:
        """What the current user may do to `view` now."""
        return lifecycle.allowed_ops(view, self.actor.email, builds.load_policy(self.store.snapshot()))

    def perform(self, action: Action) -> list[BuildView]:
        """Apply a maintainer's action (to its whole batch where the op is a
        batch op) and return the builds as they now fold."""
        return self._apply(action.build, action.op, reason=action.reason, dst=action.to)

    def record(self, build: str, op: Op, *, dst: State | None = None, arch: str | None = None,
               data: Mapping[str, Any] | None = None, reason: str = "") -> BuildView:
        """Write one of the runner's own events (start, finish, supersede; a
        finish with no `dst` leads where its task changes take the build)."""
        return self._apply(build, op, reason=reason, dst=dst, arch=arch, data=data)[0]

    def check(self, build: str, op: Op, **how: Any) -> list[BuildView]:
        """The builds `op` on `build` would act on (its whole batch for batch
        ops), as they fold now; raises what `perform` or `record` with the
        same `how` (reason, dst, data) would, writing nothing. For work that
        must happen before the event (signing, rescue) and for the cockpit,
        which must know before it asks for a reason or a confirmation."""
        snap = self.store.snapshot()
        return [member for member, _ in self._plan(snap, build, op, how, None)]

    def record_each(self, build: str, op: Op, data: Mapping[str, Mapping[str, Any]]) -> list[BuildView]:
        """Write `op` on `build` (its whole batch for batch ops) in one commit,
        each member's event carrying its own `data[member id]`; refused when
        the members are not exactly those `data` was prepared for."""
        return self._apply(build, op, per_build=data)

    def _apply(self, build: str, op: Op, per_build: Mapping[str, Mapping[str, Any]] | None = None,
               **how: Any) -> list[BuildView]:
        changes: list[tuple[BuildView, BuildView, str]] = []

        def plan(snap: Snapshot) -> Change:
            planned = self._plan(snap, build, op, how, per_build)
            changes[:] = [(member, folded, path.rsplit("/", 1)[-1][:-len(".json")])
                          for member, (path, _, _, folded) in planned]
            files = {path: body for _, (path, body, _, _) in planned}
            events = [event for _, (_, _, event, _) in planned]
            return Change(files, audit.build_message([m for m, _ in planned], events), self.actor)

        self.store.update(plan)
        for listener in self.listeners:
            listener(list(changes))
        return [after for _, after, _ in changes]

    def _plan(self, snap: Snapshot, build: str, op: Op, how: Mapping[str, Any],
              per_build: Mapping[str, Mapping[str, Any]] | None) -> list[tuple[BuildView, tuple]]:
        """Each member with (event path, body, event, the member as it folds after it)."""
        view = builds.load_build(snap, builds.resolve(snap, build))
        policy = builds.load_policy(snap)
        members = self._members(snap, view, op)
        if per_build is not None and {m.id for m in members} != set(per_build):
            raise StateConflict(f"the builds to {op} changed while sluice worked on them",
                                f"nothing was recorded; run the {op} again")
        planned = []
        for member in members:
            data = per_build[member.id] if per_build is not None else how.get("data")
            event = make_event(member, op, self.actor.email, self.store.replica,
                               **{**how, "data": data})
            lifecycle.check(member, member.record, event, policy)
            event_id, body = event.encode()
            decode_event(event_id, body)  # never write what every reader would refuse
            # the commit adds exactly this event, so this is how the build folds after it
            folded = extend(member, member.record, StoredEvent(event_id, event))
            planned.append((member, (builds.event_path(member.id, event_id), body, event, folded)))
        return planned

    def _members(self, snap: Snapshot, view: BuildView, op: Op) -> list[BuildView]:
        """The builds `op` acts on: the whole batch for batch ops, all or nothing."""
        batch = view.record.batch
        if op not in BATCH_OPS or not batch:
            return [view]
        self.index.refresh(snap)
        # The index may already know builds newer than `snap`: they were not
        # members when `snap` was taken, and if they landed since, the
        # compare-and-swap fails and this plan runs again with them.
        members = [builds.load_build(snap, i) if i != view.id else view for i in self.index.batch(batch)
                   if i == view.id or snap.object_id(builds.build_dir(i)) is not None]
        waiting = [m for m in members if m.state not in RULES[op].sources or m.contested]
        if waiting:
            listed = ", ".join(f"{m.record.nvr} ({m.record.short}) is {m.state}" for m in waiting)
            raise StateConflict(f"batch {batch} is not ready to {op}: {listed}",
                                f"a batch is released all or nothing; every member must be "
                                f"{' or '.join(sorted(RULES[op].sources))} first")
        return members
