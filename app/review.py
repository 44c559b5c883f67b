"""`sluice review ID`: what changed since the last release, before approving.

The build's RPMs are compared with those of the previous build of the same
package in the target's testing or stable repo (the newest one older than
this build by rpm's EVR order): per binary package the files added and
removed, Provides and Requires gained and lost, the installed size, and the
changelog entries since. A shared library whose soname goes away (a
`libfoo.so.1` Provides that no package of the build still has) is an ABI
change: every build of the target from `built` to `stable` whose RPMs
require the old soname is listed, to be rebuilt in the same batch. rpmlint's
findings for the build's RPMs come last.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterator

from app import builds, evr, tasks
from app.buildroot import IN_BUILDROOT
from app.errors import BadInput
from app.index import Filters, Index
from app.lifecycle import BuildView
from app.model import State
from backends.base import ArtifactStore, ContentsReader, LintFinding, Linter, RpmContents, Snapshot

RELEASED = (State.TESTING, State.TESTED, State.STABLE)
_SONAME = re.compile(r"^([^\s(]+\.so(?:\.[^\s(]+)?)(?:\([^)]*\))*?(\(64bit\))?$")


@dataclass(frozen=True)
class PackageDiff:
    name: str  # "name.arch"
    status: str  # "changed", "new" (no such package before), "gone" (no longer built)
    size: tuple[int, int] = (0, 0)
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    provides_added: tuple[str, ...] = ()
    provides_removed: tuple[str, ...] = ()
    requires_added: tuple[str, ...] = ()
    requires_removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class AbiChange:
    soname: str  # "libfoo.so.1()(64bit)" as Requires name it
    new: tuple[str, ...]  # sonames of the same library the build provides now
    required_by: tuple[tuple[str, str, str], ...]  # (build id, nvr, "package.arch")


@dataclass(frozen=True)
class Review:
    build: BuildView
    previous: BuildView | None
    packages: tuple[PackageDiff, ...] = ()
    changelog: tuple[str, ...] = ()
    abi: tuple[AbiChange, ...] = ()
    lint: tuple[LintFinding, ...] = field(default_factory=tuple)

    def findings(self, severity: str) -> int:
        """How many rpmlint findings of `severity` ("E", "W", "I")."""
        return sum(1 for f in self.lint if f.severity == severity)


class Reviewer:
    def __init__(self, index: Index, snapshot: Callable[[], Snapshot], artifacts: ArtifactStore,
                 reader: ContentsReader, linter: Linter | None) -> None:
        self.index, self.snapshot, self.artifacts, self.reader, self.linter = index, snapshot, artifacts, reader, linter

    def review(self, build_id: str) -> Review:
        snap = self.snapshot()
        view = builds.load_build(snap, builds.resolve(snap, build_id))
        mine = self._contents(view)
        if not mine:
            raise BadInput(f"{view.record.nvr} ({view.record.short}) has no built RPMs to review "
                           f"(it is {view.state})", "review a build once it is built")
        previous = self._previous(snap, view)
        theirs = self._contents(previous) if previous else {}
        packages = tuple(_diff(key, theirs.get(key), mine.get(key)) for key in sorted(set(mine) | set(theirs)))
        changelog = _changelog_since(mine, theirs)
        abi = self._abi(snap, view, mine, theirs)
        paths = [self.artifacts.path(a.sha256) for a in tasks.rpms(view) if self.artifacts.has(a.sha256)]
        lint = tuple(self.linter.lint(paths)) if self.linter else ()
        return Review(view, previous, packages, changelog, abi, lint)

    def _previous(self, snap: Snapshot, view: BuildView) -> BuildView | None:
        r = view.record
        older = []
        for other_id in self.index.of_package(r.target, r.package, tuple(map(str, RELEASED))):
            other = builds.load_build(snap, other_id)
            o = other.record
            if other_id != r.id and evr.compare((o.epoch, o.version, o.release), (r.epoch, r.version, r.release)) < 0:
                older.append(other)
        if not older:
            return None
        newest = older[0]
        for other in older[1:]:
            o, n = other.record, newest.record
            if evr.compare((o.epoch, o.version, o.release), (n.epoch, n.version, n.release)) > 0:
                newest = other
        return newest

    def _contents(self, view: BuildView) -> dict[str, RpmContents]:
        """"name.arch" -> contents of each binary RPM this machine has."""
        found = {}
        for artifact in tasks.rpms(view):
            if self.artifacts.has(artifact.sha256):
                contents = self.reader.contents(self.artifacts.path(artifact.sha256))
                found[f"{contents.name}.{contents.arch}"] = contents
        return found

    def _abi(self, snap: Snapshot, view: BuildView, mine: dict[str, RpmContents],
             theirs: dict[str, RpmContents]) -> tuple[AbiChange, ...]:
        now = {p for c in mine.values() for p in c.provides if _soname(p)}
        gone = sorted({p for c in theirs.values() for p in c.provides if _soname(p)} - now)
        if not gone:
            return ()
        users: dict[str, list[tuple[str, str, str]]] = {soname: [] for soname in gone}
        for row in self.index.rows(Filters(target=view.record.target, states=tuple(map(str, IN_BUILDROOT)))):
            if row["package"] == view.record.package:
                continue
            other = builds.load_build(snap, row["id"])
            for key, contents in self._contents(other).items():
                for soname in gone:
                    if soname in contents.requires:
                        users[soname].append((row["id"], row["nvr"], key))
        return tuple(AbiChange(soname, tuple(sorted(p for p in now if _library(p) == _library(soname))),
                               tuple(users[soname])) for soname in gone)


def _soname(provide: str) -> bool:
    return bool(_SONAME.match(provide)) and "=" not in provide


def _library(soname: str) -> str:
    """"libfoo.so.1()(64bit)" -> "libfoo": what stays when the number moves."""
    return soname.split(".so", 1)[0]


def _diff(key: str, old: RpmContents | None, new: RpmContents | None) -> PackageDiff:
    if old is None:
        return PackageDiff(key, "new", (0, new.size if new else 0))
    if new is None:
        return PackageDiff(key, "gone", (old.size, 0))

    def delta(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(x for x in b if x not in set(a)), tuple(x for x in a if x not in set(b))

    files, provides, requires = (delta(old.files, new.files), delta(_unversioned(old, old.provides),
                                 _unversioned(new, new.provides)), delta(old.requires, new.requires))
    return PackageDiff(key, "changed", (old.size, new.size), *files, *provides, *requires)


def _unversioned(contents: RpmContents, provides: tuple[str, ...]) -> tuple[str, ...]:
    """A package's Provides of itself at its own EVR changes every release: no news."""
    own = f" = {contents.evr}"
    return tuple(p[:-len(own)] + " = (this version)" if p.endswith(own) else p for p in provides)


