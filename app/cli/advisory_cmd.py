"""`sluice advisory new|list|show`: advisories, published with their builds in stable."""
from __future__ import annotations

import argparse

from app import advisories, builds
from app.advisories import SEVERITIES, TYPES, Advisories, Advisory
from app.cli.context import Context
from app.errors import BadInput, UsageError
from app.model import State


def register(commands, common) -> None:
    top = commands.add_parser("advisory", parents=[common], help="write and read advisories (updateinfo)")
    sub = top.add_subparsers(dest="action", metavar="ACTION")
    new = sub.add_parser("new", parents=[common], help="write an advisory for builds of one target")
    new.add_argument("--type", required=True, choices=TYPES, dest="kind")
    new.add_argument("--severity", choices=SEVERITIES, help="required for security advisories")
    new.add_argument("--builds", required=True, nargs="+", metavar="ID", help="the builds it is for")
    new.add_argument("--ref", action="append", default=[], metavar="CVE-…|URL",
                     help="a CVE id or a URL (a bug tracker's link is a bugzilla reference); repeat for more")
    new.add_argument("--title", required=True)
    text = new.add_mutually_exclusive_group()
    text.add_argument("--description", default="")
    text.add_argument("--description-file", metavar="F")
    new.set_defaults(handler=create)
    listed = sub.add_parser("list", parents=[common], help="the advisories, oldest first")
    listed.add_argument("--target", metavar="T")
    listed.set_defaults(handler=list_advisories)
    show = sub.add_parser("show", parents=[common], help="one advisory (--announcement: the mail text)")
    show.add_argument("id", metavar="ID")
    show.add_argument("--announcement", action="store_true", help="print the announcement text")
    show.set_defaults(handler=show_advisory)
    top.set_defaults(handler=lambda ctx, args: _usage())


def _usage() -> int:
    raise UsageError("say what to do with advisories", "sluice advisory new|list|show …")


def _description(args: argparse.Namespace) -> str:
    if not args.description_file:
        return args.description
    try:
        with open(args.description_file, encoding="utf-8") as f:
            return f.read().strip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the description from {args.description_file}: {exc}",
                       "give a UTF-8 text file, or pass --description") from exc


def create(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    advisory = Advisories(ctx.backends.store, ctx.actor).new(args.kind, args.severity or "", args.builds,
                                                             args.ref, args.title, _description(args))
    states = _states(ctx, advisory)
    if ctx.json:
        ctx.emit(_doc(advisory, states))
        return 0
    ctx.out(f"advisory {advisory.id} ({advisory.type}) for {advisory.target}: {advisory.title}")
    if all(state == str(State.STABLE) for state in states.values()):
        ctx.out(f"its builds are all in stable: `sluice publish {advisory.target}` puts it in the stable repo")
    else:
        ctx.out("it is published in the stable repo, and announced, when all its builds are in stable")
    return 0


def _states(ctx: Context, advisory: Advisory) -> dict[str, str]:
    snap = ctx.backends.store.snapshot()
    return {b: str(builds.load_build(snap, b).state) for b in advisory.builds}


def _doc(advisory: Advisory, states: dict[str, str]) -> dict:
    return {**advisory.to_json(), "states": states,
            "published": all(state == str(State.STABLE) for state in states.values())}


def list_advisories(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    snap = ctx.backends.store.snapshot()
    if args.target:
        builds.load_target(snap, args.target)
    found = advisories.load_all(snap, args.target)
    docs = [_doc(a, _states(ctx, a)) for a in found]
    if ctx.json:
        ctx.emit(docs)
        return 0
    for doc in docs:
        where = "stable" if doc["published"] else "waiting"
        ctx.out(f"{doc['id']}  {doc['target']:<10} {doc['type']:<11} {doc['severity'] or '-':<9} {where:<8} "
                f"{doc['title']}")
    if not docs:
        ctx.out("no advisories yet; write one with `sluice advisory new`")
    return 0


def show_advisory(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    advisory = advisories.find(ctx.backends.store.snapshot(), args.id)
    if args.announcement:
        text = ctx.announcement(advisory)
        ctx.emit({"id": advisory.id, "announcement": text}) if ctx.json else ctx.out(text.rstrip("\n"))
        return 0
    states = _states(ctx, advisory)
    if ctx.json:
        ctx.emit(_doc(advisory, states))
        return 0
    snap = ctx.backends.store.snapshot()
    ctx.out(f"{advisory.id}: {advisory.title}")
    ctx.out(f"  type {advisory.type}" + (f", severity {advisory.severity}" if advisory.severity else "")
            + f", target {advisory.target}, by {advisory.actor} at {advisory.created}")
    for build_id, state in states.items():
        ctx.out(f"  build {build_id[:7]} {builds.load_build(snap, build_id).record.nvr}: {state}")
    for ref in advisory.references:
        ctx.out(f"  {ref.type}: {ref.href}")
    if advisory.description:
        ctx.out("")
        for line in advisory.description.splitlines():
            ctx.out(f"  {line}")
    return 0
