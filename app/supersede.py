"""Supersede: only the last iteration of a package is released.

When a newer NVR of a package is approved for a target, the older builds of
that package and target that are not signed yet (built, held, needsign,
failed-to-import) become `superseded`, unless the target says
`supersede = false`. The runner writes these events (the lifecycle gives
`supersede` to the runner, that is an admin) whenever the state ref moves;
the comparison is rpm's own (epoch, version, release).
"""
from __future__ import annotations

from typing import Iterator

from app import builds, evr
from app.errors import SluiceError
from app.index import Index
from app.lifecycle import RULES, BuildView
from app.model import Op, State
from backends.base import Snapshot

UNSIGNED = tuple(RULES[Op.SUPERSEDE].sources)
APPROVED = (State.NEEDSIGN, State.SIGNED, State.TESTING, State.TESTED, State.STABLE)


def _evr(view: BuildView) -> tuple[int | None, str, str]:
    return view.record.epoch, view.record.version, view.record.release


def due(index: Index, snap: Snapshot) -> Iterator[tuple[BuildView, BuildView]]:
    """(older build, the newer approved one) for every build to supersede now."""
    for target, package in index.rivals(tuple(map(str, UNSIGNED)), tuple(map(str, APPROVED))):
        try:
            if not builds.load_target(snap, target).supersede:
                continue
            views = [builds.load_build(snap, i)
                     for i in index.of_package(target, package, tuple(map(str, UNSIGNED + APPROVED)))]
        except SluiceError:
            continue  # an unreadable target or build is reported by the index, not here
        views = [v for v in views if not v.record.scratch and not v.contested]
        approved = [v for v in views if v.state in APPROVED]
        if not approved:
            continue
        newest = approved[0]
        for view in approved[1:]:
            if evr.compare(_evr(view), _evr(newest)) > 0:
                newest = view
        for view in views:
            if view.state in UNSIGNED and view.id != newest.id and evr.compare(_evr(view), _evr(newest)) < 0:
                yield view, newest


def supersede(index: Index, snap: Snapshot, write) -> None:
    """Write the supersede events due in `snap` with `write(build, op, reason=…)`."""
    for old, newer in list(due(index, snap)):
        write(old.id, Op.SUPERSEDE, reason=f"superseded by {newer.record.nvr} ({newer.record.short}), "
                                           "approved for the same target")