def _changelog_since(mine: dict[str, RpmContents], theirs: dict[str, RpmContents]) -> tuple[str, ...]:
    entries = max((c.changelog for c in mine.values()), key=len, default=())
    before = max((e.time for c in theirs.values() for e in c.changelog), default=None)
    fresh = [e for e in entries if before is None or e.time > before] if theirs else list(entries[:1])
    return tuple(f"* {e.author}\n{e.text}" for e in fresh)


# ---------------------------------------------------------------- as text
#
# The CLI prints these lines; the cockpit styles them by kind (the ABI block
# loud, lint by severity) and opens the build a line names. One rendering,
# so that the two never say different things about the same review.

HEAD, ABI, ABI_NOTE, ABI_USER, PACKAGE, ADDED, REMOVED, SECTION, TEXT, LINT = (
    "head", "abi", "abi-note", "abi-user", "package", "added", "removed", "section", "text", "lint")
FOLDED = 8  # a longer list of files or dependencies shows this many, and the count


@dataclass(frozen=True)
class Line:
    kind: str  # one of the kinds above
    text: str
    build: str | None = None  # the build this line names (a required-by line)
    severity: str = ""  # a lint line's "E", "W" or "I"


def against(r: Review) -> str:
    if r.previous is None:
        return "first release (no earlier build of it in testing or stable: everything is new)"
    return f"against {r.previous.record.nvr} ({r.previous.record.short}, {r.previous.state})"


def lines(r: Review, folded: int | None = FOLDED) -> Iterator[Line]:
    """The review as lines; lists longer than `folded` items are cut to
    that many and their count (None: every item)."""
    record = r.build.record
    yield Line(HEAD, f"review {record.nvr} ({record.short}) {against(r)}")
    for change in r.abi:
        now = f"; it provides {', '.join(change.new)} now" if change.new else ""
        yield Line(ABI, f"!! ABI change: {change.soname} is gone{now}")
        if change.required_by:
            yield Line(ABI_NOTE, "   required by (rebuild them, in one batch with this build: submit --batch NAME):")
            for build_id, nvr, package in change.required_by:
                yield Line(ABI_USER, f"     {build_id[:7]} {nvr}: {package}", build_id)
        else:
            yield Line(ABI_NOTE, "   nothing in the target requires it")
    for p in r.packages:
        yield from _package(p, folded)
    if r.changelog:
        yield Line(SECTION, "  changelog since:" if r.previous else "  changelog (newest entry):")
        for entry in r.changelog:
            yield from (Line(TEXT, f"    {line}") for line in entry.splitlines())
    if r.lint:
        errors, warnings = r.findings("E"), r.findings("W")
        yield Line(SECTION, f"  rpmlint: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")
        yield from (Line(LINT, f"    {f.package}: {f.severity}: {f.check} {f.detail}".rstrip(), severity=f.severity)
                    for f in r.lint)


def _package(p: PackageDiff, folded: int | None) -> Iterator[Line]:
    if p.status != "changed":
        yield Line(PACKAGE, f"  {p.name}: {p.status}")
        return
    old, new = p.size
    grew = f" ({(new - old) * 100 / old:+.1f}%)" if old else ""
    yield Line(PACKAGE, f"  {p.name}: size {_size(old)} -> {_size(new)}{grew}")
    for label, items in (("files +", p.files_added), ("files -", p.files_removed),
                         ("provides +", p.provides_added), ("provides -", p.provides_removed),
                         ("requires +", p.requires_added), ("requires -", p.requires_removed)):
        if items:
            cut = folded is not None and len(items) > folded
            shown = ", ".join(items[:folded] if cut else items) + (f", … ({len(items)} in all)" if cut else "")
            yield Line(ADDED if label.endswith("+") else REMOVED, f"    {label:11} {shown}")


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.1f} MiB"
