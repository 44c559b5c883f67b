"""5. The cockpit on 100k builds: first paint, filter keystrokes, a 200k-line log.

    python -m bench.bench_tui [--builds 100000] [--reps 5] [--log-lines 200000] [--skip-peer] [--skip-tmux]

Figures (medians of --reps runs; headless Textual at 80x24 unless said):

- first paint: from creating the app to the first screenful of the queue on
  screen (the newest 200 rows and the count), and to every row loaded; the
  index is warm, as after any earlier command. Also the real `sluice` in
  tmux: from starting the process to "of 100,000 builds" on the terminal
  (Python and Textual imports included). Peer: Textual's DataTable filled
  with the same 100,000 rows (add_rows), which is what a non-virtual table
  costs. Target: < 1 s.
- filter keystroke: typing "bob held" letter by letter into the filter box;
  each keystroke from setting the box's value to the table re-rendered.
  Also the in-memory filter alone (`Query.select`), and the peer: the same
  filter as the CLI asks it, one SQLite query (`Index.rows(Filters(owner,
  states))`). Target: < 50 ms.
- log: a 200,000-line build log streamed into the log screen (read in a
  worker, written in ~50 ms batches with `Log.write_lines`) until the last
  line is in. Peer: the same lines given to one `Log.write_lines` call.
  Target: < 2 s.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time

from app.index import Filters, Index
from app.listing import Query
from bench.common import SLUICE, clean_env, fixture_with_index, header, isolate, median, spread
from bench.fixture import ALICE, BOB
from backends.gitstore import GitStateStore

TARGET_PAINT, TARGET_KEY, TARGET_LOG = 1.0, 0.050, 2.0


def services(path: str):
    from app.queue import Queue
    from screens.services import Services
    store = GitStateStore.open(path)
    index = Index(store)
    return Services(store, index, Queue(store, ALICE, index), ALICE, path)


async def _until(pilot, test, timeout: float = 60.0) -> float:
    """The moment `test()` first held (checked every 2 ms on the UI's loop)."""
    start = time.perf_counter()
    while not test():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the cockpit never got there")
        await asyncio.sleep(0.002)
    return time.perf_counter()


def first_paint(path: str) -> tuple[float, float]:
    """Seconds to the first screenful, and to every row."""
    from screens.app import SluiceApp
    from screens.queue import QueueTable
    start = time.perf_counter()
    app = SluiceApp(services(path), poll_every=None)
    marks: list[float] = []

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            table = lambda: app.screen.query(QueueTable)  # noqa: E731
            # the rows are on the table, and the table has drawn since
            marks.append(await _until(pilot, lambda: table() and len(table().first().rows) > 0))
            await pilot.pause()
            marks.append(await _until(pilot, lambda: len(app.rows) == app.total and app.total > 0))
    asyncio.run(run())
    return marks[0] - start, marks[1] - start


def keystrokes(path: str, text: str) -> tuple[list[float], list[float]]:
    """Seconds per keystroke of `text` typed into the filter box: the work
    (filter, table update, the screenful's lines drawn), and the round trip
    through Textual's message loop until it is idle again (an upper bound:
    it includes Textual's own wait for idle)."""
    from screens.app import SluiceApp
    from screens.queue import QueueScreen, QueueTable
    app = SluiceApp(services(path), poll_every=None)
    work: list[float] = []
    trip: list[float] = []

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await _until(pilot, lambda: len(app.rows) == app.total and app.total > 0)
            screen = app.screen
            assert isinstance(screen, QueueScreen)
            await pilot.press("slash")
            box = screen.query_one("#filter")
            table = screen.query_one(QueueTable)
            for n in range(1, len(text) + 1):
                start = time.perf_counter()
                screen.query_ = Query(text[:n])
                screen._apply()
                for y in range(table.size.height):
                    table.render_line(y)
                work.append(time.perf_counter() - start)
                await pilot.pause()
            box.value = ""
            await pilot.pause()
            for n in range(1, len(text) + 1):
                start = time.perf_counter()
                box.value = text[:n]
                await pilot.pause()
                trip.append(time.perf_counter() - start)
    asyncio.run(run())
    return work, trip


def datatable_peer(path: str) -> float:
    """Seconds for DataTable to take the same rows (the non-virtual way)."""
    from textual.app import App
    from textual.widgets import DataTable
    from app import listing
    index = Index(GitStateStore.open(path))
    index.refresh()
    rows = [(r.id[:7], r.nvr, r.owner, r.target, r.state, r.created) for r in listing.load(index)]

    class Peer(App):
        def compose(self):
            yield DataTable()
    app = Peer()
    took: list[float] = []

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.query_one(DataTable)
            table.add_columns("ID", "NVR", "OWNER", "TARGET", "STATE", "CREATED")
            start = time.perf_counter()
            table.add_rows(rows)
            await pilot.pause()
            took.append(time.perf_counter() - start)
    asyncio.run(run())
    return took[0]


def tmux_paint(path: str, env: dict, total: int) -> float | None:
    """Seconds from starting the real `sluice` in tmux to the queue on screen."""
    if shutil.which("tmux") is None:
        return None
    socket = f"sluice-bench-{os.getpid()}"
    expect = f"of {total:,} builds"
    command = " ".join(f"{k}={v}" for k, v in env.items() if k.startswith(("SLUICE_", "XDG_", "GIT_CONFIG",
                                                                            "PYTHONPYCACHE")) or k == "HOME")
    try:
        start = time.perf_counter()
        subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "b", "-x", "80", "-y", "24",
                        f"env {command} {SLUICE} --repo {path} tui"], check=True)
        while time.perf_counter() - start < 30:
            shown = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p", "-t", "b"],
                                   capture_output=True, text=True).stdout
            if expect in shown:
                return time.perf_counter() - start
            time.sleep(0.01)
        return None
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def log_stream(lines: int) -> tuple[float, float]:
    """Seconds for the log screen to stream `lines` lines, and for one
    `write_lines` call (the peer)."""
    from textual.widgets import Log
    from app.tasklog import LogRef
    from screens.app import SluiceApp
    from screens.logs import LogScreen
    folder = tempfile.mkdtemp(prefix="sluice-bench-log-")
    log_path = os.path.join(folder, "build.log")
    with open(log_path, "w") as f:
        for n in range(lines):
            f.write(f"+ gcc -O2 -g -pipe -Wall -c src/file{n % 977}.c -o obj/file{n % 977}.o  # {n}\n")
    text = open(log_path).read().splitlines()
    store_path = tempfile.mkdtemp(prefix="sluice-bench-repo-")
    from backends.gitstore import GitStateStore as Store
    from app.admin import Admin
    store = Store.open(store_path, create=True)
    Admin(store, ALICE).init("x86_64")
    app = SluiceApp(services(store_path), poll_every=None)
    result: list[float] = []

    async def run() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            start = time.perf_counter()
            screen = LogScreen({"id": "ab" * 20, "tasks": [{"arch": "x86_64"}]},
                               LogRef("ab" * 20, "x86_64", "build", log_path, live=False))
            app.push_screen(screen)
            result.append(await _until(pilot, lambda: screen.done and screen.lines_read == lines) - start)
            log = screen.query_one(Log)
            log.clear()
            await pilot.pause()
            start = time.perf_counter()
            log.write_lines(text)
            await pilot.pause()
            result.append(time.perf_counter() - start)
    asyncio.run(run())
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(store_path, ignore_errors=True)
    return result[0], result[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_tui", description=__doc__.split("\n\n")[0])
    p.add_argument("--builds", type=int, default=100_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--log-lines", type=int, default=200_000)
    p.add_argument("--skip-peer", action="store_true", help="skip the DataTable peer (~15 s)")
    p.add_argument("--skip-tmux", action="store_true", help="skip the real process in tmux")
    args = p.parse_args(argv)
    home = isolate()
    env = clean_env(home)
    header(f"5. the cockpit on {args.builds:,} builds")
    path, report, rebuild = fixture_with_index(args.builds, 5)
    if rebuild is not None:
        print(f"   warmed its index in {rebuild:.1f}s")
    repo = str(path)

    import screens.app  # noqa: F401  (imported once, as a running sluice has it; the tmux figure pays it)
    paints = [first_paint(repo) for _ in range(args.reps)]
    print(f"   first paint (headless, in-process): {spread([a for a, _ in paints])}; every row loaded: "
          f"{spread([b for _, b in paints])}; target < {TARGET_PAINT:.0f} s", flush=True)
    if not args.skip_tmux:
        real = [t for t in (tmux_paint(repo, env, args.builds) for _ in range(args.reps)) if t is not None]
        if real:
            print(f"   first paint, real `sluice tui` in tmux 80x24 (process start to the count on screen): "
                  f"{spread(real)}", flush=True)
    if not args.skip_peer:
        print(f"   peer: DataTable.add_rows of the same {args.builds:,} rows: {datatable_peer(repo):.2f}s",
              flush=True)

    typed = "bob held"
    keys = [keystrokes(repo, typed) for _ in range(args.reps)]
    for label, which in (("filter + table updated + screenful drawn", 0),
                         ("round trip through Textual's loop (box value set -> idle again)", 1)):
        per_key = [median([run[which][n] for run in keys]) for n in range(len(typed))]
        shown = ", ".join(f"{typed[:n + 1]!r} {per_key[n] * 1000:.0f}" for n in range(len(typed)))
        print(f"   keystroke, {label} (ms, median per key): {shown}; worst {max(per_key) * 1000:.0f} ms")
    print(f"   target < {TARGET_KEY * 1000:.0f} ms per keystroke", flush=True)
    from app import listing
    index = Index(GitStateStore.open(repo))
    index.refresh()
    rows = listing.load(index)
    query = Query("", BOB.email, ("held",))
    memory = []
    for _ in range(args.reps * 4):
        start = time.perf_counter()
        query.select(rows)
        memory.append(time.perf_counter() - start)
    sql = []
    for _ in range(args.reps * 4):
        start = time.perf_counter()
        index.rows(Filters(states=("held",), owner=BOB.email))
        sql.append(time.perf_counter() - start)
    print(f"   owner:bob state:held in memory (Query.select): {spread(memory, 'ms', 1000, 1)}; "
          f"peer, the CLI's SQLite query (Index.rows): {spread(sql, 'ms', 1000, 1)}", flush=True)

    streamed = [log_stream(args.log_lines) for _ in range(max(1, args.reps // 2))]
    print(f"   {args.log_lines:,}-line log streamed into the log screen: {spread([s for s, _ in streamed])}; "
          f"peer, one Log.write_lines call: {spread([w for _, w in streamed])}; target < {TARGET_LOG:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
