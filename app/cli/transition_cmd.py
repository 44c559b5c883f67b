"""The maintainer's transitions: cancel, resubmit, hold, unhold, withdraw,
approve, mark-tested and resolve. Each parses into an `Action`."""
from __future__ import annotations

import argparse

from app.actions import DESTRUCTIVE, NEEDS_REASON, Action
from app.cli import render
from app.cli.context import Context
from app.model import Op, State

# op, help, past tense for the report
TRANSITIONS = (
    (Op.CANCEL, "stop a queued or building build", "cancelled"),
    (Op.RESUBMIT, "queue a failed or cancelled build again", "resubmitted"),
    (Op.HOLD, "keep a built build from going further", "held"),
    (Op.UNHOLD, "release a hold", "unheld"),
    (Op.WITHDRAW, "take a build back for good (also from repos)", "withdrew"),
    (Op.APPROVE, "send a built build (or its whole batch) to be signed", "approved"),
    (Op.MARK_TESTED, "mark a build in testing as good", "marked tested"),
)


def register(commands, common) -> None:
    for op, text, verb in TRANSITIONS:
        p = commands.add_parser(str(op), parents=[common], help=text)
        p.add_argument("id", metavar="ID")
        p.add_argument("-m", "--message", default="", metavar="WHY",
                       required=op in NEEDS_REASON, help="why (kept in the event and the commit)")
        p.set_defaults(handler=transition, op=op, verb=verb)

    p = commands.add_parser("resolve", parents=[common], help="settle a contested build")
    p.add_argument("id", metavar="ID")
    p.add_argument("--to", required=True, choices=[str(s) for s in State], metavar="STATE",
                   help="the state the build should be in (one of the contending ones)")
    p.add_argument("-m", "--message", default="", metavar="WHY")
    p.set_defaults(handler=transition, op=Op.RESOLVE, verb="resolved")


def transition(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    to = State(args.to) if args.op is Op.RESOLVE else None
    action = Action(args.op, args.id, args.message, to)
    if args.op in DESTRUCTIVE:
        view = ctx.queue.view(args.id)
        ctx.confirm(f"{args.op} {view.record.nvr} ({view.record.short})?")
    views = ctx.queue.perform(action)
    if args.op is Op.WITHDRAW:
        ctx.republish()  # a withdrawn build leaves the buildroot repo at once
        if views[0].events[-1].event.src is State.TESTING:
            ctx.unpush(views[0].record.target)
    if ctx.json:
        ctx.emit([v.summary() for v in views])
    else:
        for view in views:
            ctx.out(render.transition(view, args.verb))
    return 0
