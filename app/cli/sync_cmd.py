"""`sluice sync [REMOTE]`: fetch, check, merge and push the queue, then move
the artifacts it references through the artifact remote (app.artifact_sync)."""
from __future__ import annotations

import argparse

from app import config
from app.artifact_sync import ArtifactSync, Moved
from app.cli.context import Context
from app.errors import BackendError, SluiceError, UsageError
from backends.factory import artifact_remote

_SHOWN = 10


def register(commands, common) -> None:
    p = commands.add_parser("sync", parents=[common], help="share the queue (and its artifacts) with another clone")
    p.add_argument("remote", nargs="?", metavar="REMOTE",
                   help="a git remote of the state repo, a path or a URL (default: the config's "
                        "remote, else origin)")
    p.add_argument("--theirs", action="append", default=[], metavar="PATH",
                   help="when both sides changed this config file, keep the remote's")
    moving = p.add_mutually_exclusive_group()
    moving.add_argument("--no-artifacts", action="store_true",
                        help="move only the queue; the next sync moves the artifacts it skipped")
    moving.add_argument("--all-artifacts", action="store_true",
                        help="look at every build's artifacts, not only those changed since the last sync")
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
    target, skipped = (None, "--no-artifacts") if args.no_artifacts else _artifact_remote(ctx, remote)
    result = ctx.syncer.sync(remote, args.theirs)
    moved, failure = None, None
    try:
        if target is not None and result.head:
            moved = ArtifactSync(ctx.backends.store, ctx.backends.artifacts, ctx.actor).run(
                target, result.head, args.all_artifacts)
    except SluiceError as exc:
        failure = exc
    finally:
        if target is not None:
            target.close()
    if moved and moved.refused:
        failure = BackendError(f"refused {len(moved.refused)} damaged artifact(s) on {moved.where}: "
                               + "; ".join(moved.refused[:_SHOWN]),
                               f"remove them there (under {moved.where}/sha256/); a clone that has them "
                               "sends them again on its next sync")
    _report(ctx, remote, result, moved, skipped, failure)
    if failure is not None:
        raise BackendError(f"synced the queue with {remote}, but its artifacts did not all travel: "
                           f"{failure.message}", failure.hint)
    return 0


def _artifact_remote(ctx: Context, remote: str):
    """(the artifact remote, None) or (None, why artifacts will not travel);
    a configured folder sluice cannot use is refused before anything syncs."""
    settings = config.sync_settings(ctx.config)
    url = ctx.backends.transport.url(remote)
    configured = settings.artifacts_for(remote, url)
    if configured is False:
        return None, "the config turns them off for this remote"
    where = ctx.config.path or "~/.config/sluice/config.toml"
    target = artifact_remote(url, configured or None, settings.key, settings.known_hosts)
    if target is None and configured:
        raise UsageError(f"sync.artifacts in {where} names {configured!r}, which is no folder sluice can reach",
                         "give a path, a file:// or ssh:// URL, or user@host:path")
    if target is None:
        return None, (f"{url} is not a path or an ssh remote, so there is no artifact folder beside it; "
                      f"set `artifacts` under [sync] in {where} (see docs/config.md#sync)")
    return target, None


def _report(ctx: Context, remote: str, result, moved: Moved | None, skipped: str | None,
            failure: SluiceError | None) -> None:
    if ctx.json:
        artifacts = moved.to_json() if moved else {"skipped": skipped} if skipped else {}
        if failure is not None:
            artifacts["error"] = failure.message
        ctx.emit({"remote": remote, "commits": result.commits, "events": result.events,
                  "pushed": result.sent, "head": result.head, "attempts": result.attempts,
                  "artifacts": artifacts})
        return
    got = f"received {result.commits} commits ({result.events} events)" if result.commits else "nothing new"
    sent = "pushed" if result.sent else "nothing to push"
    ctx.out(f"sync with {remote}: {got}; {sent}; state at {(result.head or '')[:10]}")
    if moved is not None:
        ctx.out(f"sync: {moved.summary()}")
        for line in moved.absent[:_SHOWN]:
            ctx.note(f"not on {moved.where} yet: {line}; it arrives once the clone that has it syncs")
    elif skipped and skipped != "--no-artifacts":  # asked for: nothing to warn about
        ctx.note(f"artifacts did not travel: {skipped}")
