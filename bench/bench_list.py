"""2. `sluice list --json` as a whole process on 100k builds / 500k events.

    python -m bench.bench_list [--builds 100000] [--reps 7] [--skip-cold]

Figures (medians of --reps runs, output to /dev/null, max RSS of the child
alone, from /usr/bin/time, which scripts/setup installs):

- `sluice --repo FIXTURE list --json` with the index warm; peer: `git log
  --format=%s refs/sluice/state` on the same repo (a walk of all 500k commits:
  what listing would cost if it read history). Targets: < 0.3 s wall,
  < 200 MB peak RSS.
- the in-process query, `Index.summaries_json()` after `refresh()`: < 50 ms.
- the cold first list: the same command on a copy without an index, which
  rebuilds it from the tree (reported on its own; no target).
- for scale: the interpreter starting and importing the CLI (`python -c
  "import app.cli"`), which every sluice command pays.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter

from app.index import Index
from backends.gitstore import GitStateStore
from bench import fixture
from bench.common import SLUICE, clean_env, fixture_with_index, header, isolate, median, run_child, scratch_dir, spread

TARGET_WALL, TARGET_RSS_MB, TARGET_QUERY = 0.3, 200, 0.050


def series(argv: list[str], env: dict, reps: int) -> tuple[list[float], list[int]]:
    walls, rss = [], []
    for _ in range(reps):
        wall, maxrss, _ = run_child(argv, env)
        walls.append(wall)
        rss.append(maxrss)
    return walls, rss


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_list", description=__doc__.split("\n\n")[0])
    p.add_argument("--builds", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--skip-cold", action="store_true", help="skip the cold first list (a full index rebuild)")
    args = p.parse_args(argv)
    home = isolate()
    env = clean_env(home)
    header(f"2. sluice list --json on {args.builds:,} builds / {args.builds * 5:,} events")
    path, report, rebuild = fixture_with_index(args.builds, 5)
    if report:
        print(f"   generated the fixture in {report['seconds']:.1f}s")
    if rebuild is not None:
        print(f"   warmed its index (in-process full rebuild) in {rebuild:.1f}s")
    repo = str(path)
    listing = [SLUICE, "--repo", repo, "list", "--json"]

    out = subprocess.run(listing, capture_output=True, env=env, check=True).stdout
    docs = json.loads(out)
    states = Counter(d["state"] for d in docs)
    print(f"   output: {len(out) / 1e6:.1f} MB, {len(docs):,} builds; states: "
          + ", ".join(f"{s} {n}" for s, n in states.most_common()))
    if len(docs) != args.builds:
        print(f"   WARNING: expected {args.builds} builds")

    walls, rss = [], []
    git_walls, git_rss = [], []
    for _ in range(args.reps):  # interleaved, so noise from the other core hits both alike
        w, r = series(listing, env, 1)
        walls += w
        rss += r
        w, r = series(["git", "--git-dir", repo, "log", "--format=%s", "refs/sluice/state"], env, 1)
        git_walls += w
        git_rss += r
    startup, startup_rss = series([sys.executable, "-c", "import app.cli"], env, args.reps)

    store = GitStateStore.open(repo)
    index = Index(store)
    index.refresh()
    queries = []
    for _ in range(args.reps):
        start = time.perf_counter()
        text = index.summaries_json()
        queries.append(time.perf_counter() - start)
    refreshes = []
    for _ in range(args.reps):
        start = time.perf_counter()
        index.refresh()
        refreshes.append(time.perf_counter() - start)
    index.close()
    del text

    wall, mb = median(walls), max(rss) / 1024
    print(f"   sluice list --json (warm)   wall {spread(walls)}   max RSS {mb:.0f} MB "
          f"(median {median(rss) / 1024:.0f} MB)")
    print(f"   git log --format=%s (peer)  wall {spread(git_walls)}   max RSS {max(git_rss) / 1024:.0f} MB")
    print(f"   python -c 'import app.cli'  wall {spread(startup)}   max RSS {max(startup_rss) / 1024:.0f} MB")
    print(f"   in-process summaries_json() {spread(queries, ' ms', 1000, 1)}; refresh() when current "
          f"{spread(refreshes, ' ms', 1000, 2)}")
    print(f"   targets: wall < {TARGET_WALL}s -> {'met' if wall < TARGET_WALL else 'NOT met'}; "
          f"RSS < {TARGET_RSS_MB} MB -> {'met' if mb < TARGET_RSS_MB else 'NOT met'}; "
          f"query < {TARGET_QUERY * 1000:.0f} ms -> {'met' if median(queries) < TARGET_QUERY else 'NOT met'}")

    if not args.skip_cold:
        work = scratch_dir("list-cold")
        copy = fixture.working_copy(path, work / "cold.git")
        shutil.rmtree(copy / "sluice", ignore_errors=True)
        wall, maxrss, _ = run_child([SLUICE, "--repo", str(copy), "list", "--json"], env)
        print(f"   cold first list (full index rebuild from the tree): wall {wall:.1f}s, "
              f"max RSS {maxrss / 1024:.0f} MB  (no target; reported apart)")
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
