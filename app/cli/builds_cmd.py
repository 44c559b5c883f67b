"""`sluice list`, `sluice show`, and the summary shown with no command."""
from __future__ import annotations

import argparse
import json
from app import builds
from app.cli import render
from app.cli.context import Context
from app.errors import UsageError
from app.index import Filters
from app.model import State


WHY_ROWS = 200  # queued builds whose wait `list` explains


def register(commands, common) -> None:
    p = commands.add_parser("list", parents=[common], help="list builds, newest first")
    p.add_argument("--state", action="append", default=[], choices=[str(s) for s in State],
                   metavar="STATE", help="only builds in STATE (repeat for several)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--owner", metavar="EMAIL", help="only builds submitted by EMAIL")
    who.add_argument("--mine", action="store_true", help="only your builds")
    p.add_argument("--package", metavar="NAME", help="only this package (a glob such as 'kde*' works)")
    p.add_argument("--target", metavar="T", help="only builds for target T")
    p.add_argument("--batch", metavar="NAME", help="only builds of batch NAME")
    p.add_argument("-n", "--limit", type=int, metavar="N", help="at most N builds")
    p.set_defaults(handler=list_builds)

    p = commands.add_parser("show", parents=[common], help="one build: state, tasks, events")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=show)


def list_builds(ctx: Context, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    owner = ctx.actor.email if args.mine else args.owner
    filters = Filters(tuple(args.state), owner, args.package, args.target, args.batch, args.limit)
    index = ctx.refresh_index()
    if ctx.json:
        ctx.emit(index.summaries_json(filters))
        return 0
    rows = index.rows(filters)
    snap, explained, lines = ctx.backends.store.snapshot(), 0, []
    for r in rows:
        arches = json.loads(r["summary"])["arches"]
        why = ""
        if "queued" in arches.values() and r["state"] in ("queued", "building") and explained < WHY_ROWS:
            explained += 1  # it reads the build: for the first WHY_ROWS only
            why = "; ".join(sorted(set(ctx.waiting(builds.load_build(snap, r["id"])).values())))
        lines.append((r["id"][:7], r["nvr"], r["owner"], r["target"],
                      render.state_text(r["state"], bool(r["contested"])), render.arches(arches),
                      render.age(r["created"]), why))
    for line in render.table(lines, ("ID", "NVR", "OWNER", "TARGET", "STATE", "ARCHES", "AGE", "WAITING")):
        ctx.out(line)
    return 0


def show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    view = ctx.queue.view(args.id)
    allowed = ctx.queue.allowed(view)
    waiting = ctx.waiting(view)
    used_by = ctx.refresh_index().used_by(view.id)
    if ctx.json:
        ctx.emit({**view.detail(), "allowed": [str(op) for op in allowed], "waiting": waiting,
                  "used_by": [{"id": user, "arch": arch} for user, arch in used_by]})
    else:
        for line in render.detail(view, allowed, waiting, used_by):
            ctx.out(line)
    return 0


def overview(ctx: Context, args: argparse.Namespace) -> int:
    counts = ctx.refresh_index().states()
    if ctx.json:
        ctx.emit({"repo": ctx.paths.repo, "builds": sum(counts.values()), "states": counts})
        return 0
    listed = ", ".join(f"{n} {state}" for state, n in counts.items()) or "no builds yet"
    ctx.out(f"sluice queue {ctx.paths.repo}: {listed}")
    ctx.out("submit with `sluice submit SRPM`, see builds with `sluice list`, all commands: `sluice --help`")
    return 0
