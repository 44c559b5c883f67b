"""1. Transitions per second: `Queue.perform` against raw pygit2, same process.

    python -m bench.bench_transitions [--sizes 1000,100000] [--per-round 200] [--rounds 5] [--profile]

Each transition is one hold or unhold of a built build, one commit each, as a
maintainer makes them. Three series run interleaved, round by round, each on
its own copy of the same fixture:

- sluice: `Queue.perform(Action(hold|unhold, id))`: snapshot, resolve, fold,
  policy check, event, commit message, `GitStateStore.update` (blob, nested
  trees, commit, compare-and-swap) and the folded view it returns;
- store only: `GitStateStore.update` with a prepared change (no fold, no
  check): what the service layer adds is the difference to this line;
- raw pygit2 (the peer): create the blob, rebuild events/, the build dir, the
  shard, builds/ and the root with TreeBuilder, create the commit and
  compare-and-swap the ref with `Reference.set_target`.

Target: sluice >= 0.8 of raw and >= 500 transitions/s.
"""
from __future__ import annotations

import argparse
import shutil
import time

import pygit2

from app.actions import Action
from app.index import Index
from app.model import Event, Op, State, timestamp
from app.queue import Queue
from backends.base import Change
from backends.gitstore import STATE_REF, GitStateStore
from bench import fixture
from bench.common import (ALICE, built_builds, fixture_with_index, header, isolate, median, profile,
                          scratch_dir, spread)

TARGET_RATIO, TARGET_RATE = 0.8, 500
REASON = "waiting for libcdio to build"
BLOB, TREE = pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.TREE


def prepared(ids: list[str], replica: str, lamport0: int = 1000) -> list[tuple[str, str, bytes, str]]:
    """(build id, event id, body, message) for hold/unhold writes that skip
    sluice's service layer (the store-only and raw series)."""
    out = []
    for n, build_id in enumerate(ids):
        hold = n % 2 == 0
        event = Event(Op.HOLD if hold else Op.UNHOLD, State.BUILT if hold else State.HELD,
                      State.HELD if hold else State.BUILT, ALICE.email, replica, lamport0 + n,
                      (f"{lamport0 + n - 1:08d}-{replica}-0badc0de",), timestamp(), REASON if hold else "")
        event_id, body = event.encode()
        message = (f"{event.op} bench ({build_id[:7]}): {event.src} -> {event.dst}\n\n"
                   f"Sluice-Build: {build_id}\nSluice-Op: {event.op}\nSluice-Actor: {ALICE.email}\n")
        out.append((build_id, event_id, body, message))
    return out


def sluice_series(queue: Queue, ids: list[str]) -> float:
    start = time.perf_counter()
    for build_id in ids:
        queue.perform(Action(Op.HOLD, build_id, REASON))
    for build_id in ids:
        queue.perform(Action(Op.UNHOLD, build_id))
    return 2 * len(ids) / (time.perf_counter() - start)


def store_series(store: GitStateStore, writes: list[tuple[str, str, bytes, str]]) -> float:
    start = time.perf_counter()
    for build_id, event_id, body, message in writes:
        change = Change({f"builds/{build_id[:2]}/{build_id}/events/{event_id}.json": body}, message, ALICE)
        store.update(lambda snap, change=change: change)
    return len(writes) / (time.perf_counter() - start)


def raw_write(repo: pygit2.Repository, build_id: str, event_id: str, body: bytes, message: str) -> None:
    ref = repo.references.get(STATE_REF)
    parent = ref.target
    root = repo[parent].tree
    shard_name = build_id[:2]
    builds_tree = root["builds"]
    shard = builds_tree[shard_name]
    build = shard[build_id]
    events = build["events"]
    blob = repo.create_blob(body)
    tb = repo.TreeBuilder(events)
    tb.insert(f"{event_id}.json", blob, BLOB)
    new = tb.write()
    for tree, name in ((build, "events"), (shard, build_id), (builds_tree, shard_name), (root, "builds")):
        tb = repo.TreeBuilder(tree)
        tb.insert(name, new, TREE)
        new = tb.write()
    now = int(time.time())
    author = pygit2.Signature(ALICE.name, ALICE.email, now, 0)
    committer = pygit2.Signature("sluice replica raw", "raw@replica.sluice.invalid", now, 0)
    commit = repo.create_commit(None, author, committer, message, new, [parent])
    ref.set_target(commit, "raw")  # compare-and-swap: refuses when the ref moved


