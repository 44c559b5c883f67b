"""5. Per-task dispatch overhead on SSH builders, against OpenSSH.

    python -m bench.bench_dispatch [--calls 200] [--tasks 30] [--quick] [--profile]

One real sshd builder host on 127.0.0.2 with the mock test double on its PATH
(as in tests/test_runner_ssh.py). Series:

(a) `SshTransport.run(["true"])` on one warm paramiko connection, per call;
(b) the peer: `ssh -F /dev/null ... host true`, a new OpenSSH connection per
    call, as a naive runner does (`SshHost.argv` from tests/sshd.py); and,
    for scale, the same over an OpenSSH ControlMaster (a warm connection),
    and (a) with TCP_NODELAY cleared on the socket, as sluice was before
    fd36056 (a diagnosis patched in here). All run interleaved, a few
    paramiko calls per ssh call;
(c) the runner's whole per-task overhead: `sluice run --once` (a whole
    process) builds N tiny SRPMs on the host with one slot, one after the
    other. The tool (the mock double) is timed on the host by a wrapper, so
    the overhead is (wall - sum of tool times) / N, and the steady-state
    gap between one build's tool ending and the next one's starting. The
    same is run in-process with every step timed, to say what the gap is
    made of (and once more with TCP_NODELAY cleared, for the before/after);
    its peer is the same tasks through a naive OpenSSH runner (mkdir, scp
    up, mock, list, scp down, rm: a connection per step).

Target: (a) per call <= (b) per call; sluice's per-task overhead <= the
naive OpenSSH runner's.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.bench_farm import Farm, make_srpms, naive_task, run_once
from bench.common import header, isolate, median, profile
from backends.transport_ssh import SshTransport


@contextlib.contextmanager
def nagle():
    """DIAGNOSIS ONLY, not sluice's code: SshTransport with TCP_NODELAY cleared
    on its socket, as it was before fd36056, to show what Nagle + delayed ACK
    cost each round trip."""
    original = SshTransport._socket

    def patched(self):
        sock = original(self)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        return sock
    SshTransport._socket = patched
    try:
        yield
    finally:
        SshTransport._socket = original


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else values[0]


def figure(values: list[float]) -> str:
    return f"median {1000 * median(values):7.2f} ms   p90 {1000 * p90(values):7.2f} ms   n={len(values)}"


# ------------------------------------------------------------ (a) and (b)

def round_trips(farm: Farm, calls: int, per_ssh: int) -> dict[str, list[float]]:
    h = farm.servers["b2"].host
    transport = SshTransport(h.host, h.port, h.user, str(h.key), str(h.known_hosts))
    with nagle():
        slow = SshTransport(h.host, h.port, h.user, str(h.key), str(h.known_hosts))
        slow.run(["true"])
    master = ["-o", "ControlMaster=auto", "-o", f"ControlPath={farm.work}/cm", "-o", "ControlPersist=120"]
    plain, muxed = h.argv("true"), h.argv("true")
    muxed[1:1] = master
    found: dict[str, list[float]] = defaultdict(list)
    try:
        for _ in range(5):  # warm: connection, channel machinery, the master
            transport.run(["true"])
            slow.run(["true"])
        subprocess.run(muxed, check=True)
        while len(found["paramiko"]) < calls:
            for _ in range(per_ssh):
                start = time.perf_counter()
                if transport.run(["true"]).status != 0:
                    raise RuntimeError("true failed on the host")
                found["paramiko"].append(time.perf_counter() - start)
                start = time.perf_counter()
                slow.run(["true"])
                found["nagle"].append(time.perf_counter() - start)
            for name, argv in (("ssh", plain), ("ssh-mux", muxed)):
                start = time.perf_counter()
                subprocess.run(argv, check=True)
                found[name].append(time.perf_counter() - start)
    finally:
        transport.close()
        slow.close()
        subprocess.run([*muxed[:-3], "-O", "exit", *muxed[-3:-2]], capture_output=True)
    return found


# ------------------------------------------------------------ (c), timed step by step

class Spans:
    """Wall-clock spans of named calls, by thread, patched onto classes."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, attr: str, label) -> None:
        original = getattr(owner, attr)
        spans = self.spans

        def timed(*args, **kwargs):
            start = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                name = label(*args, **kwargs) if callable(label) else label
                who = "main" if threading.current_thread() is threading.main_thread() else "worker"
                spans.append((f"{who}: {name}", start, time.time()))
        self.undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def restore(self) -> None:
        for owner, attr, original in reversed(self.undo):
            setattr(owner, attr, original)


