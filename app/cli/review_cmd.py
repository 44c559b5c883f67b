"""`sluice review ID`: what changed against the last release, and rpmlint."""
from __future__ import annotations

import argparse
from dataclasses import asdict

from app.cli.context import Context
from app.review import Review, lines


def register(commands, common) -> None:
    p = commands.add_parser("review", parents=[common],
                            help="diff a build against the last release of its package, and rpmlint it")
    p.add_argument("id", metavar="ID")
    p.add_argument("--no-lint", action="store_true", help="skip rpmlint")
    p.set_defaults(handler=review)


def review(ctx: Context, args: argparse.Namespace) -> int:
    ctx.refresh_index()
    found = ctx.reviewer(lint=not args.no_lint).review(args.id)
    if ctx.json:
        ctx.emit(to_json(found))
    else:
        for line in lines(found):
            ctx.out(line.text)
    return 0


def to_json(r: Review) -> dict:
    prev = r.previous
    return {"id": r.build.id, "nvr": r.build.record.nvr,
            "previous": {"id": prev.id, "nvr": prev.record.nvr, "state": str(prev.state)} if prev else None,
            "packages": [asdict(p) for p in r.packages], "changelog": list(r.changelog),
            "abi": [{"soname": a.soname, "new": list(a.new),
                     "required_by": [{"id": i, "nvr": n, "package": p} for i, n, p in a.required_by]}
                    for a in r.abi],
            "lint": [asdict(f) for f in r.lint]}
