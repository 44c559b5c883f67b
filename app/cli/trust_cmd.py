"""`sluice verify` (audit the state history) and `sluice hook pre-receive`
(the same rules on a shared bare repo, at push time)."""
from __future__ import annotations

import argparse
import os
import sys

from app.cli.context import Context
from app.gate import Gate, parse_updates

FINDINGS = 1  # exit status of `verify` when the history has findings


def register(commands, common) -> None:
    p = commands.add_parser("verify", parents=[common],
                            help="audit the whole state history: signatures, transitions, tampering")
    p.set_defaults(handler=verify)
    p = commands.add_parser("hook", parents=[common], help="server-side git hooks for a shared bare repo")
    sub = p.add_subparsers(dest="hook", metavar="HOOK", required=True)
    q = sub.add_parser("pre-receive", parents=[common],
                       help="refuse pushes to refs/sluice/* that sync would refuse "
                            "(reads git's `OLD NEW REF` lines on stdin)")
    q.set_defaults(handler=pre_receive)


def _gate(ctx: Context) -> Gate:
    b = ctx.backends
    return Gate(b.store, b.merger, ctx.verifier)


def verify(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    audit = _gate(ctx).audit()
    if ctx.json:
        ctx.emit(audit.to_json())
    else:
        for finding in audit.findings:
            ctx.out(str(finding))
        verdict = f"{len(audit.findings)} finding(s)" if audit.findings else "clean"
        ctx.out(f"verified {audit.commits} commits up to {(audit.head or '')[:10]}: {verdict}")
    return FINDINGS if audit.findings else 0


def pre_receive(ctx: Context, args: argparse.Namespace) -> int:
    if getattr(args, "repo", None) is None:  # git runs hooks in the repo, with GIT_DIR set
        args.repo = os.environ.get("GIT_DIR") or "."
    updates = parse_updates(sys.stdin.read())
    ctx.backends.admit_pushed_objects()
    refusals = _gate(ctx).receive(updates)
    for line in refusals:
        ctx.note(f"refused: {line}")
    if refusals:
        ctx.note("push refused: nothing was changed; repair the history (see `sluice verify`) and push again")
        return FINDINGS
    return 0