def _command(self, argv, *rest, **kw) -> str:
    if argv[0] == "sh" and len(argv) > 2 and "mkdir" in argv[2]:
        what = "rm -rf + mkdir -p of the task folder"
    elif argv[0] == "sh" and len(argv) > 2 and "sha256sum" in argv[2]:
        what = "results listing (sha256sum)"
    elif argv[0] == "rm":
        what = "rm -rf of the task folder (clean-up)"
    else:
        what = " ".join(argv[:2])
    return f"ssh run: {what}"


def instrumented(farm: Farm) -> tuple[float, Spans]:
    from app import attempt, runner
    from app.buildroot import Buildroots
    from app.cli import main
    from app.index import Index
    from app.queue import Queue
    from backends.artifacts import FileArtifactStore
    from backends.srpm import RpmReader
    spans = Spans()
    spans.wrap(Queue, "record", lambda self, build, op, **kw: f"event `{op}` (git commit)")
    spans.wrap(runner.Runner, "_catch_up", "tick: catch up")
    spans.wrap(Index, "refresh", "  index refresh")
    spans.wrap(Buildroots, "publish", "  buildroot publish (createrepo_c)")
    spans.wrap(runner.Runner, "_dispatch", "tick: dispatch (scan queue, claim)")
    spans.wrap(runner.Runner, "_finish_done", "tick: finish (event)")
    spans.wrap(runner.Runner, "_write_status", "tick: status file")
    spans.wrap(SshTransport, "forward", "forward (cached)")
    spans.wrap(SshTransport, "run", _command)
    spans.wrap(SshTransport, "put", "sftp put SRPM")
    spans.wrap(SshTransport, "start", "start (exec, until the pgid line)")
    spans.wrap(SshTransport, "get", "  sftp get")
    spans.wrap(attempt, "collect", "collect (list, get, verify, store)")
    spans.wrap(attempt, "sha256_file", "  hash the downloaded result")
    spans.wrap(RpmReader, "read_binary", "  rpm header check")
    spans.wrap(FileArtifactStore, "put", "artifact store put (copy, hash)")
    spans.wrap(attempt, "_build", "build (upload, start, stream, exit)")
    err = io.StringIO()
    try:
        start = time.perf_counter()
        with contextlib.redirect_stderr(err):
            code = main(["--repo", farm.repo, "run", "--once"])
        wall = time.perf_counter() - start
    finally:
        spans.restore()
    if code != 0:
        raise RuntimeError(f"sluice run --once (in-process) exited {code}: {err.getvalue()[-2000:]}")
    return wall, spans


def gaps(times: list[tuple[float, float, int]]) -> list[tuple[float, float]]:
    """(end of build i's tool, start of build i+1's tool)."""
    return [(a[1], b[0]) for a, b in zip(times, times[1:])]


def in_gaps(spans: Spans, holes: list[tuple[float, float]]) -> tuple[dict[str, float], float]:
    """Seconds of each label inside the gaps, and of the gaps no span covers."""
    per: dict[str, float] = defaultdict(float)
    uncovered = 0.0
    for lo, hi in holes:
        cuts = []
        for name, s, e in spans.spans:
            a, b = max(s, lo), min(e, hi)
            if b > a:
                per[name] += b - a
                cuts.append((a, b))
        covered, edge = 0.0, lo
        for a, b in sorted(cuts):
            if b > edge:
                covered += b - max(a, edge)
                edge = b
        uncovered += (hi - lo) - covered
    return per, uncovered


