"""`sluice [--repo PATH] [--json] [--yes] COMMAND …`

Each command lives in its own small module with `register(commands, common)`
that adds its parser and sets `handler`. Errors become `sluice: error: …` on
stderr, the hint on the next line, and the documented exit code:
0 done, 1 failed, 2 bad usage or input, 3 not permitted, 4 not allowed in the
current state or contested.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from app.cli import (advisory_cmd, builds_cmd, config_cmd, history_cmd, import_cmd, later, release_cmd, review_cmd,
                     runner_cmd, sign_cmd, submit_cmd, sync_cmd, transition_cmd, trust_cmd, tui_cmd)
from app.cli.context import Context
from app.errors import SluiceError

MODULES = (submit_cmd, builds_cmd, transition_cmd, sign_cmd, release_cmd, history_cmd, sync_cmd, config_cmd,
           runner_cmd, review_cmd, tui_cmd, trust_cmd, import_cmd, advisory_cmd, later)


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _options(common, argparse.SUPPRESS)
    top = argparse.ArgumentParser(
        prog="sluice", description="A local-first build queue and release gate for RPM packages.",
        epilog="With no command, sluice opens the terminal UI on a terminal and prints a summary of the "
               "queue otherwise. Exit codes: 0 done, 1 failed, "
               "2 bad usage or input, 3 not permitted, 4 not allowed in the current state or contested.")
    _options(top, None)
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES:
        module.register(commands, common)
    return top


def _options(p: argparse.ArgumentParser, default: object) -> None:
    def d(value: object) -> object:
        return value if default is None else default
    p.add_argument("--repo", metavar="PATH", default=d(None), help="the state repo (default: $SLUICE_REPO, "
                   "the config's repo, else ~/.local/share/sluice/state.git)")
    p.add_argument("--config", metavar="FILE", default=d(None), help="local config file "
                   "(default ~/.config/sluice/config.toml)")
    p.add_argument("--json", action="store_true", default=d(False), help="print one JSON document")
    p.add_argument("--yes", "-y", action="store_true", default=d(False), help="confirm destructive actions")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    ctx = Context(args)
    handler = getattr(args, "handler", None) or \
        (tui_cmd.tui if tui_cmd.on_terminal() and not args.json else builds_cmd.overview)
    try:
        return handler(ctx, args) or 0
    except SluiceError as exc:
        print(f"sluice: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"sluice: {exc.hint}", file=sys.stderr)
        for finding in getattr(exc, "findings", ()):
            print(f"  {finding}", file=sys.stderr)
        output = getattr(exc, "output", "")
        if output:
            print(output, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sluice: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug: say so plainly, full trace only on request
        if os.environ.get("SLUICE_DEBUG"):
            traceback.print_exc()
        print(f"sluice: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("sluice: this is a bug in sluice; rerun with SLUICE_DEBUG=1 and report the trace",
              file=sys.stderr)
        return 1
