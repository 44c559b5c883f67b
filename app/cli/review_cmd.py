"""`sluice review ID`: what changed against the last release, and rpmlint."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Iterable

from app.cli.context import Context
from app.review import Review, Reviewer
from backends.factory import contents_reader, linter


def register(commands, common) -> None:
    p = commands.add_parser("review", parents=[common],
                            help="diff a build against the last release of its package, and rpmlint it")
    p.add_argument("id", metavar="ID")
    p.add_argument("--no-lint", action="store_true", help="skip rpmlint")
    p.set_defaults(handler=review)


def review(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    b = ctx.backends
    reviewer = Reviewer(ctx.refresh_index(), b.store.snapshot, b.artifacts, contents_reader(),
                        None if args.no_lint else linter())
    found = reviewer.review(args.id)
    if ctx.json:
        ctx.emit(to_json(found))
    else:
        for line in render(found):
            ctx.out(line)
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


def render(r: Review) -> Iterable[str]:
    record = r.build.record
    against = (f"against {r.previous.record.nvr} ({r.previous.record.short}, {r.previous.state})"
               if r.previous else "(no earlier build of it in testing or stable: everything is new)")
    yield f"review {record.nvr} ({record.short}) {against}"
    for change in r.abi:
        now = f"; it provides {', '.join(change.new)} now" if change.new else ""
        yield f"!! ABI change: {change.soname} is gone{now}"
        if change.required_by:
            yield "   required by (rebuild them, in one batch with this build: submit --batch NAME):"
            for build_id, nvr, package in change.required_by:
                yield f"     {build_id[:7]} {nvr}: {package}"
        else:
            yield "   nothing in the target requires it"
    for p in r.packages:
        if p.status != "changed":
            yield f"  {p.name}: {p.status}"
            continue
        old, new = p.size
        grew = f" ({(new - old) * 100 / old:+.1f}%)" if old else ""
        yield f"  {p.name}: size {_size(old)} -> {_size(new)}{grew}"
        for label, items in (("files +", p.files_added), ("files -", p.files_removed),
                             ("provides +", p.provides_added), ("provides -", p.provides_removed),
                             ("requires +", p.requires_added), ("requires -", p.requires_removed)):
            if items:
                shown = ", ".join(items[:8]) + (f", … ({len(items)} in all)" if len(items) > 8 else "")
                yield f"    {label:11} {shown}"
    if r.changelog:
        yield "  changelog since:" if r.previous else "  changelog (newest entry):"
        for entry in r.changelog:
            yield from (f"    {line}" for line in entry.splitlines())
    errors = sum(1 for f in r.lint if f.severity == "E")
    warnings = sum(1 for f in r.lint if f.severity == "W")
    if r.lint:
        yield f"  rpmlint: {errors} errors, {warnings} warnings"
        yield from (f"    {f.package}: {f.severity}: {f.check} {f.detail}".rstrip() for f in r.lint)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"
