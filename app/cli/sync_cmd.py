"""`sluice sync [REMOTE]`: fetch, check, merge and push the queue."""
from __future__ import annotations

import argparse

from app.cli.context import Context
from app.errors import UsageError


def register(commands, common) -> None:
    p = commands.add_parser("sync", parents=[common], help="share the queue with another clone")
    p.add_argument("remote", nargs="?", metavar="REMOTE",
                   help="a git remote of the state repo, a path or a URL (default: the config's "
                        "remote, else origin)")
    p.add_argument("--theirs", action="append", default=[], metavar="PATH",
                   help="when both sides changed this config file, keep the remote's")
    p.set_defaults(handler=sync)


def sync(ctx: Context, args: argparse.Namespace) -> int:
    ctx.create = True  # joining a queue may start from an empty repo
    remote = args.remote or ctx.config.get("remote") or \
        ("origin" if "origin" in ctx.backends.remotes() else None)
    if remote is None:
        raise UsageError("no remote to sync with", "name one: `sluice sync URL`, or set remote in the config")
    for path in args.theirs:
        if not path.startswith("config/"):
            raise UsageError(f"--theirs only takes config files, not {path}",
                             "builds and events are never replaced")
    result = ctx.syncer.sync(remote, args.theirs)
    if ctx.json:
        ctx.emit({"remote": remote, "commits": result.commits, "events": result.events,
                  "pushed": result.sent, "head": result.head, "attempts": result.attempts})
        return 0
    got = f"received {result.commits} commits ({result.events} events)" if result.commits else "nothing new"
    sent = "pushed" if result.sent else "nothing to push"
    ctx.out(f"sync with {remote}: {got}; {sent}; state at {(result.head or '')[:10]}")
    return 0
