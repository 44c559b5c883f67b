"""`sluice push testing|stable ID…`, `sluice publish [TARGET]` (and
`publish TARGET --from-manifest N --into DIR`), `sluice repo-file TARGET
[--stage S]` and `sluice repos [TARGET]`."""
from __future__ import annotations

import argparse

from app import builds, repofile, repos
from app.cli import render
from app.cli.context import Context
from app.cli.sign_cmd import _ask, read_passphrase
from app.errors import UsageError
from app.rebuild import Rebuilds


def register(commands, common) -> None:
    push = commands.add_parser("push", parents=[common], help="push signed builds to testing, tested ones to stable")
    push.add_argument("stage", choices=("testing", "stable"))
    push.add_argument("ids", nargs="+", metavar="ID")
    push.add_argument("--passphrase-file", metavar="F", help="the target key's passphrase (it signs repomd.xml)")
    push.add_argument("--partial", action="store_true",
                      help="stable: push builds of an advisory without its other builds (it waits for them)")
    push.set_defaults(handler=push_builds)

    publish = commands.add_parser("publish", parents=[common], help="bring testing and stable repos up to the queue")
    publish.add_argument("target", nargs="?", metavar="TARGET", help="one target (default: every target with a key)")
    publish.add_argument("--passphrase-file", metavar="F", help="the target key's passphrase")
    publish.add_argument("--from-manifest", metavar="N",
                         help="rebuild the repo as manifest N (number or name) lists it, into --into DIR")
    publish.add_argument("--stage", choices=("testing", "stable"), help="the repo of --from-manifest (default stable)")
    publish.add_argument("--into", metavar="DIR", help="where --from-manifest rebuilds (DIR/TARGET/STAGE)")
    publish.set_defaults(handler=publish_repos)

    repo = commands.add_parser("repo-file", parents=[common], help="print a dnf .repo stanza for a target's repo")
    repo.add_argument("target", metavar="TARGET")
    repo.add_argument("--stage", choices=repofile.STAGES, default="stable")
    repo.set_defaults(handler=repo_file)

    shown = commands.add_parser("repos", parents=[common],
                                help="what each target's repos hold, and what a push or publish would change")
    shown.add_argument("target", nargs="?", metavar="TARGET", help="one target (default: every target)")
    shown.set_defaults(handler=show_repos)


def _passphrase(args: argparse.Namespace):
    fixed = read_passphrase(args.passphrase_file) if args.passphrase_file else None
    return lambda fpr, uid: fixed or _ask(f"passphrase for {uid} ({fpr[-16:]}): ")


def push_builds(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    views = ctx.releases.push(args.stage, args.ids, _passphrase(args), partial=args.partial)
    if ctx.json:
        ctx.emit([v.summary() for v in views])
    else:
        for view in views:
            ctx.out(render.transition(view, f"pushed to {args.stage}"))
    return 0


def publish_repos(ctx: Context, args: argparse.Namespace) -> int:
    if args.from_manifest or args.into or args.stage:
        return rebuild_repo(ctx, args)
    ctx.ready()
    lines = ctx.releases.publish([args.target] if args.target else None, _passphrase(args))
    if ctx.json:
        ctx.emit(lines)
    else:
        for line in lines or ["the repos already match the queue"]:
            ctx.out(line)
    return 0


def rebuild_repo(ctx: Context, args: argparse.Namespace) -> int:
    if not (args.from_manifest and args.into and args.target):
        raise UsageError("--from-manifest, --into and --stage go together, with one TARGET",
                         "sluice publish TARGET --stage stable --from-manifest N --into DIR")
    ctx.ready()
    done = Rebuilds(ctx.releases).rebuild(args.target, args.stage or "stable", args.from_manifest, args.into,
                                          _passphrase(args))
    if ctx.json:
        ctx.emit(done.to_json())
        return 0
    ctx.out(f"{done.repo} {done.target} as manifest {done.manifest} lists it: {done.packages} packages "
            f"in {done.repo_dir}" + ("" if done.changed else " (already so)"))
    ctx.out(f"public keys: {done.key_file}")
    section = f"[sluice-{done.target}-{done.repo}]"  # its own repo id, beside the published repo's
    stanza = repofile.stanza(done.target, done.repo, args.into).rstrip("\n")
    ctx.out(stanza.replace(section, f"{section[:-1]}-{done.manifest}]", 1))
    return 0


def repo_file(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    builds.load_target(ctx.backends.store.snapshot(), args.target)  # a clear error for an unknown target
    ctx.out(repofile.stanza(args.target, args.stage, ctx.paths.repos, ctx.config.get("repos_url")).rstrip("\n"))
    return 0


def show_repos(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    found = repos.overview(ctx.releases, args.target)
    if ctx.json:
        ctx.emit([t.to_json() for t in found])
        return 0
    for target in found:
        ctx.out(f"{target.target}  (key {target.key or 'none yet'})")
        numbers = dict(target.manifests)
        for repo in repos.REPOS:
            packages = target.held(repo)
            where = f", manifest {numbers[repo]}" if numbers.get(repo) else ""
            ctx.out(f"  {repo}: {len(packages)} package{'s' if len(packages) != 1 else ''}{where}")
            for p in packages:
                ctx.out(f"    {p.nevra}  {p.build[:7]}  {p.signed_by[-16:] or 'unsigned'}")
        for move in target.moves:
            ctx.out(f"  {move.command} would:")
            for sign, changes in (("+", move.adds), ("-", move.removes)):
                for repo, p in changes:
                    ctx.out(f"    {sign} {repo}: {p.nevra}  {p.build[:7]}")
        for problem in target.problems:
            ctx.out(f"  note: {problem}")
    return 0
