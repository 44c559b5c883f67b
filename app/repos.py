"""What each target's repos hold, and what a push or a publish would change.

The answers come from where the release path takes them, and nothing is
written, published or read from the artifact store's files:

- the buildroot repo: the builds from `built` on (`app.buildroot.IN_BUILDROOT`),
  with their RPMs as built;
- testing and stable: their newest manifest (`app.manifests`), which is
  what the last publish put there;
- a `push testing` per build (or batch) in `signed`, and a `push stable` per
  build in `tested`: the signed RPMs it would add (and, for stable, take out
  of testing);
- a `publish TARGET` when the queue and the last manifest disagree
  (`Releases.wanted`, the very list a publish makes the repo match): a build
  withdrawn from testing, a push made on another clone. Every push publishes
  its whole target, so it does this too.

`sluice repos [TARGET]` prints it and the cockpit's Repos screen shows it.
"""
from __future__ import annotations

from dataclasses import dataclass

from app import builds, manifests, tasks
from app.buildroot import IN_BUILDROOT
from app.errors import SluiceError
from app.index import Filters
from app.lifecycle import BuildView
from app.manifests import Package
from app.model import State
from app.release import STAGES, Releases, nevra

REPOS = ("buildroot", "testing", "stable")


@dataclass(frozen=True)
class Move:
    """What one command would change in a target's repos."""

    command: str  # the CLI command: "sluice push testing 3f9a1c2", "sluice publish default"
    builds: tuple[str, ...]  # the builds it pushes (a whole batch); none for a publish
    adds: tuple[tuple[str, Package], ...]  # (repo, package) that would enter
    removes: tuple[tuple[str, Package], ...]  # (repo, package) that would leave

    def to_json(self) -> dict:
        return {"command": self.command, "builds": list(self.builds),
                "adds": [{"repo": r, **p.to_json()} for r, p in self.adds],
                "removes": [{"repo": r, **p.to_json()} for r, p in self.removes]}


@dataclass(frozen=True)
class TargetRepos:
    target: str
    key: str | None  # the target's signing key, when it has one
    buildroot: tuple[Package, ...]  # the RPMs as built (signed_by "")
    testing: tuple[Package, ...]  # as the newest manifest lists them
    stable: tuple[Package, ...]
    manifests: tuple[tuple[str, int | None], ...]  # (repo, number of its newest manifest)
    moves: tuple[Move, ...]
    problems: tuple[str, ...]  # what a publish from this machine would be refused for

    def held(self, repo: str) -> tuple[Package, ...]:
        return {"buildroot": self.buildroot, "testing": self.testing, "stable": self.stable}[repo]

    def to_json(self) -> dict:
        return {"target": self.target, "key": self.key,
                "repos": {r: [p.to_json() for p in self.held(r)] for r in REPOS},
                "manifests": dict(self.manifests), "moves": [m.to_json() for m in self.moves],
                "problems": list(self.problems)}


def overview(releases: Releases, only: str | None = None) -> list[TargetRepos]:
    """Every target's repos (or just `only`'s), from the current state."""
    snap = releases.store.snapshot()
    releases.index.refresh(snap)
    if only is not None:
        builds.load_target(snap, only)  # a clear error for an unknown target
    return [_target(releases, snap, target) for target in ([only] if only else builds.target_names(snap))]


def _target(releases: Releases, snap, target: str) -> TargetRepos:
    rows = [r for r in releases.index.rows(Filters(states=tuple(map(str, IN_BUILDROOT)), target=target))
            if not r["scratch"]]
    rows.reverse()  # oldest first: the order they were built in
    views = {row["id"]: builds.load_build(snap, row["id"]) for row in rows}
    problems: list[str] = []
    buildroot = []
    for row in rows:
        packages = _packages(views[row["id"]], signed=False)
        absent = [p.name for p in packages if not releases.artifacts.has(p.sha256)]
        if absent:
            problems.append(f"buildroot: {row['nvr']} ({row['id'][:7]}) is left out here, its RPMs are not in "
                            "this machine's artifact store")
        buildroot += packages
    last = {stage: manifests.latest(snap, target, stage) for stage in STAGES}
    held = {stage: (m.packages if m else ()) for stage, m in last.items()}
    moves = [_push("testing", group, views, held) for group in _groups(rows, State.SIGNED)]
    moves += [_push("stable", group, views, held) for group in _groups(rows, State.TESTED)]
    publish = _publish(releases, snap, target, held, problems)
    if publish is not None:
        moves.append(publish)
    return TargetRepos(target, builds.load_target(snap, target).signing_key, tuple(buildroot), held["testing"],
                       held["stable"], tuple((s, m.number if m else None) for s, m in last.items()),
                       tuple(moves), tuple(problems))


def _packages(view: BuildView, signed: bool) -> list[Package]:
    return [Package(a.name, nevra(a.name, view.record.epoch), a.sha256, a.signed_by or "", view.id)
            for a in tasks.rpms(view, signed=signed)]


def _groups(rows: list[dict], state: State) -> list[list[str]]:
    """The builds in `state`, a batch's members together (a push takes the
    whole batch)."""
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row["state"] == str(state):
            groups.setdefault(f"batch:{row['batch']}" if row["batch"] else row["id"], []).append(row["id"])
    return list(groups.values())


def _push(stage: str, group: list[str], views: dict[str, BuildView], held: dict) -> Move:
    packages = [p for build in group for p in _packages(views[build], signed=True)]
    adds = tuple((stage, p) for p in packages)
    removes: tuple[tuple[str, Package], ...] = ()
    if stage == "stable":  # it leaves testing, where its packages are by the same name and bytes
        removes = tuple(("testing", p) for p in held["testing"] if p in packages)
    return Move(f"sluice push {stage} {group[0][:7]}", tuple(group), adds, removes)


def _publish(releases: Releases, snap, target: str, held: dict, problems: list[str]) -> Move | None:
    adds, removes = [], []
    for stage in STAGES:
        try:
            wanted = releases.wanted(snap, target, stage)
        except SluiceError as exc:
            problems.append(f"{stage}: {exc.message}")
            continue
        have, want = set(held[stage]), set(wanted)
        adds += [(stage, p) for p in wanted if p not in have]
        removes += [(stage, p) for p in held[stage] if p not in want]
    if not adds and not removes:
        return None
    return Move(f"sluice publish {target}", (), tuple(adds), tuple(removes))
