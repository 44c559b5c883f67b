"""`sluice history [ID]`: the state ref's log, the audit trail."""
from __future__ import annotations

import argparse
import itertools

from app import audit, builds
from app.cli.context import Context


def register(commands, common) -> None:
    p = commands.add_parser("history", parents=[common], help="the audit trail (git log of the state)")
    p.add_argument("id", nargs="?", metavar="ID", help="only commits about this build")
    p.add_argument("--actor", metavar="EMAIL", help="only commits by EMAIL")
    p.add_argument("--op", metavar="OP", help="only commits of this op (hold, approve, policy-grant…)")
    p.add_argument("-n", "--limit", type=int, metavar="N", help="at most N commits")
    p.set_defaults(handler=history)


def history(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    store = ctx.backends.store
    build = builds.resolve(store.snapshot(), args.id) if args.id else None
    entries = audit.history(store, build, args.actor, args.op)
    if args.limit:
        entries = itertools.islice(entries, args.limit)
    if ctx.json:
        ctx.emit([e.to_json() for e in entries])
    else:
        for line in audit.describe(entries):
            ctx.out(line)
    return 0
