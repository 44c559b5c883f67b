"""`sluice init` and `sluice submit`."""
from __future__ import annotations

import argparse

from app.cli.context import Context
from app.submit import Submission
from backends.factory import machine_arch


def register(commands, common) -> None:
    p = commands.add_parser("init", parents=[common], help="create the queue; you become its admin")
    p.add_argument("--arch", help=f"the default target's arch (default: this machine's, {machine_arch()})")
    p.set_defaults(handler=init)

    p = commands.add_parser("submit", parents=[common], help="queue source RPMs for building")
    p.add_argument("srpms", nargs="+", metavar="SRPM")
    p.add_argument("--target", default="default", help="build target (default: default)")
    p.add_argument("--arch", action="append", default=[], metavar="ARCH",
                   help="build only these of the target's arches (repeat)")
    p.add_argument("--scratch", action="store_true", help="build only; never enters a repo")
    p.add_argument("--batch", metavar="NAME", help="release together with the other builds of NAME")
    p.add_argument("--after", metavar="ID", help="wait until build ID is in the buildroot")
    p.set_defaults(handler=submit)


def init(ctx: Context, args: argparse.Namespace) -> int:
    ctx.create = True
    written = ctx.admin.init(args.arch or machine_arch())
    if ctx.json:
        ctx.emit({"repo": ctx.paths.repo, "commit": written.commit, "admin": ctx.actor.email})
    else:
        ctx.out(f"created a sluice queue in {ctx.paths.repo}; admin: {ctx.actor.email}; "
                f"target default builds {args.arch or machine_arch()}")
    return 0


def submit(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    views = ctx.submitter.submit(Submission(args.srpms, args.target, args.arch, args.scratch,
                                            args.batch, args.after))
    if ctx.json:
        ctx.emit([v.summary() for v in views])
    else:
        for view in views:
            ctx.out(f"submitted {view.record.nvr} as {view.record.short} to {view.record.target} "
                    f"({' '.join(view.record.arches)}): {view.state}")
    return 0
