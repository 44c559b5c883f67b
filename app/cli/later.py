"""Commands of the contract whose parts have not landed yet.

They exist so that `sluice --help` shows the whole contract and scripts get a
clear answer (exit 2) instead of "invalid choice". Each names what it waits for.
"""
from __future__ import annotations

import argparse

from app.cli.context import Context
from app.errors import NotAvailable

PENDING: dict[str, str] = {}  # every command of the contract has landed


def register(commands, common) -> None:
    for name, needs in PENDING.items():
        p = commands.add_parser(name, parents=[common], help=f"not available yet: needs {needs}")
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(handler=pending, needs=needs)


def pending(ctx: Context, args: argparse.Namespace) -> int:
    raise NotAvailable(f"`sluice {args.command}` is not available yet: it needs {args.needs}, "
                       "which this version of sluice does not have",
                       "see docs/roadmap.md for what is coming")
