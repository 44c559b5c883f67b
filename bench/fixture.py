"""A fast generator of big, valid sluice state repos for the benchmarks.

    python -m bench.fixture --builds 100000 --events-per-build 5 OUT.git

It writes exactly what sluice would have written, one commit per event (the
submit commit also carries build.json), with the records, events, commit
messages and trailers made by sluice's own code (`app.model`, `app.builds`,
`app.audit`), so folding, the index, `sluice list` and sync's history checks all
accept it. Speed comes from feeding `git fast-import` from Python instead of
going through pygit2 one object at a time: 500,000 real commits in about a
minute, so `git log` has real history to compare against.

Every build walks the lifecycle with the actors the policy allows (owners hold,
approve and withdraw; alice as the runner starts and finishes; carol signs; dave
tests). Lamport and prev are kept exactly as `Queue` keeps them, and the walks
stop in varied states: the newest builds are still queued or building, older
ones have gone on to testing or stable. Everything is seeded: the same
arguments give the same repo.

`ensure()` caches generated repos under bench/out/ and `working_copy()` makes a
cheap private copy (objects hard-linked, refs, config and index copied) for a
benchmark that writes.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pygit2

from app import audit, builds, lifecycle
from app.model import BuildRecord, Event, Op, State, StoredEvent, canonical, timestamp
from app.policy import POLICY_PATH, Policy
from app.targets import Target, target_path
from backends.base import Person
from backends.gitstore import STATE_REF, GitStateStore
from bench.packwriter import SplitHistory

OUT = Path(__file__).resolve().parent / "out"
ARCH = "x86_64"
ALICE = Person("Alice Admin", "alice@example.org")
BOB = Person("Bob Packager", "bob@example.org")
CAROL = Person("Carol Signer", "carol@example.org")
DAVE = Person("Dave Tester", "dave@example.org")
REPLICAS = {ALICE.email: "a11ce001", BOB.email: "b0b00002", CAROL.email: "ca201003", DAVE.email: "da7e0004"}
RUNNER = "b1d00005"  # the build host's clone: it writes start/finish/supersede as alice
T0 = 1704067200.0  # 2024-01-01
NEWEST = 0.02  # this share of the builds is still at the head of the queue

S, O = State, Op
# The lifecycle walk: from each state, (op, to, weight); None means "the state before the hold".
NEXT: dict[State, list[tuple[Op, State | None, int]]] = {
    S.QUEUED: [(O.START, S.BUILDING, 85), (O.CANCEL, S.CANCELLED, 15)],
    S.BUILDING: [(O.FINISH, S.BUILT, 70), (O.FINISH, S.FAILED, 15), (O.FINISH, S.FAILED_TO_IMPORT, 5),
                 (O.CANCEL, S.CANCELLED, 10)],
    S.BUILT: [(O.APPROVE, S.NEEDSIGN, 45), (O.HOLD, S.HELD, 30), (O.WITHDRAW, S.WITHDRAWN, 10),
              (O.SUPERSEDE, S.SUPERSEDED, 5)],
    S.HELD: [(O.UNHOLD, None, 60), (O.WITHDRAW, S.WITHDRAWN, 40)],
    S.NEEDSIGN: [(O.SIGN, S.SIGNED, 70), (O.HOLD, S.HELD, 20), (O.WITHDRAW, S.WITHDRAWN, 10)],
    S.SIGNED: [(O.PUSH_TESTING, S.TESTING, 90), (O.WITHDRAW, S.WITHDRAWN, 10)],
    S.TESTING: [(O.MARK_TESTED, S.TESTED, 90), (O.WITHDRAW, S.WITHDRAWN, 10)],
    S.TESTED: [(O.PUSH_STABLE, S.STABLE, 100)],
    S.FAILED: [(O.RESUBMIT, S.QUEUED, 100)],
    S.CANCELLED: [(O.RESUBMIT, S.QUEUED, 100)],
    S.FAILED_TO_IMPORT: [(O.RESCUE, S.BUILT, 70), (O.SUPERSEDE, S.SUPERSEDED, 30)],
}
TERMINAL = frozenset({S.STABLE, S.WITHDRAWN, S.SUPERSEDED})
RUNNER_OPS = frozenset({O.START, O.FINISH, O.SUPERSEDE})
REASONS = {O.HOLD: "waiting for libcdio to build", O.WITHDRAW: "broken ABI, see the advisory"}
PACKAGES = ("inventor", "libcdio", "kdelibs", "python-requests", "openssl", "glibc", "mesa", "vim",
            "nginx", "postgresql", "perl-DBI", "rust-serde", "golang-x-net", "texlive", "gtk3", "qt5-base")


# ------------------------------------------------------------------ walks

class Walk:
    """One build's events as they are planned: op and target state per step."""

    __slots__ = ("steps", "state", "before_hold")

    def __init__(self) -> None:
        self.steps: list[tuple[Op, State]] = [(O.SUBMIT, S.QUEUED)]
        self.state = S.QUEUED
        self.before_hold: State | None = None

    def step(self, rng: random.Random, last: bool) -> bool:
        """Take one more step; `last` allows ending in a terminal state."""
        options = NEXT.get(self.state, [])
        if not last:
            options = [o for o in options if o[1] not in TERMINAL] or options
        if not options:
            return False
        op, dst, _ = rng.choices(options, weights=[w for *_, w in options])[0]
        if op is O.UNHOLD:
            dst = self.before_hold or S.BUILT
        if op is O.HOLD:
            self.before_hold = self.state
        self.steps.append((op, dst))
        self.state = dst
        return True


