"""`sluice import URL --target T` and `sluice target trust T KEYFILE`."""
from __future__ import annotations

import argparse

from app import builds, import_record
from app.cli.context import Context
from app.errors import BadInput
from app.upstream_import import Importer
from backends.factory import signature_checker, upstream_repo


def register(commands, common) -> None:
    p = commands.add_parser("import", parents=[common], help="queue rebuilds of new upstream source RPMs")
    p.add_argument("url", metavar="URL", help="the upstream repo (http, https or file URL of the folder "
                                              "holding repodata/)")
    p.add_argument("--target", default="default", help="the target to rebuild for (default: default)")
    p.add_argument("--dry-run", action="store_true", help="fetch and verify, but queue and record nothing")
    p.set_defaults(handler=run_import)


def register_trust(sub, common) -> None:
    """`target trust` (called by config_cmd, which owns `target`)."""
    p = sub.add_parser("trust", parents=[common], help="accept an upstream signing key for `sluice import`")
    p.add_argument("name", metavar="TARGET")
    p.add_argument("keyfile", metavar="KEYFILE", help="the ASCII-armoured public key")
    p.set_defaults(handler=trust)


def importer(ctx: Context) -> Importer:
    b = ctx.backends
    return Importer(b.store, ctx.submitter, b.artifacts, b.reader, upstream_repo(), signature_checker(),
                    ctx.index, ctx.actor)


def trust(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    try:
        with open(args.keyfile, "rb") as f:
            armored = f.read()
    except OSError as exc:
        raise BadInput(f"cannot read {args.keyfile}: {exc.strerror}", "give the path of a public key file") from exc
    fingerprint = importer(ctx).trust(args.name, armored)
    if ctx.json:
        ctx.emit({"target": args.name, "fingerprint": fingerprint, "key": import_record.key_path(fingerprint)})
    else:
        ctx.out(f"target {args.name} now trusts key {fingerprint} for imports "
                f"(stored as {import_record.key_path(fingerprint)})")
    return 0


def run_import(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    report = importer(ctx).run(args.url, args.target, args.dry_run, ctx.note if not ctx.json else lambda _: None)
    if ctx.mailer is not None and report.record:
        mail = import_record.compose_mail(report, ctx.mailer.sender,
                                          builds.load_policy(ctx.backends.store.snapshot()))
        if mail is not None:
            ctx.mailer.outbox.put(f"import-{report.target}-{report.record}", mail)
            ctx.mailer.flush()
    if ctx.json:
        ctx.emit(report.to_json())
    else:
        _table(ctx, report)
    return 1 if report.refused else 0


def _table(ctx: Context, report) -> None:
    rows = [(o.nevr, o.outcome + (" (again)" if o.again else ""),
             o.reason + (f"; build {o.build[:7]}" if o.build else "")) for o in report.outcomes]
    if rows:
        width = [max(len(r[i]) for r in rows + [("PACKAGE", "OUTCOME", "")]) for i in (0, 1)]
        ctx.out(f"{'PACKAGE':{width[0]}}  {'OUTCOME':{width[1]}}  WHY")
        for nevr, outcome, why in rows:
            ctx.out(f"{nevr:{width[0]}}  {outcome:{width[1]}}  {why}")
    done = "dry run, nothing queued or recorded: " if report.dry_run else ""
    seen = f"; {report.seen} seen before" if report.seen else ""
    where = f"; recorded as imports/{report.target}/{report.record}.json" if report.record else \
        ("" if report.dry_run else "; nothing new to record")
    ctx.out(f"{done}{report.summary()}{seen}{where}")
    if report.refused:
        ctx.note(f"{len(report.refused)} package(s) refused: not queued; admins are mailed when [smtp] is set; "
                 "every import tries them again")