def task_series(farm: Farm, tasks: int, do_profile: bool) -> None:
    srpms = make_srpms(farm.work / "srpms", "cli", tasks, "true")
    farm.submit(srpms)
    farm.reset_times()
    began = time.time()
    wall, cpu, notes = run_once(farm)
    times = farm.tool_times()
    if len(times) != tasks or any(status != 0 for *_, status in times):
        raise RuntimeError(f"{len(times)} of {tasks} builds ran: {notes[-2000:]}")
    tool = sum(e - s for s, e, _ in times)
    holes = [b - a for a, b in gaps(times)]
    print(f"-- (c) {tasks} tiny builds (%build: true), 1 host, 1 slot, one after the other")
    print(f"   sluice run --once (process)   wall {wall:6.2f} s   tool on the host {tool:6.2f} s "
          f"(each {1000 * median([e - s for s, e, _ in times]):.0f} ms)   runner CPU {cpu:.2f} s")
    print(f"     overhead, all in            {1000 * (wall - tool) / tasks:7.0f} ms per task "
          f"(incl. start-up, connect and exit, once per run)")
    print(f"     once per run                start to first tool start {times[0][0] - began:.2f} s, "
          f"last tool end to exit {began + wall - times[-1][1]:.2f} s")
    print(f"     gap tool end -> next start  {figure(holes)}")

    srpms = make_srpms(farm.work / "srpms", "inproc", tasks, "true")
    farm.submit(srpms)
    farm.reset_times()
    wall, spans = instrumented(farm)
    times = farm.tool_times()
    holes_at = gaps(times)
    holes = [b - a for a, b in holes_at]
    tool = sum(e - s for s, e, _ in times)
    per, uncovered = in_gaps(spans, holes_at)
    n = len(holes_at)
    print(f"   in-process, every step timed  wall {wall:6.2f} s   tool {tool:6.2f} s   "
          f"gap {figure(holes)}")
    print(f"     what the {n} gaps hold, ms per task (indented: inside the line above; threads overlap):")
    for name, seconds in sorted(per.items(), key=lambda kv: kv[0]):
        print(f"       {name:52s} {1000 * seconds / n:7.1f}")
    print(f"       {'(in no timed step: waits, wake-ups, thread hand-off)':52s} {1000 * uncovered / n:7.1f}")

    srpms = make_srpms(farm.work / "srpms", "nagle", tasks, "true")
    farm.submit(srpms)
    farm.reset_times()
    with nagle():
        wall, spans = instrumented(farm)
    times = farm.tool_times()
    per, uncovered = in_gaps(spans, gaps(times))
    n = len(times) - 1
    holes = [b - a for a, b in gaps(times)]
    print(f"   the same, TCP_NODELAY cleared wall {wall:6.2f} s   gap {figure(holes)}   (as before fd36056; diagnosis)")
    print("     " + ", ".join(f"{name.split(': ', 1)[1].strip()} {1000 * per[name] / n:.0f}"
                              for name in sorted(per) if name.startswith("worker") and per[name] / n > 0.002))

    srpms = make_srpms(farm.work / "srpms", "peer", tasks, "true")
    farm.reset_times()
    server = farm.servers["b2"]
    walls = []
    for n, srpm in enumerate(srpms):
        start = time.perf_counter()
        naive_task(server, srpm, f"{farm.work}/hosts/peer/{n}", farm.work / "peer-results" / str(n))
        walls.append(time.perf_counter() - start)
    times = farm.tool_times()
    over = [w - (e - s) for w, (s, e, _) in zip(walls, times)]
    print(f"   naive OpenSSH runner (peer)   wall {sum(walls):6.2f} s   tool {sum(e - s for s, e, _ in times):6.2f} s")
    print(f"     overhead per task           {figure(over)}   (6 connections, no state, no checks)")
    if do_profile:
        srpms = make_srpms(farm.work / "srpms", "prof", max(3, tasks // 3), "true")
        farm.submit(srpms)
        print("   cProfile of an in-process run (main thread only), by cumulative time:")
        out = profile(lambda: instrumented(farm), 30, "cumulative")
        print("\n".join("      " + line for line in out.strip().splitlines()[3:]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_dispatch", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200, help="paramiko round trips (ssh: a fifth of that)")
    p.add_argument("--tasks", type=int, default=30, help="tiny builds per series in (c)")
    p.add_argument("--quick", action="store_true", help="50 calls, 4 tasks")
    p.add_argument("--profile", action="store_true", help="cProfile one more in-process run")
    args = p.parse_args(argv)
    if args.quick:
        args.calls, args.tasks = 50, 4
    home = isolate()
    header("5. per-task dispatch overhead: paramiko and the runner vs OpenSSH")
    work = Path(home) / "dispatch"
    work.mkdir()
    farm = Farm.start(work, {"b2": "127.0.0.2"}, slots=1)
    try:
        found = round_trips(farm, args.calls, 5)
        a, b, mux = median(found["paramiko"]), median(found["ssh"]), median(found["ssh-mux"])
        print("-- (a)/(b) one command (`true`) on the host, interleaved, 5 paramiko calls per ssh call")
        print(f"   (a) SshTransport.run, warm connection   {figure(found['paramiko'])}")
        print(f"   (b) ssh host true, new connection (peer) {figure(found['ssh'])}")
        print(f"       ssh host true over a ControlMaster   {figure(found['ssh-mux'])}")
        print(f"       (a), TCP_NODELAY cleared (before)    {figure(found['nagle'])}")
        print(f"   ratio (a)/(b) {a / b:.3f}; (a)/ControlMaster {a / mux:.2f}; "
              f"target (a) <= (b) -> {'met' if a <= b else 'NOT met'}")
        task_series(farm, args.tasks, args.profile)
    finally:
        farm.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
