"""What the terminal UI asks before it acts, answered by the same rules the
CLI runs.

The CLI learns that an action is refused by trying it. The cockpit must know
*before* it asks for a reason or a confirmation, so that "may I withdraw
this?" never ends in a dialog followed by a refusal: `refusal` runs the very
check `Queue.perform` runs, on the current snapshot, and writes nothing.
"""
from __future__ import annotations

from app.actions import Action
from app.errors import SluiceError
from app.keys import Keys
from app.model import Op
from app.queue import Queue
from app.rescue import rescue_data

# The ops a person performs, in the order the build screen lists them.
PERSON_OPS: tuple[Op, ...] = (Op.HOLD, Op.UNHOLD, Op.APPROVE, Op.WITHDRAW, Op.CANCEL, Op.RESUBMIT,
                              Op.RESCUE, Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE, Op.MARK_TESTED,
                              Op.RESOLVE)
# Ops whose work needs the target's signing key on this machine (signing
# RPMs, signing repomd.xml): a missing key is refused before any dialog too.
KEYED_OPS = frozenset({Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE})


def refusal(queue: Queue, action: Action, keys: Keys | None = None) -> SluiceError | None:
    """Why `queue.perform(action)` (or, for sign and push, their services)
    would be refused now (None: it would not), batch readiness included,
    without writing anything. With `keys`, sign and push also need each
    target's key here (`Keys.for_target`, what the services ask first)."""
    try:
        data = rescue_data(queue.view(action.build)) if action.op is Op.RESCUE else None
        members = queue.check(action.build, action.op, reason=action.reason or "-", dst=action.to, data=data)
        if keys is not None and action.op in KEYED_OPS:
            for target in sorted({m.record.target for m in members}):
                keys.for_target(target)
    except SluiceError as exc:
        return exc
    return None
