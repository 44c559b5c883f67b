"""4. `sync` merging 10,000 events from another clone, git fetch included.

    python -m bench.bench_sync [--builds 100000] [--events 10000] [--reps 3]
                               [--variants ff,merge] [--remote loose,packed] [--profile]

Two clones of the same fixture share its history. The other clone writes
10,000 events as real commits through `Queue.perform` (holds, then unholds, on
5,000 built builds; on small fixtures, again and again on fewer). Then, with
the other clone's objects loose as written and again after `git repack -d`
there, each rep on fresh copies of this clone, timed in a fresh process (as
`sluice sync` runs; nothing cached from the writes):

- fast-forward: this clone has nothing new; `Syncer.sync(path)` fetches,
  checks every incoming commit and moves the ref (no push needed);
- merge: this clone first writes one event of its own, so sync also writes
  the union merge commit and pushes it back (the other clone's ref is reset
  after each rep);
- the peer: plain `git fetch` of the same refspec into another fresh copy.

Each sync is broken down into fetch / verify / merge / push. Target: < 2 s.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pygit2

from app.actions import Action
from app.index import Index
from app.model import Op
from app.queue import Queue
from backends.gitstore import STATE_REF, GitStateStore
from bench import fixture
from bench.common import (ALICE, built_builds, fixture_with_index, header, isolate, median, run_child,
                          scratch_dir, spread, timed)

TARGET = 2.0
CHILD = r"""
import cProfile, io, json, pstats, sys, time
from app.sync import Syncer
from backends.gitstore import GitStateStore
from backends.gitsync import GitCliTransport, GitMerger
from backends.base import Person
repo, remote, want_profile = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
store = GitStateStore.open(repo)
transport, merger = GitCliTransport(store.repo), GitMerger(store)
syncer = Syncer(store, transport, merger, Person("Alice Admin", "alice@example.org"))
spent = {}
def timing(obj, name, key):
    inner = getattr(obj, name)
    def wrapped(*a, **k):
        start = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
    setattr(obj, name, wrapped)
timing(transport, "fetch", "fetch")
timing(transport, "push", "push")
timing(syncer, "verify", "verify")
timing(merger, "union", "merge")
timing(merger, "advance", "advance")
prof = cProfile.Profile() if want_profile else None
start = time.perf_counter()
if prof: prof.enable()
result = syncer.sync(remote)
if prof: prof.disable()
total = time.perf_counter() - start
text = ""
if prof:
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
    text = out.getvalue()
print(json.dumps({"total": total, "spent": spent, "commits": result.commits, "events": result.events,
                  "sent": result.sent, "head": result.head, "profile": text}))