def raw_series(repo: pygit2.Repository, writes: list[tuple[str, str, bytes, str]]) -> float:
    start = time.perf_counter()
    for write in writes:
        raw_write(repo, *write)
    return len(writes) / (time.perf_counter() - start)


def bench_size(builds: int, per_round: int, rounds: int, do_profile: bool) -> dict:
    path, report, rebuild = fixture_with_index(builds, 5)
    if report:
        print(f"   generated the {builds}-build fixture in {report['seconds']:.1f}s")
    if rebuild is not None:
        print(f"   warmed its index (full rebuild) in {rebuild:.1f}s")
    ids = built_builds(path)
    half = per_round // 2
    if len(ids) < half:
        raise SystemExit(f"the fixture has only {len(ids)} built builds; lower --per-round")
    work = scratch_dir(f"transitions-{builds}")
    copies = {name: fixture.working_copy(path, work / f"{name}.git") for name in ("sluice", "store", "raw")}
    stores = {name: GitStateStore.open(str(p)) for name, p in copies.items()}
    queue = Queue(stores["sluice"], ALICE, Index(stores["sluice"]))
    raw_repo = pygit2.Repository(str(copies["raw"]))
    rates: dict[str, list[float]] = {"sluice": [], "store": [], "raw": []}
    series = ("sluice", "store", "raw")
    for r in range(rounds):
        chosen = [ids[(r * half + i) % len(ids)] for i in range(half)]
        writes = prepared([b for b in chosen for _ in (0, 1)], stores["store"].replica, 1000 + r * per_round)
        for name in series[r % 3:] + series[:r % 3]:  # rotate the order: no series always goes first
            if name == "sluice":
                rates[name].append(sluice_series(queue, chosen))
            elif name == "store":
                rates[name].append(store_series(stores["store"], writes))
            else:
                rates[name].append(raw_series(raw_repo, writes))
    ratios = [s / r for s, r in zip(rates["sluice"], rates["raw"])]
    sluice, raw = median(rates["sluice"]), median(rates["raw"])
    ok = median(ratios) >= TARGET_RATIO and sluice >= TARGET_RATE
    print(f"-- {builds:,} builds / {builds * 5:,} events; hold+unhold on {half} built builds per round, "
          f"{rounds} rounds of {2 * half} commits")
    print(f"   sluice Queue.perform    {sluice:8.0f}/s   {1000 / sluice:.2f} ms each   "
          f"rounds {spread(rates['sluice'], '/s', digits=0)}")
    print(f"   store only (update)     {median(rates['store']):8.0f}/s   {1000 / median(rates['store']):.2f} ms each")
    print(f"   raw pygit2 (peer)       {raw:8.0f}/s   {1000 / raw:.2f} ms each   "
          f"rounds {spread(rates['raw'], '/s', digits=0)}")
    print(f"   ratio sluice/raw        {median(ratios):8.2f}    (per-round median; "
          f"store/raw {median(rates['store']) / raw:.2f})")
    print(f"   target: >= {TARGET_RATIO} of raw and >= {TARGET_RATE}/s -> {'met' if ok else 'NOT met'}")
    if do_profile:
        chosen = [ids[(rounds * half + i) % len(ids)] for i in range(half)]
        print(f"   profile of one sluice round ({2 * half} transitions), by own time:")
        print(_indent(profile(lambda: sluice_series(queue, chosen), 22, "tottime")))
        print("   ... and by cumulative time:")
        print(_indent(profile(lambda: sluice_series(queue, chosen), 30, "cumulative")))
    shutil.rmtree(work)
    return {"builds": builds, "sluice": sluice, "raw": raw, "store": median(rates["store"]),
            "ratio": median(ratios), "met": ok}


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.strip().splitlines()[3:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_transitions", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,100000", help="fixture sizes in builds, comma-separated")
    p.add_argument("--per-round", type=int, default=200, help="transitions per round and series")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="cProfile one more sluice round")
    args = p.parse_args(argv)
    isolate()
    header("1. transitions/s: Queue.perform vs raw pygit2")
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.per_round, args.rounds, args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
