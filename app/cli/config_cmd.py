"""`sluice policy …` and `sluice target …`: the queue's shared config."""
from __future__ import annotations

import argparse

from app.cli import import_cmd
from app.cli.context import Context
from app.errors import UsageError
from app.policy import ROLES
from app.targets import ExternalRepo, Target


def register(commands, common) -> None:
    policy = commands.add_parser("policy", parents=[common], help="who may do what")
    sub = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("show", parents=[common], help="print the grants")
    p.set_defaults(handler=policy_show)
    for verb, text in (("grant", "give EMAIL a role"), ("revoke", "take a role from EMAIL")):
        p = sub.add_parser(verb, parents=[common], help=text)
        p.add_argument("role", choices=ROLES, metavar="ROLE", help=", ".join(ROLES))
        p.add_argument("email", metavar="EMAIL")
        p.add_argument("--package", metavar="GLOB", help="only for these packages (default: all)")
        p.set_defaults(handler=policy_change, verb=verb)
    p = sub.add_parser("load", parents=[common], help="replace the policy with a TOML file")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(handler=policy_load)
    p = sub.add_parser("key", parents=[common], help="name the OpenPGP key that signs EMAIL's commits")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("fingerprint", metavar="FINGERPRINT", help="the key's full fingerprint; `none` forgets it")
    p.set_defaults(handler=policy_key)
    p = sub.add_parser("require-signed", parents=[common], help="require signed commits (on) or not (off)")
    p.add_argument("state", choices=("on", "off"))
    p.set_defaults(handler=policy_signed)

    target = commands.add_parser("target", parents=[common], help="build targets")
    sub = target.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("add", parents=[common], help="add a target")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--arch", action="append", required=True, metavar="ARCH", help="an arch to build (repeat)")
    p.add_argument("--mock-config", action="append", default=[], metavar="ARCH=CONFIG",
                   help="mock config (-r) for an arch (repeat)")
    p.add_argument("--dist-tag", default="", metavar="TAG", help="e.g. .el9")
    p.add_argument("--external-repo", action="append", default=[], metavar="NAME=URL",
                   help="a repo feeding the buildroot; the first listed wins (repeat)")
    p.add_argument("--no-supersede", action="store_true",
                   help="approving a newer build leaves older ones alone")
    p.set_defaults(handler=target_add)
    p = sub.add_parser("show", parents=[common], help="print a target")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(handler=target_show)
    p = sub.add_parser("list", parents=[common], help="list the targets")
    p.set_defaults(handler=target_list)
    p = sub.add_parser("load", parents=[common], help="add or replace a target from a TOML file")
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(handler=target_load)
    import_cmd.register_trust(sub, common)


def policy_show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    policy = ctx.admin.policy()
    if ctx.json:
        ctx.emit({"owner_may_mark_tested": policy.owner_may_mark_tested,
                  "require_signed_commits": policy.require_signed_commits, "keys": dict(policy.keys),
                  "grants": [{"role": g.role, "email": g.email, "packages": list(g.packages)}
                             for g in policy.grants]})
    else:
        for line in policy.describe():
            ctx.out(line)
    return 0


def policy_change(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    change = ctx.admin.grant if args.verb == "grant" else ctx.admin.revoke
    change(args.role, args.email, args.package)
    scope = f" for {args.package}" if args.package else ""
    ctx.out(f"{args.verb}ed {args.role} {'to' if args.verb == 'grant' else 'from'} {args.email}{scope}")
    return 0


def policy_load(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    policy = ctx.admin.load_policy_file(args.file)
    ctx.out(f"loaded the policy from {args.file}: {len(policy.grants)} grants")
    return 0


def policy_key(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    forget = args.fingerprint.lower() == "none"
    policy = ctx.admin.set_key(args.email, None if forget else args.fingerprint)
    ctx.out(f"{args.email} signs with {policy.key_for(args.email)}" if not forget
            else f"forgot the commit key of {args.email}")
    return 0


def policy_signed(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    ctx.admin.require_signed(args.state == "on")
    ctx.out("signed commits are now required" if args.state == "on" else "signed commits are no longer required")
    return 0


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise UsageError(f"{value!r} is not {what}", f"write it as {what}")
        pairs.append((key, rest))
    return pairs


def target_add(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    target = Target(args.name, tuple(dict.fromkeys(args.arch)), dict(_pairs(args.mock_config, "ARCH=CONFIG")),
                    args.dist_tag, tuple(ExternalRepo(n, u) for n, u in _pairs(args.external_repo, "NAME=URL")),
                    not args.no_supersede)
    ctx.admin.add_target(target)
    ctx.out(f"added target {target.name} ({' '.join(target.arches)})")
    return 0


def target_show(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    target = ctx.admin.target(args.name)
    if ctx.json:
        ctx.emit(_target_json(target))
    else:
        for line in target.describe():
            ctx.out(line)
    return 0


def target_list(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    targets = ctx.admin.targets()
    if ctx.json:
        ctx.emit([_target_json(t) for t in targets])
    else:
        for t in targets:
            ctx.out(f"{t.name:20} {' '.join(t.arches)}")
    return 0


def target_load(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    target = ctx.admin.load_target_file(args.name, args.file)
    ctx.out(f"loaded target {target.name} from {args.file}")
    return 0


def _target_json(t: Target) -> dict:
    return {"name": t.name, "arches": list(t.arches), "mock_config": {a: t.mock_config_for(a) for a in t.arches},
            "dist_tag": t.dist_tag, "supersede": t.supersede,
            "external_repos": [{"name": r.name, "url": r.url, "priority": r.priority} for r in t.external_repos],
            "trusted_keys": list(t.trusted_keys), "import": dict(t.import_rules)}
