"""The builders' commands: `run`, `builders`, `log` and `rescue`."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

from app import builds, hosts, logs, tasks, waits
from app.cli.context import Context
from app.cli.progress import Bars
from app.errors import NotPermitted, SluiceError
from app.model import State
from app.rescue import rescue
from app.runner import Runner, Wiring
from backends.factory import build_tool


def register(commands, common) -> None:
    p = commands.add_parser("run", parents=[common], help="build queued tasks on the configured builders")
    p.add_argument("--once", action="store_true", help="stop when nothing more can start now")
    p.set_defaults(handler=run)

    p = commands.add_parser("builders", parents=[common], help="list the builders (--check: reach each one)")
    p.add_argument("--check", action="store_true",
                   help="connect, verify the host key, check the build tool and free disk")
    p.set_defaults(handler=list_builders)

    p = commands.add_parser("log", parents=[common], help="a task's build log (live with --follow)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--arch", metavar="A", help="which task (default: the building or failed one)")
    p.add_argument("--file", default=logs.OUTPUT, metavar="NAME",
                   help="output (default: what the build printed), build.log, root.log or state.log")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while the task builds")
    p.set_defaults(handler=show_log)

    p = commands.add_parser("rescue", parents=[common],
                            help="import a failed-to-import build's results again, without a rebuild")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=rescue_build)


def runner(ctx: Context, bars: Bars) -> Runner:
    b = ctx.backends
    wiring = Wiring(ctx.connect, build_tool, ctx.repo_service.port, bars,
                    ctx.mailer.housekeeping if ctx.mailer else (lambda: None))
    return Runner(b.store, ctx.index, ctx.queue, b.artifacts, b.reader, ctx.settings, wiring, ctx.buildroots,
                  ctx.live_root, b.store.index_dir(), ctx.note)


def run(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    policy = builds.load_policy(ctx.backends.store.snapshot())
    if not policy.is_admin(ctx.actor.email):  # the runner's events are an admin's: say so before any host
        raise NotPermitted(f"{ctx.actor.email} may not run the builders: the runner writes its events as an admin",
                           f"ask an admin ({', '.join(policy.holders('admin'))}) to "
                           f"`sluice policy grant admin {ctx.actor.email}`, or run it as an admin")
    settings = ctx.settings
    if settings.embedded:
        ctx.note(f"no [[builder]] in the local config: building here with {settings.builders[0].tool}")
    if any(b.tool == "rpmbuild" for b in settings.builders):
        ctx.note("warning: rpmbuild builders are not isolated (no mock chroot); "
                 "BuildRequires come from the buildroot repo into a private rpmdb")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        runner(ctx, Bars()).run(once=args.once, stop=stop)
    finally:
        signal.signal(signal.SIGTERM, previous)
        ctx.repo_service.stop()
    return 0


def list_builders(ctx: Context, args: argparse.Namespace) -> int:
    settings = ctx.settings
    try:
        told = ctx.runner_status
    except SluiceError:  # no queue here: the builders are listed all the same
        told = None
    live = {b.name: b for b in waits.builders_status(lambda: settings, told).builders}
    checks = _check_all(ctx, settings.builders) if args.check else {}
    rows = []
    for builder in settings.builders:
        seen = live.get(builder.name)
        row = {"name": builder.name, "transport": builder.transport, "host": builder.host,
               "port": builder.port, "user": builder.user, "tool": builder.tool, "arches": list(builder.arches),
               "slots": builder.slots, "state": (seen.state if seen else "") or None,
               "busy": seen.busy if seen and seen.state else None, "reason": (seen.reason if seen else "") or None}
        if args.check:
            row["check"] = checks[builder.name]
        rows.append(row)
    if ctx.json:
        ctx.emit(rows)
    else:
        for builder, row in zip(settings.builders, rows):
            state = f"  [{row['state']}, {row['busy']}/{builder.slots} busy]" if row["state"] else ""
            ctx.out(builder.describe() + state + (f": {row['reason']}" if row["reason"] else ""))
            if args.check:
                problems = row["check"]["problems"]
                ctx.out("  ok: " + row["check"]["summary"] if not problems else
                        "\n".join(f"  PROBLEM: {p}" for p in problems))
    return 1 if any(r.get("check", {}).get("problems") for r in rows) else 0


def _check_all(ctx: Context, builders) -> dict[str, dict]:
    """Check every builder at once (a host that times out holds up no other)."""
    found: dict[str, dict] = {}

    def check(builder) -> None:
        found[builder.name] = hosts.check(builder, ctx.connect, build_tool)

    threads = [threading.Thread(target=check, args=(b,)) for b in builders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def show_log(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    view = ctx.queue.view(args.id)
    if args.follow and args.file == logs.OUTPUT:
        view = _started(ctx, view, args.arch)
    ref = logs.locate(view, args.arch, args.file, ctx.live_root, ctx.backends.artifacts)

    def write(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    if not (ref.live and args.follow):
        logs.copy(ref.path, write)
        if ref.live:
            ctx.note(f"{view.record.short} is still building on {ref.arch}; --follow keeps printing")
        return 0
    n = len(tasks.attempts(view).get(ref.arch, []))
    moved = _watch(ctx)
    logs.follow(ref.path, lambda: moved() and _ended(ctx, view.id, ref.arch, n), write)
    return 0


def _watch(ctx: Context):
    """A check that is true when the state ref moved since it last looked
    (and the first time): builds change only with events, so `log` reads
    the build again only then."""
    seen: list = [object()]

    def moved() -> bool:
        head = ctx.backends.store.head()
        if head == seen[0]:
            return False
        seen[0] = head
        return True
    return moved


def _started(ctx: Context, view, arch: str | None):
    """With --follow, a build that waits is waited for: it may start soon."""
    told, moved = False, _watch(ctx)
    moved()
    while view.state in (State.QUEUED, State.BUILDING) and not any(
            a for a in _attempts_all(view, arch) if a.ended is None):
        if not told:
            ctx.note(f"{view.record.short} has not started building yet; waiting (Ctrl-C to stop)")
            told = True
        time.sleep(0.5)
        if moved():
            view = ctx.queue.view(view.id)
    return view


def _attempts_all(view, arch: str | None) -> list:
    return [a for name, found in tasks.attempts(view).items() if arch in (None, name) for a in found]


def _ended(ctx: Context, build_id: str, arch: str, n: int) -> bool:
    view = ctx.queue.view(build_id)
    attempts = tasks.attempts(view).get(arch, [])
    return len(attempts) > n or (bool(attempts) and attempts[-1].ended is not None) or \
        view.tasks.get(arch) != "building"


def rescue_build(ctx: Context, args: argparse.Namespace) -> int:
    ctx.ready()
    b = ctx.backends
    view = rescue(ctx.queue, args.id, ctx.settings, ctx.connect, b.artifacts, b.reader, Bars())
    if ctx.json:
        ctx.emit(view.summary())
    else:
        ctx.out(f"rescued {view.record.nvr} ({view.record.short}): {view.state}")
    return 0
