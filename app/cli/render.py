"""Plain-text renderings of builds for the terminal (JSON needs none)."""
from __future__ import annotations

import time
from typing import Iterable, Mapping, Sequence

from app import provenance, tasks
from app.lifecycle import BuildView
from app.model import Op, parse_timestamp


def age(stamp: str, now: float | None = None) -> str:
    then = parse_timestamp(stamp)
    if then is None:
        return "?"
    seconds = max(0, int((now or time.time()) - then))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> Iterable[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        yield "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()


def arches(tasks: dict[str, str]) -> str:
    return " ".join(f"{arch}:{state}" for arch, state in tasks.items())


def state_text(state: str, contested: bool) -> str:
    return f"{state} (contested)" if contested else state


def transition(view: BuildView, verb: str) -> str:
    last = view.events[-1].event
    return f"{verb} {view.record.nvr} ({view.record.short}): {last.src or 'new'} -> {view.state}"


def duration(start: str, end: str | None = None, now: float | None = None) -> str:
    """How long from `start` to `end` (or to now, while it runs)."""
    first, last = parse_timestamp(start), parse_timestamp(end) if end else (now or time.time())
    if first is None or last is None:
        return "?"
    seconds = int(max(0, last - first))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def detail(view: BuildView, allowed: Sequence[Op], waiting: Mapping[str, str] | None = None,
           used_by: Sequence[tuple[str, str]] = ()) -> Iterable[str]:
    waiting = waiting or {}
    r = view.record
    yield f"{r.short}  {r.nevr}"
    yield f"  id:        {r.id}"
    state = state_text(str(view.state), view.contested)
    if view.contested:
        state += f": {' vs '.join(view.contenders)}; run `sluice resolve {r.short} --to STATE`"
    yield f"  state:     {state}"
    yield f"  owner:     {r.owner}"
    yield f"  target:    {r.target}" + (f"   batch: {r.batch}" if r.batch else "") + \
        ("   scratch" if r.scratch else "")
    if r.after:
        yield f"  after:     {r.after[:7]}"
    yield f"  srpm:      {r.srpm.get('name')}  sha256:{r.srpm.get('sha256', '')[:16]}  {r.srpm.get('size', 0)} bytes"
    if r.buildrequires:
        yield f"  requires:  {', '.join(r.buildrequires)}"
    yield "  tasks:"
    attempts = tasks.attempts(view)
    for arch, task_state in view.tasks.items():
        why = f"  ({waiting[arch]})" if arch in waiting else ""
        yield f"    {arch:10} {task_state}{why}"
        for a in attempts.get(arch, []):
            took = duration(a.started, a.ended) if a.ended else "running"
            exit = f", exit {a.exit}" if a.exit is not None else ""
            error = f": {a.error.splitlines()[-1][:100]}" if a.error else ""
            yield f"      attempt {a.n} on {a.builder} ({a.host}), {took}{exit}, {a.result or 'building'}{error}"
    for arch, packages in tasks.installed(view).items():
        yield f"  buildroot of {arch}, by the repo each package came from:"
        yield from (f"    {line}" for line in provenance.summary(packages))
    found = tasks.artifacts(view)
    if len(found) > 1:
        yield "  artifacts:"
        for artifact in found:
            yield f"    {artifact.name:48} sha256:{artifact.sha256[:16]}  {artifact.size} bytes"
    if used_by:
        yield "  in the buildroot of:"
        for user, arch in used_by:
            yield f"    {user[:7]} ({arch})"
    yield "  events:"
    for stored in view.events:
        e = stored.event
        reason = f'  "{e.reason}"' if e.reason else ""
        yield f"    {e.at[:16].replace('T', ' ')}  {e.op:12} {e.src or 'new'} -> {e.dst}  {e.actor}{reason}"
    yield f"  you may:   {', '.join(allowed) if allowed else 'nothing in this state'}"
