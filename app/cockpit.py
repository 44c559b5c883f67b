"""What the terminal UI asks before it acts, answered by the same rules the
CLI runs.

The CLI learns that an action is refused by trying it. The cockpit must know
*before* it asks for a reason or a confirmation, so that "may I withdraw
this?" never ends in a dialog followed by a refusal: `refusal` runs the very
check `Queue.perform` runs, on the current snapshot, and writes nothing.
"""
from __future__ import annotations

from app import builds, lifecycle
from app.actions import Action
from app.cli.later import PENDING
from app.errors import NotAvailable, SluiceError
from app.model import Op
from app.queue import Queue, make_event
from app.rescue import rescue_data

# The ops a person performs, in the order the build screen lists them.
PERSON_OPS: tuple[Op, ...] = (Op.HOLD, Op.UNHOLD, Op.APPROVE, Op.WITHDRAW, Op.CANCEL, Op.RESUBMIT,
                              Op.RESCUE, Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE, Op.MARK_TESTED,
                              Op.RESOLVE)
# Ops that take something away or release something for good: the UI asks
# first, and the answer it offers is No.
DESTRUCTIVE = frozenset({Op.WITHDRAW, Op.CANCEL, Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE})
# Ops whose work is more than an event (signing RPMs, publishing repos): the
# UI may only perform them once their own service exists; until then it says
# what the CLI says. (Rescue's service exists: `Services.perform` calls it.)
_SERVICE_OPS = {Op.SIGN: "sign", Op.PUSH_TESTING: "push", Op.PUSH_STABLE: "push"}


def unavailable(op: Op) -> NotAvailable | None:
    """Why this version cannot perform `op` at all (None: it can)."""
    command = _SERVICE_OPS.get(op)
    if command is None:
        return None
    if command in PENDING:
        return NotAvailable(f"{op} is not available yet: it needs {PENDING[command]}",
                            f"the CLI answers the same (`sluice {command}`); see docs/roadmap.md")
    # The command has landed but the cockpit does not call its service yet.
    return NotAvailable(f"the cockpit cannot {op} yet", f"run `sluice {command} …` in a shell")


def refusal(queue: Queue, action: Action) -> SluiceError | None:
    """Why `queue.perform(action)` would be refused now (None: it would not),
    without writing anything. Batch readiness is checked by `perform` itself."""
    missing = unavailable(action.op)
    if missing is not None:
        return missing
    try:
        snap = queue.store.snapshot()
        view = builds.load_build(snap, builds.resolve(snap, action.build))
        policy = builds.load_policy(snap)
        data = rescue_data(view) if action.op is Op.RESCUE else None
        event = make_event(view, action.op, queue.actor.email, queue.store.replica,
                           reason=action.reason or "-", dst=action.to, data=data)
        lifecycle.check(view, view.record, event, policy)
    except SluiceError as exc:
        return exc
    return None
