"""Advisories: what an update fixes, for whom it matters, and which builds carry it.

An advisory is one file in the state tree, `advisories/<target>/<ID>.json`,
written once by `sluice advisory new` and never changed (sync refuses a
modified one, as it refuses a modified event). Its id is
`SLUICE-<year>-<10 hex>`, the hex from the sha256 of its content, so two
clones writing advisories at the same moment never pick the same id (Bodhi's
`FEDORA-2026-1a2b3c4d5e` works the same way and needs no counter).

An advisory names builds of one target. It is published (in the stable
repo's updateinfo.xml, see `app.updateinfo`) once every one of them is in
stable, and announced then; `push stable` refuses to push part of an
advisory's builds unless told `--partial`, so an advisory is never left
half-released by accident.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from app import audit, builds
from app.errors import BadInput, NotFound, NotPermitted, SluiceError, StateConflict, UsageError
from app.lifecycle import BuildView
from app.manifests import ADVISORY_ID
from app.model import HEX_ID, MAX_TEXT, NAME, State, canonical, timestamp
from app.policy import Policy
from backends.base import Change, Person, Snapshot, StateStore

ROOT = "advisories"
ID = ADVISORY_ID
PATH = re.compile(rf"{ROOT}/({NAME.pattern})/({ID.pattern})\.json")
TYPES = ("security", "bugfix", "enhancement")
SEVERITIES = ("critical", "important", "moderate", "low")
AUTHORS = frozenset({"owner", "admin"})
DEAD = (State.FAILED, State.FAILED_TO_IMPORT, State.CANCELLED, State.WITHDRAWN, State.SUPERSEDED)
_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,7}")
_URL = re.compile(r"https?://[^\s\"<>]+")
_BUG = re.compile(r"(?:show_bug\.cgi\?id=|/bugs?/|/bugzilla/)([0-9]+)")


@dataclass(frozen=True)
class Reference:
    type: str  # cve, bugzilla or self: updateinfo's reference types
    href: str
    id: str
    title: str


def reference(text: str) -> Reference:
    """A `--ref`: a CVE id or a URL (a bug tracker's link becomes a bugzilla reference)."""
    if _CVE.fullmatch(text):
        return Reference("cve", f"https://www.cve.org/CVERecord?id={text}", text, text)
    if _URL.fullmatch(text) and len(text) <= 1024:
        bug = _BUG.search(text)
        if bug:
            return Reference("bugzilla", text, bug.group(1), f"bug {bug.group(1)}")
        return Reference("self", text, "", text)
    raise BadInput(f"{text!r} is not a reference sluice understands",
                   "give a CVE id (CVE-2026-12345) or an http(s) URL (a bug tracker's link becomes a bugzilla "
                   "reference)")


@dataclass(frozen=True)
class Advisory:
    id: str
    target: str
    type: str
    severity: str  # "" for a bugfix or enhancement given none
    title: str
    description: str
    builds: tuple[str, ...]  # full build ids, sorted
    refs: tuple[str, ...]  # as given: CVE ids and URLs
    actor: str
    created: str

    def encode(self) -> bytes:
        return canonical({**asdict(self), "builds": list(self.builds), "refs": list(self.refs)})

    @property
    def references(self) -> list[Reference]:
        return [reference(ref) for ref in self.refs]

    @property
    def issued(self) -> str:
        """updateinfo's date form, from `created`."""
        return f"{self.created[:10]} {self.created[11:19]}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "builds": list(self.builds), "refs": list(self.refs),
                "references": [asdict(r) for r in self.references]}


def path_of(target: str, advisory_id: str) -> str:
    return f"{ROOT}/{target}/{advisory_id}.json"


def check(advisory: Advisory) -> None:
    """Everything about an advisory that does not need the queue."""
    if advisory.type not in TYPES:
        raise BadInput(f"advisory type {advisory.type!r} is not one of {', '.join(TYPES)}")
    if advisory.severity not in (*SEVERITIES, ""):
        raise BadInput(f"severity {advisory.severity!r} is not one of {', '.join(SEVERITIES)}")
    if advisory.type == "security" and not advisory.severity:
        raise BadInput("a security advisory needs a severity",
                       f"add --severity, one of {', '.join(SEVERITIES)} (dnf shows it and filters on it)")
    if not advisory.title.strip() or "\n" in advisory.title or len(advisory.title) > 200:
        raise BadInput("an advisory needs a one-line title of at most 200 characters", "pass --title")
    if len(advisory.description) > MAX_TEXT:
        raise BadInput(f"the description is over {MAX_TEXT} characters", "shorten it; link the details with --ref")
    if not advisory.builds or any(not HEX_ID.fullmatch(b) for b in advisory.builds) \
            or list(advisory.builds) != sorted(set(advisory.builds)):
        raise BadInput("an advisory names its builds by full id, each once, sorted")
    for ref in advisory.refs:
        reference(ref)
    if not ID.fullmatch(advisory.id) or not NAME.fullmatch(advisory.target) or not isinstance(advisory.actor, str):
        raise BadInput(f"{advisory.id!r} is not an advisory id like SLUICE-2026-1a2b3c4d5e")


def parse(path: str, data: bytes) -> Advisory:
    """An advisory read from the tree, checked against its path; BadInput if not."""
    match = PATH.fullmatch(path)
    if not match:
        raise BadInput(f"{path} is not an advisory path")
    try:
        doc = json.loads(data)
        advisory = Advisory(**{**doc, "builds": tuple(doc["builds"]), "refs": tuple(doc["refs"])})
        check(advisory)
    except (ValueError, TypeError, KeyError, BadInput) as exc:
        raise BadInput(f"{path} is not a valid advisory: {exc}") from exc
    if (advisory.target, advisory.id) != match.groups():
        raise BadInput(f"{path} names another target or id than its path")
    return advisory