"""


def run_sync(repo: str, remote: str, want_profile: bool = False) -> dict:
    """One sync in a fresh process, as `sluice sync` runs."""
    out = subprocess.run([sys.executable, "-c", CHILD, repo, remote, "1" if want_profile else "0"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"sync failed: {out.stderr}")
    return json.loads(out.stdout)


def write_events(repo: str, ids: list[str], count: int) -> float:
    """`count` events: a hold pass over `ids`, an unhold pass, and again (small
    fixtures have fewer built builds than half the events)."""
    store = GitStateStore.open(repo)
    queue = Queue(store, ALICE, Index(store))
    start = time.perf_counter()
    written = 0
    while written < count:
        batch = ids[:(count - written + 1) // 2]
        for build_id in batch:
            queue.perform(Action(Op.HOLD, build_id, "bench: waiting for a dependency"))
        for build_id in batch[:count - written - len(batch)]:
            queue.perform(Action(Op.UNHOLD, build_id))
        written += len(batch) + len(batch[:count - written - len(batch)])
    queue.index.close()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_sync", description=__doc__.split("\n\n")[0])
    p.add_argument("--builds", type=int, default=100_000)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="cProfile one more fast-forward sync")
    p.add_argument("--variants", default="ff,merge", help="ff, merge or both")
    p.add_argument("--remote", default="loose,packed",
                   help="the other clone's objects: loose (as written), packed (after git repack), or both")
    args = p.parse_args(argv)
    isolate()
    header(f"4. sync of {args.events:,} events from another clone ({args.builds:,}-build fixture)")
    path, report, rebuild = fixture_with_index(args.builds, 5)
    if rebuild is not None:
        print(f"   warmed the fixture's index (full rebuild) in {rebuild:.1f}s")
    half = args.events // 2
    ids = built_builds(path, limit=half)
    local = built_builds(path, states=("needsign",), limit=1)[0]  # for the merge variant's own event
    work = scratch_dir("sync")
    other = fixture.working_copy(path, work / "other.git")
    took = write_events(str(other), ids, 2 * half)
    other_head = GitStateStore.open(str(other)).head()
    print(f"   the other clone wrote {2 * half:,} events (holds, unholds on {len(ids):,} built builds) "
          f"through Queue.perform in {took:.1f}s ({2 * half / took:.0f}/s)")

    for state in args.remote.split(","):
        if state == "packed":
            took, _ = timed(lambda: subprocess.run(["git", "--git-dir", str(other), "repack", "-d", "-q"],
                                                   check=True))
            print(f"   -- the other clone repacked (`git repack -d`, as its auto gc would) in {took:.1f}s")
        else:
            print("   -- the other clone as written: its new objects loose")
        measure(path, other, other_head, local, args.variants.split(","), args.reps, work, 2 * half)
    if args.profile:
        ff = fixture.working_copy(path, work / "ff-profile.git")
        result = run_sync(str(ff), str(other), want_profile=True)
        print("   profile of a fast-forward sync, by own time:")
        print("\n".join("      " + line for line in result["profile"].strip().splitlines()[3:]))
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return 0


def measure(path, other, other_head: str, local: str, variants: list[str], reps: int, work, commits: int) -> None:
    """`reps` rounds of: the peer's plain fetch, then each sync variant, each on a fresh copy."""
    other_repo = pygit2.Repository(str(other))
    results: dict[str, list[dict]] = {v: [] for v in variants}
    fetches = []
    for rep in range(reps):
        peer = fixture.working_copy(path, work / f"peer-{rep}.git")
        wall, _, _ = run_child(["git", "--git-dir", str(peer), "-c", "protocol.ext.allow=never", "fetch",
                                "--no-tags", "--no-write-fetch-head", "--quiet", str(other),
                                "+refs/sluice/*:refs/remotes/peer/sluice/*"])
        fetches.append(wall)
        subprocess.run(["rm", "-rf", str(peer)], check=True)
        if "ff" in variants:
            ff = fixture.working_copy(path, work / f"ff-{rep}.git")
            result = run_sync(str(ff), str(other))
            assert result["head"] == other_head and result["events"] == commits, result
            results["ff"].append(result)
            subprocess.run(["rm", "-rf", str(ff)], check=True)
        if "merge" in variants:
            mine = fixture.working_copy(path, work / f"merge-{rep}.git")
            store = GitStateStore.open(str(mine))
            Queue(store, ALICE, Index(store)).perform(Action(Op.HOLD, local, "bench: local change"))
            result = run_sync(str(mine), str(other))
            assert result["sent"] and result["events"] == commits, result
            results["merge"].append(result)
            other_repo.references[STATE_REF].set_target(other_head, "bench: undo the merge push")
            subprocess.run(["rm", "-rf", str(mine)], check=True)
    print(f"   git fetch (peer)              {spread(fetches)}")
    for name, label in (("ff", "sync, fast-forward"), ("merge", "sync, merge + push")):
        if name not in results:
            continue
        totals = [r["total"] for r in results[name]]
        own = [r["total"] - r["spent"].get("fetch", 0.0) - r["spent"].get("push", 0.0) for r in results[name]]
        parts = {k: median([r["spent"].get(k, 0.0) for r in results[name]])
                 for k in ("fetch", "verify", "merge", "advance", "push")}
        shown = ", ".join(f"{k} {v:.2f}s" for k, v in parts.items() if v)
        print(f"   {label:29s} {spread(totals)}   [{shown}]")
        print(f"      {median(totals) / median(fetches):.1f}x the plain fetch; target < {TARGET}s in all -> "
              f"{'met' if median(totals) < TARGET else 'NOT met'}; sluice's own part (all but git's fetch "
              f"and push) {spread(own)} -> {'met' if median(own) < TARGET else 'NOT met'}")


if __name__ == "__main__":
    raise SystemExit(main())
