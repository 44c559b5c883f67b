"""3. Index catch-up after 2,000 new events on the 100k-build repo.

    python -m bench.bench_index [--builds 100000] [--events 2000] [--reps 5] [--keep]

On a private copy of the fixture with its index warm, 2,000 holds are written
through `Queue.perform` (one commit each, on 2,000 different built builds, so
2,000 builds change; each is extended from its kept fold). Then, from the index as it was before the
writes, `Index.refresh()` is timed:

- in a fresh process (what `sluice list` pays after a sync brought the events;
  nothing is cached), each rep from a restored copy of the old index;
- in this process, where the writes left sluice's decoded-event cache warm;
- the peer/floor: the tree diff alone (`GitStateStore.changes`, which
  refresh runs first), in a fresh process.

Target: refresh under 0.2 s.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

from app.actions import Action
from app.index import Index
from app.model import Op
from app.queue import Queue
from backends.gitstore import GitStateStore
from bench import fixture
from bench.common import (ALICE, built_builds, fixture_with_index, header, isolate, median, scratch_dir,
                          spread)

TARGET = 0.2
CHILD = r"""
import json, sys, time
from app.index import Index
from backends.gitstore import GitStateStore
store = GitStateStore.open(sys.argv[1])
index = Index(store)
base, head = index.indexed(), store.head()
if sys.argv[2] == "refresh":
    start = time.perf_counter()
    index.refresh()
    took = time.perf_counter() - start
    print(json.dumps({"seconds": took, "count": index.count(), "now": index.indexed() == head}))
else:
    start = time.perf_counter()
    changed = store.changes(base, head)
    print(json.dumps({"seconds": time.perf_counter() - start, "paths": len(changed)}))
"""


def child(repo: str, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, repo, what], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_index", description=__doc__.split("\n\n")[0])
    p.add_argument("--builds", type=int, default=100_000)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the copy (to profile refresh on it)")
    args = p.parse_args(argv)
    isolate()
    header(f"3. index catch-up after {args.events:,} new events on {args.builds:,} builds")
    path, report, rebuild = fixture_with_index(args.builds, 5)
    if rebuild is not None:
        print(f"   warmed the fixture's index (full rebuild) in {rebuild:.1f}s")
    ids = built_builds(path, limit=args.events)
    if len(ids) < args.events:
        raise SystemExit(f"only {len(ids)} built builds in the fixture")
    work = scratch_dir("index")
    copy = fixture.working_copy(path, work / "catchup.git")
    repo = str(copy)
    store = GitStateStore.open(repo)
    index_file = copy / "sluice" / "index.sqlite"
    saved = work / "index-before.sqlite"
    shutil.copy2(index_file, saved)

    queue = Queue(store, ALICE, Index(store))
    start = time.perf_counter()
    for build_id in ids:
        queue.perform(Action(Op.HOLD, build_id, "bench: waiting for a dependency"))
    wrote = time.perf_counter() - start
    queue.index.close()
    print(f"   wrote {len(ids):,} holds through Queue.perform in {wrote:.1f}s ({len(ids) / wrote:.0f}/s)")

    def restore() -> None:
        for suffix in ("-wal", "-shm"):
            (copy / "sluice" / f"index.sqlite{suffix}").unlink(missing_ok=True)
        shutil.copy2(saved, index_file)

    fresh, diffs = [], []
    for _ in range(args.reps):
        restore()
        diffs.append(child(repo, "diff")["seconds"])
        result = child(repo, "refresh")
        if not result["now"] or result["count"] != args.builds:
            raise SystemExit(f"refresh did not catch up: {result}")
        fresh.append(result["seconds"])
    warm = []
    for _ in range(args.reps):
        restore()
        index = Index(store)
        start = time.perf_counter()
        index.refresh()
        warm.append(time.perf_counter() - start)
        index.close()
    print(f"   Index.refresh(), fresh process     {spread(fresh)}")
    print(f"   Index.refresh(), this process      {spread(warm)}  (decoded events cached by the writes)")
    print(f"   tree diff alone (store.changes)    {spread(diffs)}  (the floor; fresh process)")
    print(f"   target: < {TARGET}s -> {'met' if median(fresh) < TARGET else 'NOT met'} "
          f"(fresh process); {'met' if median(warm) < TARGET else 'NOT met'} (this process)")
    if args.keep:
        restore()
        print(f"   kept {repo} (index restored to before the writes)")
    else:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
