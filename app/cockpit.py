"""What the terminal UI asks before it acts, answered by the same rules the
CLI runs.

The CLI learns that an action is refused by trying it. The cockpit must know
*before* it asks for a reason or a confirmation, so that "may I withdraw
this?" never ends in a dialog followed by a refusal: `refusal` runs the very
check `Queue.perform` runs, on the current snapshot, and writes nothing.
"""
from __future__ import annotations

from app.actions import Action
from app.errors import NotAvailable, SluiceError
from app.model import Op
from app.queue import Queue
from app.rescue import rescue_data

# The ops a person performs, in the order the build screen lists them.
PERSON_OPS: tuple[Op, ...] = (Op.HOLD, Op.UNHOLD, Op.APPROVE, Op.WITHDRAW, Op.CANCEL, Op.RESUBMIT,
                              Op.RESCUE, Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE, Op.MARK_TESTED,
                              Op.RESOLVE)
# Ops whose work is more than an event (signing RPMs, publishing repos): the
# UI may only perform them once their own service exists; until then it says
# what the CLI says. (Rescue's service exists: `Services.perform` calls it.)
_SERVICE_OPS = {Op.SIGN: "sign", Op.PUSH_TESTING: "push", Op.PUSH_STABLE: "push"}


def unavailable(op: Op) -> NotAvailable | None:
    """Why the cockpit cannot perform `op` (None: it can): the CLI can, but
    the cockpit does not call that service yet."""
    command = _SERVICE_OPS.get(op)
    if command is None:
        return None
    return NotAvailable(f"the cockpit cannot {op} yet", f"run `sluice {command} …` in a shell")


def refusal(queue: Queue, action: Action) -> SluiceError | None:
    """Why `queue.perform(action)` would be refused now (None: it would not),
    batch readiness included, without writing anything."""
    missing = unavailable(action.op)
    if missing is not None:
        return missing
    try:
        data = rescue_data(queue.view(action.build)) if action.op is Op.RESCUE else None
        queue.check(action.build, action.op, reason=action.reason or "-", dst=action.to, data=data)
    except SluiceError as exc:
        return exc
    return None