def load_all(snap: Snapshot, target: str | None = None) -> list[Advisory]:
    targets = [target] if target else snap.list(ROOT)
    found = []
    for name in targets:
        for entry in snap.list(f"{ROOT}/{name}"):
            path = f"{ROOT}/{name}/{entry}"
            found.append(parse(path, snap.read(path) or b""))
    return sorted(found, key=lambda a: (a.created, a.id))


def find(snap: Snapshot, advisory_id: str) -> Advisory:
    wanted = advisory_id.upper()
    for advisory in load_all(snap):
        if advisory.id.upper() == wanted:
            return advisory
    raise NotFound(f"there is no advisory {advisory_id}", "see them with `sluice advisory list`")


def problems(advisory: Advisory, views: dict[str, BuildView | None], policy: Policy,
             author: str) -> list[SluiceError]:
    """Why `author` may not write `advisory` naming the builds in `views`
    (id -> view, None: no such build): the checks of `new` and of sync."""
    found: list[SluiceError] = []
    admins = ", ".join(policy.holders("admin"))
    for build_id in advisory.builds:
        view = views.get(build_id)
        if view is None:
            found.append(NotFound(f"advisory {advisory.id} names build {build_id[:7]}, which does not exist"))
            continue
        rec = view.record
        if rec.target != advisory.target:
            found.append(BadInput(f"{rec.nvr} ({rec.short}) is a build of target {rec.target}, not "
                                  f"{advisory.target}", "an advisory is for the builds of one target"))
        elif rec.scratch:
            found.append(BadInput(f"{rec.nvr} ({rec.short}) is a scratch build, which never reaches a repo",
                                  "name the real build"))
        elif rec.owner != author and not policy.permits(author, AUTHORS, rec.package):
            found.append(NotPermitted(f"{author} may not write an advisory for {rec.nvr} ({rec.short}): only "
                                      "its package's owners and admins may", f"ask its owner {rec.owner} or an "
                                      f"admin ({admins}) to write it"))
    return found


class Advisories:
    def __init__(self, store: StateStore, actor: Person) -> None:
        self.store, self.actor = store, actor

    def new(self, type_: str, severity: str, build_ids: Sequence[str], refs: Sequence[str], title: str,
            description: str) -> Advisory:
        if not build_ids:
            raise UsageError("name the builds the advisory is for", "pass --builds ID…")
        snap = self.store.snapshot()
        ids = tuple(sorted({builds.resolve(snap, b) for b in build_ids}))
        views = {b: builds.load_build(snap, b) for b in ids}
        targets = sorted({v.record.target for v in views.values()})
        if len(targets) > 1:
            raise BadInput(f"the builds are for several targets ({', '.join(targets)}); an advisory is for one",
                           "write one advisory per target")
        draft = Advisory("SLUICE-0000-0000000000", targets[0], type_, severity or "", title.strip(), description,
                         ids, tuple(dict.fromkeys(refs)), self.actor.email, timestamp())
        check(draft)
        written: list[Advisory] = []

        def plan(snap: Snapshot) -> Change:
            advisory = self._checked(snap, draft)
            written[:] = [advisory]
            text = audit.message(f"advisory {advisory.id} ({advisory.type}) for {advisory.target}: {advisory.title}",
                                 "", [("Op", "advisory"), ("Advisory", advisory.id), ("Target", advisory.target),
                                      *(("Build", b) for b in advisory.builds), ("Actor", self.actor.email)])
            return Change({path_of(advisory.target, advisory.id): advisory.encode()}, text, self.actor)
        self.store.update(plan)
        return written[0]

    def _checked(self, snap: Snapshot, draft: Advisory) -> Advisory:
        """The advisory with its id, checked against the queue as it is in `snap`."""
        views = {b: builds.load_build(snap, b) for b in draft.builds}
        policy = builds.load_policy(snap)
        refused = problems(draft, views, policy, self.actor.email)
        if refused:
            raise min(refused, key=lambda exc: exc.exit_code)  # bad input before permission
        for view in views.values():
            if view.state in DEAD:
                raise StateConflict(f"{view.record.nvr} ({view.record.short}) is {view.state}; it will never "
                                    "reach stable", "name the build that replaces it")
        for other in load_all(snap, draft.target):
            shared = sorted(set(other.builds) & set(draft.builds))
            if shared:
                raise StateConflict(f"build {shared[0][:7]} is already in advisory {other.id} ({other.title})",
                                    "a build is in one advisory: say everything in that one, or leave the build "
                                    "out of this one")
        year = draft.created[:4]
        digest = hashlib.sha256(draft.encode()).hexdigest()[:10]
        return replace(draft, id=f"SLUICE-{year}-{digest}")


def missing_for_push(snap: Snapshot, pushed: dict[str, BuildView]) -> list[tuple[Advisory, list[BuildView]]]:
    """The advisories naming a build of `pushed` (id -> view) whose other
    builds are neither pushed with it nor in stable already."""
    found = []
    for target in sorted({v.record.target for v in pushed.values()}):
        for advisory in load_all(snap, target):
            if not set(advisory.builds) & set(pushed):
                continue
            left = [builds.load_build(snap, b) for b in advisory.builds if b not in pushed]
            left = [v for v in left if v.state != State.STABLE]
            if left:
                found.append((advisory, left))
    return found


def complete(snap: Snapshot, target: str, stable_builds: set[str]) -> list[Advisory]:
    """The target's advisories whose builds are all in `stable_builds`."""
    return [a for a in load_all(snap, target) if set(a.builds) <= stable_builds]