def plan_walks(rng: random.Random, count: int, per_build: int) -> list[Walk]:
    """Walks totalling exactly count * per_build events: the newest builds are
    short (still queued or building), older ones take up the difference."""
    walks = []
    newest = int(count * NEWEST) if count >= 100 else 0
    for n in range(count):
        walk = Walk()
        length = rng.choice((1, 1, 2)) if n >= count - newest else per_build
        while len(walk.steps) < length and walk.step(rng, len(walk.steps) == length - 1):
            pass
        walks.append(walk)
    missing = count * per_build - sum(len(w.steps) for w in walks)
    older = count - newest
    tries = 0
    while missing > 0 and tries < 50 * count:
        tries += 1
        walk = walks[rng.randrange(max(1, older // 2))]  # the oldest half has had the time
        if walk.state not in TERMINAL and walk.step(rng, True):
            missing -= 1
    return walks


# ------------------------------------------------------------------ records and events

def make_record(rng: random.Random, n: int, owner: Person, created: str) -> BuildRecord:
    package = PACKAGES[n % len(PACKAGES)]
    version = f"{1 + n // (len(PACKAGES) * 10)}.{n // len(PACKAGES) % 10}"
    release = f"{1 + n % 3}.fc40"
    nvr = f"{package}-{version}-{release}"
    return BuildRecord(
        id=f"{rng.getrandbits(160):040x}", package=package, epoch=None, version=version, release=release,
        target="default", arches=(ARCH,), owner=owner.email, created=created,
        srpm={"name": f"{nvr}.src.rpm", "sha256": hashlib.sha256(nvr.encode()).hexdigest(),
              "size": 20000 + n % 50000},
        buildrequires=("gcc", "make"))


def task_data(op: Op, dst: State, tasks: dict[str, State]) -> tuple[str | None, dict]:
    """The arch and data `Queue`/`Submitter`/the runner put on this op."""
    if op in (O.SUBMIT, O.RESUBMIT):
        return None, {"tasks": {ARCH: "queued"}}
    if op is O.START:
        return ARCH, {"tasks": {ARCH: "building"}}
    if op is O.FINISH:
        return ARCH, {"tasks": {ARCH: "built" if dst is S.BUILT else str(dst)}}
    if op is O.CANCEL:
        cancelled = {a: "cancelled" for a, s in tasks.items() if s in (S.QUEUED, S.BUILDING)}
        return None, ({"tasks": cancelled} if cancelled else {})
    return None, {}


def person(email: str) -> Person:
    return {p.email: p for p in (ALICE, BOB, CAROL, DAVE)}[email]


def actor_for(op: Op, owner: Person) -> tuple[Person, str]:
    """Who writes `op` and from which clone."""
    if op in RUNNER_OPS or op is O.PUSH_STABLE:
        return ALICE, RUNNER if op in RUNNER_OPS else REPLICAS[ALICE.email]
    if op in (O.SIGN, O.PUSH_TESTING):
        return CAROL, REPLICAS[CAROL.email]
    if op is O.MARK_TESTED:
        return DAVE, REPLICAS[DAVE.email]
    return owner, REPLICAS[owner.email]


class Build:
    """A build being written: its record and the bookkeeping `make_event` keeps."""

    __slots__ = ("record", "walk", "done", "state", "head", "tasks", "view")

    def __init__(self, record: BuildRecord, walk: Walk) -> None:
        self.record, self.walk, self.done = record, walk, 0
        self.state: State | None = None
        self.head: str | None = None
        self.tasks: dict[str, State] = {}
        self.view = SimpleNamespace(record=record, id=record.id)  # what audit.build_message reads

    def next_event(self, at: str) -> tuple[Person, str, str, bytes, Event]:
        op, dst = self.walk.steps[self.done]
        actor, replica = actor_for(op, person(self.record.owner))
        arch, data = task_data(op, dst, self.tasks)
        event = Event(op, self.state, dst, actor.email, replica, self.done + 1,
                      (self.head,) if self.head else (), at, REASONS.get(op, ""), arch, data)
        event_id, body = event.encode()
        self.done += 1
        self.state, self.head = dst, event_id
        self.tasks.update((a, State(s)) for a, s in data.get("tasks", {}).items())
        return actor, replica, event_id, body, event


# ------------------------------------------------------------------ writers

def _signature(who: Person, when: float) -> str:
    return f"{who.name} <{who.email}> {int(when)} +0000"


def _replica_signature(replica: str, when: float) -> str:
    return f"sluice replica {replica} <{replica}@replica.sluice.invalid> {int(when)} +0000"


class PackSink:
    """Commits written straight into a pack (fast; see bench/packwriter.py)."""

    def __init__(self, path: str) -> None:
        self.history = SplitHistory(path, STATE_REF)

    def commit(self, author: Person, replica: str, when: float, message: str,
               files: list[tuple[str, bytes]]) -> None:
        self.history.commit(_signature(author, when).encode(), _replica_signature(replica, when).encode(),
                            message.encode(), files)

    def forget(self, build_id: str) -> None:
        folder = builds.build_dir(build_id)
        self.history.forget(f"{folder}/events", folder)

    def close(self) -> None:
        self.history.close()


class FastImportSink:
    """The same commits through `git fast-import` (slower; a cross-check: both
    writers must end at the same commit id)."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen(["git", "--git-dir", path, "fast-import", "--quiet", "--done"],
                                     stdin=subprocess.PIPE)
        self.parts: list[bytes] = []
        self.size = 0

    def commit(self, author: Person, replica: str, when: float, message: str,
               files: list[tuple[str, bytes]]) -> None:
        msg = message.encode()
        out = [f"commit {STATE_REF}\nauthor {_signature(author, when)}\n"
               f"committer {_replica_signature(replica, when)}\ndata {len(msg)}\n".encode(), msg, b"\n"]
        for path, body in files:
            out += [f"M 100644 inline {path}\ndata {len(body)}\n".encode(), body, b"\n"]
        out.append(b"\n")
        self._add(b"".join(out))

    def _add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size > 1 << 22:
            self.proc.stdin.write(b"".join(self.parts))
            self.parts, self.size = [], 0

    def forget(self, build_id: str) -> None:
        pass

    def close(self) -> None:
        self.parts.append(b"done\n")
        self.proc.stdin.write(b"".join(self.parts))
        self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise RuntimeError(f"git fast-import failed with {self.proc.returncode}")


WRITERS = {"pack": PackSink, "fast-import": FastImportSink}


def generate(path: str, count: int, per_build: int, *, seed: int = 2, window: int = 64,
             writer: str = "pack", quiet: bool = False) -> dict:
    """Write the repo at `path` (which must not exist); returns what was made."""
    started = time.perf_counter()
    rng = random.Random(seed)
    walks = plan_walks(rng, count, per_build)
    pygit2.init_repository(path, bare=True, initial_head="main")
    sink = WRITERS[writer](path)
    when = T0
    policy = Policy.initial(ALICE.email)
    sink.commit(ALICE, REPLICAS[ALICE.email], when, audit.message(
        f"init sluice queue, admin {ALICE.email}", "",
        [("Op", "init"), ("Actor", ALICE.email), ("Target", "default")]),
        [(POLICY_PATH, policy.dump()), (target_path("default"), Target("default", (ARCH,)).dump())])
    for role, who in (("owner", BOB), ("signer", CAROL), ("tester", DAVE)):
        when += 60
        policy = policy.grant(role, who.email)
        sink.commit(ALICE, REPLICAS[ALICE.email], when, audit.message(
            f"policy: grant {role} to {who.email}", "",
            [("Op", "policy-grant"), ("Role", role), ("Email", who.email), ("Package", "*"),
             ("Actor", ALICE.email)]), [(POLICY_PATH, policy.dump())])
    commits, events = 4, 0
    for first in range(0, count, window):
        group = []
        for n in range(first, min(count, first + window)):
            created = timestamp(when + (n - first) * 0.7)
            owner = BOB if n % 3 else ALICE
            group.append(Build(make_record(rng, n, owner, created), walks[n]))
        for step in range(max(len(b.walk.steps) for b in group)):
            for build in group:
                if step >= len(build.walk.steps):
                    continue
                when += 0.2 + rng.random()
                at = build.record.created if step == 0 else timestamp(when)
                actor, replica, event_id, body, event = build.next_event(at)
                files = [(builds.event_path(build.record.id, event_id), body)]
                if step == 0:
                    files.insert(0, (builds.record_path(build.record.id), canonical(build.record.to_json())))
                sink.commit(actor, replica, when, audit.build_message([build.view], [event]), files)
                commits += 1
                events += 1
        for build in group:
            sink.forget(build.record.id)
        if not quiet and first // window % 400 == 0:
            print(f"  {first + len(group)}/{count} builds, {events} events, "
                  f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
    sink.close()
    repo = pygit2.Repository(path)
    repo.config["sluice.replica"] = REPLICAS[ALICE.email]
    states = Counter(str(w.state) for w in walks)
    return {"builds": count, "events": events, "commits": commits, "head": str(repo.references[STATE_REF].target),
            "writer": writer, "seconds": round(time.perf_counter() - started, 1),
            "states": dict(states.most_common())}


def verify(path: str, sample: int = 300, seed: int = 1) -> int:
    """Replay a sample of builds through sluice's own checks: every event must
    pass `lifecycle.check` against the fold of the events before it."""
    store = GitStateStore.open(path)
    snap = store.snapshot()
    policy = builds.load_policy(snap)
    builds.load_target(snap, "default")
    ids = [i for shard in snap.list("builds")[:64] for i in snap.list(f"builds/{shard}")]
    checked = 0
    for build_id in random.Random(seed).sample(ids, min(sample, len(ids))):
        view = builds.load_build(snap, build_id)
        seen: list[StoredEvent] = []
        for stored in view.events:
            before = lifecycle.fold(view.record, seen) if seen else None
            lifecycle.check(before, view.record, stored.event, policy)
            seen.append(stored)
            checked += 1
        assert not view.contested
    return checked


# ------------------------------------------------------------------ cache and copies

def fixture_path(count: int, per_build: int) -> Path:
    return OUT / f"state-{count}x{per_build}.git"


def ensure(count: int, per_build: int, *, quiet: bool = False) -> tuple[Path, dict | None]:
    """The cached repo for these sizes, generating it if missing; the second
    value is the generation report (None when it came from the cache)."""
    path = fixture_path(count, per_build)
    if (path / "sluice-fixture-complete").exists():
        return path, None
    if path.exists():
        shutil.rmtree(path)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    report = generate(str(tmp), count, per_build, quiet=quiet)
    report["verified_events"] = verify(str(tmp))
    (tmp / "sluice-fixture-complete").write_text(repr(report) + "\n")
    os.rename(tmp, path)
    return path, report


def working_copy(source: Path | str, dest: Path | str) -> Path:
    """A private copy to write into: git objects are immutable, so they are
    hard-linked; refs, config and the index (SQLite, changed in place) are copied."""
    source, dest = Path(source), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    for folder, _, files in os.walk(source):
        rel = Path(folder).relative_to(source)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if name.endswith(("-wal", "-shm")):
                continue
            if rel.parts[:1] == ("objects",):
                os.link(Path(folder) / name, dest / rel / name)
            else:
                shutil.copy2(Path(folder) / name, dest / rel / name)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fixture", description=__doc__.split("\n\n")[0])
    p.add_argument("out", nargs="?", help="the repo to write (default: the cache under bench/out/)")
    p.add_argument("--builds", type=int, default=100_000)
    p.add_argument("--events-per-build", type=int, default=5)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--writer", choices=sorted(WRITERS), default="pack",
                   help="pack: write the pack directly (fast); fast-import: through git fast-import")
    args = p.parse_args(argv)
    if args.events_per_build < 1 or args.builds < 1:
        p.error("--builds and --events-per-build must be at least 1")
    if args.out is None:
        if args.seed != p.get_default("seed") or args.writer != p.get_default("writer"):
            p.error("--seed and --writer apply to a repo you name (OUT), not to the cache")
        path, report = ensure(args.builds, args.events_per_build)
        print(f"{path}: " + ("cached" if report is None else repr(report)))
        return 0
    if os.path.exists(args.out):
        p.error(f"{args.out} exists; give a new path")
    report = generate(args.out, args.builds, args.events_per_build, seed=args.seed, writer=args.writer)
    report["verified_events"] = verify(args.out)
    print(f"{args.out}: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
