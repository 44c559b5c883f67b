"""`sluice key create|rotate|list` and `sluice sign ID… | --all`."""
from __future__ import annotations

import argparse
import getpass
import sys

from app.cli import render
from app.cli.context import Context
from app.errors import UsageError
from app.keyrotation import Rotation
from backends.base import secret_line


def register(commands, common) -> None:
    key = commands.add_parser("key", parents=[common], help="signing keys: one per target")
    actions = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="make a target's signing key (admins)")
    _new_key_options(create)
    create.set_defaults(handler=key_create)
    rotate = actions.add_parser("rotate", parents=[common],
                                help="replace a target's signing key; the old one is retired (admins)")
    _new_key_options(rotate)
    rotate.add_argument("-m", "--message", default="", metavar="WHY", help="why (required; kept in the history)")
    rotate.set_defaults(handler=key_rotate)
    listing = actions.add_parser("list", parents=[common], help="the targets' keys, with expiry warnings")
    listing.set_defaults(handler=key_list)

    sign = commands.add_parser("sign", parents=[common], help="sign approved builds (signer role)")
    sign.add_argument("ids", nargs="*", metavar="ID")
    sign.add_argument("--all", action="store_true", help="every build in needsign you may sign")
    sign.add_argument("--passphrase-file", metavar="F", help="read the passphrase from the first line of F")
    sign.set_defaults(handler=sign_builds)


def _new_key_options(parser) -> None:
    parser.add_argument("--target", required=True, metavar="T")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--no-passphrase", action="store_true", help="an unprotected key (for unattended signing)")
    secret.add_argument("--passphrase-file", metavar="F", help="read the passphrase from the first line of F")
    parser.add_argument("--rsa", action="store_true", help="RSA 4096 instead of ed25519")
    parser.add_argument("--expires", default="5y", metavar="WHEN",
                        help="0 (never), days, or 90d, 12w, 6m, 2y (default 5y)")


def _new_passphrase(args: argparse.Namespace) -> str | None:
    if args.passphrase_file:
        return read_passphrase(args.passphrase_file)
    if args.no_passphrase:
        return None
    phrase = _ask(f"passphrase for the new {args.target} signing key: ", twice=True)
    if phrase is None:
        raise UsageError("a new key needs a passphrase",
                         "pass --passphrase-file F, --no-passphrase, or run on a terminal to be asked")
    return phrase


def read_passphrase(path: str) -> str:
    try:
        phrase = secret_line(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the passphrase file {path}: {getattr(exc, 'strerror', exc)}",
                         "check the path and its permissions") from exc
    if not phrase:
        raise UsageError(f"the passphrase file {path} is empty", "its first line is the passphrase")
    return phrase


def _ask(question: str, twice: bool = False) -> str | None:
    if not sys.stdin.isatty():
        return None
    phrase = getpass.getpass(question)
    if twice and getpass.getpass("again: ") != phrase:
        raise UsageError("the passphrases differ; nothing was created")
    return phrase or None


def key_create(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    key = ctx.keys.create(args.target, _new_passphrase(args), args.rsa, args.expires)
    if ctx.json:
        ctx.emit(key.to_json())
    else:
        ctx.out(f"created {key.key.algorithm if key.key else ''} key {key.fingerprint} for target {args.target}")
        ctx.out(f"public key: {ctx.keys.export(args.target)}")
    return 0


def key_rotate(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    done = Rotation(ctx.keys).rotate(args.target, args.message, _new_passphrase(args), args.rsa, args.expires)
    if ctx.json:
        ctx.emit(done.to_json())
        return 0
    ctx.out(f"target {done.target} now signs with {done.new.key.algorithm if done.new.key else ''} key "
            f"{done.new.fingerprint}; {done.retired} is retired and never signs again")
    if done.still_in_repos:
        ctx.out("RPMs it signed stay in the repos, so the key file keeps its public key beside the new one")
    if done.resigned:
        ctx.out(f"repomd.xml of {', '.join(done.resigned)} signed again with the new key")
    ctx.out(f"public keys: {done.key_file}")
    return 0


def key_list(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    keys = ctx.keys.list()
    for key in keys:
        if key.warning():
            ctx.note(f"warning: {key.warning()}; extend it with "
                     f"`gpg --homedir {ctx.paths.gnupg} --quick-set-expire {key.fingerprint} 1y`")
    if ctx.json:
        ctx.emit([k.to_json() for k in keys])
        return 0
    if not keys:
        ctx.out("no signing keys; an admin creates one with `sluice key create --target T`")
    for key in keys:
        k = key.key
        where = f"{k.uid}  created {k.created[:10]}  expires {(k.expires or 'never')[:10]}" if k else \
            "(secret key not on this machine)"
        status = key.status if key.status == "current" or not key.in_repos else "retired, in the repos"
        ctx.out(f"{key.target:<16} {key.fingerprint}  {status:<21} {where}")
    return 0


def sign_builds(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    if args.all and args.ids:
        raise UsageError("give build ids or --all, not both")
    groups = ctx.signing.plan(args.ids, args.all)
    for skipped in ctx.signing.skipped:
        ctx.note(f"skipped: {skipped}")
    if not groups:
        ctx.note("nothing to sign")
        if ctx.json:
            ctx.emit([])
        return 0
    fixed = read_passphrase(args.passphrase_file) if args.passphrase_file else None
    views = ctx.signing.sign(groups, lambda fpr, uid: fixed or _ask(f"passphrase for {uid} ({fpr[-16:]}): "))
    if ctx.json:
        ctx.emit([v.summary() for v in views])
    else:
        for view in views:
            ctx.out(render.transition(view, "signed"))
    return 0
