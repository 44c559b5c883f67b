"""Run every benchmark in turn, each in its own process, and print its figures.

    python -m bench.run_all [--quick]

The 100k-build fixture is generated first if it is not cached (and its
generation time printed). `--quick` uses the 1,000-build fixture everywhere, and the builder
benchmarks (dispatch, farm, log streaming), signing, merging and publishing in their --quick sizes
(the 1 GiB log, bench_biglog, runs on its own: it takes about a minute).
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

from bench import fixture


def run(module: str, *args: str) -> int:
    print(f"\n$ python -m bench.{module} {' '.join(args)}", flush=True)
    start = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", f"bench.{module}", *args])
    print(f"   ({module} took {time.perf_counter() - start:.0f}s, exit {code})", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the 1,000-build fixture only")
    args = p.parse_args(argv)
    print(f"sluice benchmarks: nproc={os.cpu_count()} python={platform.python_version()} "
          f"({platform.machine()}, {platform.system()} {platform.release()})")
    big = 1000 if args.quick else 100_000
    start = time.perf_counter()
    path, report = fixture.ensure(big, 5, quiet=True)
    if report:
        print(f"fixture {path.name}: generated in {report['seconds']:.1f}s "
              f"({report['commits']:,} commits, {report['events']:,} events; "
              f"total with checks {time.perf_counter() - start:.1f}s)")
    else:
        print(f"fixture {path.name}: cached")
    codes = [run("bench_transitions", "--sizes", "1000" if args.quick else "1000,100000"),
             run("bench_list", "--builds", str(big)),
             run("bench_index", "--builds", str(big), "--events", "200" if args.quick else "2000"),
             run("bench_sync", "--builds", str(big), "--events", "10000", "--reps", "1" if args.quick else "2"),
             run("bench_tui", "--builds", str(big), *(["--reps", "2", "--skip-peer"] if args.quick else [])),
             *(run(module, *(["--quick"] if args.quick else []))
               for module in ("bench_dispatch", "bench_farm", "bench_logstream", "bench_sign", "bench_merge",
                              "bench_publish"))]
    failed = sum(1 for code in codes if code != 0)
    if failed:
        print(f"{failed} benchmark(s) failed; their figures above are missing or partial", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
