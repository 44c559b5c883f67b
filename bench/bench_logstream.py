"""7. Live log streaming: lines/s from a remote build into `sluice log --follow`.

    python -m bench.bench_logstream [--lines 200000,2000000] [--rounds 5] [--quick]

One real sshd builder host on 127.0.0.2 with the mock test double (as in
tests/test_runner_ssh.py). The build's %build sleeps 3 s (so that the
follower is attached before anything is printed), prints a start line with
the host's clock, `yes LINE | head -n N`, and an end line with the clock.
`sluice run --once` runs in the background; once the task has an attempt,
`sluice log ID --follow` starts as a process whose stdout this benchmark
reads, timing every chunk. Figures:

- lines/s seen by the follower, from the host printing the first line to
  the follower showing the last (the headline), and between the first and
  last line it showed;
- how fast the build tool itself emitted them on the host (start and end
  lines), and how long after the last line the follower exits (it stops
  once the attempt's `finish` event is written).

Peer, same run, interleaved round by round: the same lines (start line,
`yes | head -n N`) through a plain `ssh host '...'` pipe, read the same way.
Two sizes by default: 200,000 lines (4.4 MB) take the host a few tens of
milliseconds to print, so that figure is mostly latency (the follower polls
the live file every 0.2 s); 2,000,000 lines (44 MB) show the sustained rate.
No target was set; the peer is the ceiling.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.bench_farm import Farm, make_srpms
from bench.common import SLUICE, header, isolate, median

LINE = b"sluice-bench-log-line"
SCRIPT = 'echo "bench-t0 $(date +%s.%N)"; yes {line} | head -n {n}; echo "bench-t1 $(date +%s.%N)"'


class Reader:
    """Counts LINE lines in a stream, with the time of the first and last."""

    def __init__(self) -> None:
        self.count, self.first, self.last, self.carry = 0, 0.0, 0.0, b""
        self.clocks: dict[bytes, float] = {}

    def feed(self, chunk: bytes, now: float) -> None:
        lines = (self.carry + chunk).split(b"\n")
        self.carry = lines.pop()
        found = lines.count(LINE)
        if found:
            self.first = self.first or now
            self.last = now
            self.count += found
        for line in lines:
            if line.startswith((b"bench-t0 ", b"bench-t1 ")):
                self.clocks[line[:8]] = float(line.split()[1])

    def drain(self, proc: subprocess.Popen) -> float:
        """Read `proc`'s stdout to its end; the time of the end."""
        fd = proc.stdout.fileno()
        while chunk := os.read(fd, 1 << 16):
            self.feed(chunk, time.time())
        return time.time()


def task_started(farm: Farm, build_id: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = json.loads(farm.sluice("--json", "show", build_id))
        if any(t["attempts"] for t in shown["tasks"]):
            return
        time.sleep(0.1)
    raise RuntimeError(f"build {build_id[:7]} did not start within {seconds:g} s")


def sluice_round(farm: Farm, lines: int, n: str) -> dict:
    build = SCRIPT.format(line=LINE.decode(), n=lines).replace("%", "%%")
    (build_id,) = farm.submit(make_srpms(farm.work / "srpms", f"log{n.replace('-', 'r')}x", 1, f"sleep 3; {build}"))
    runner = subprocess.Popen([SLUICE, "--repo", farm.repo, "run", "--once"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=farm.env)
    follower = None
    try:
        task_started(farm, build_id)
        reader = Reader()
        follower = subprocess.Popen([SLUICE, "--repo", farm.repo, "log", build_id, "--follow"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=farm.env)
        attached = time.time()
        ended = reader.drain(follower)
        follower.wait(timeout=60)
        runner.wait(timeout=120)
    finally:
        for proc in (follower, runner):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        err = runner.stderr.read().decode(errors="replace")
        runner.stderr.close()
    if reader.count != lines:
        raise RuntimeError(f"the follower showed {reader.count} of {lines} lines; runner said: {err[-2000:]}")
    t0, t1 = reader.clocks[b"bench-t0"], reader.clocks[b"bench-t1"]
    if attached > t0:
        print(f"   note: the follower started {attached - t0:.2f} s after the first line was printed")
    return {"e2e": lines / (reader.last - t0), "shown": lines / (reader.last - reader.first),
            "host": lines / (t1 - t0), "lag": reader.last - t1, "exit": ended - reader.last}


def ssh_round(farm: Farm, lines: int) -> dict:
    h = farm.servers["b2"].host
    reader = Reader()
    argv = [*h.argv("sh", "-c", SCRIPT.format(line=LINE.decode(), n=lines))]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        ended = reader.drain(proc)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if reader.count != lines:
        raise RuntimeError(f"ssh showed {reader.count} of {lines} lines")
    t0, t1 = reader.clocks[b"bench-t0"], reader.clocks[b"bench-t1"]
    return {"e2e": lines / (reader.last - t0), "shown": lines / max(reader.last - reader.first, 1e-6),
            "host": lines / (t1 - t0), "lag": reader.last - t1, "exit": ended - reader.last}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_logstream", description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", default="200000,2000000", help="lines per build, comma-separated sizes")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="20,000 lines, one round")
    args = p.parse_args(argv)
    if args.quick:
        args.lines, args.rounds = "20000", 1
    home = isolate()
    header("7. live log streaming: remote build -> sluice log --follow, vs an ssh pipe")
    work = Path(home) / "logstream"
    work.mkdir()
    farm = Farm.start(work, {"b2": "127.0.0.2"}, slots=1)
    try:
        for lines in (int(n) for n in args.lines.split(",")):
            series: dict[str, list[dict]] = {"sluice": [], "ssh": []}
            for n in range(args.rounds):
                order = ("sluice", "ssh") if n % 2 == 0 else ("ssh", "sluice")
                for name in order:
                    series[name].append(sluice_round(farm, lines, f"{lines}-{n}") if name == "sluice"
                                        else ssh_round(farm, lines))
            report(series, lines, args.rounds)
    finally:
        farm.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


def report(series: dict[str, list[dict]], lines: int, rounds: int) -> None:
    def m(name: str, key: str) -> float:
        return median([r[key] for r in series[name]])

    print(f"-- {lines:,} lines of {len(LINE) + 1} bytes printed by the build, {rounds} round(s), medians")
    for name, label in (("sluice", "sluice log --follow"), ("ssh", "ssh host pipe (peer)")):
        e2e = [r["e2e"] for r in series[name]]
        print(f"   {label:22s} {m(name, 'e2e'):10,.0f} lines/s host first line -> last line shown "
              f"(min {min(e2e):,.0f}, max {max(e2e):,.0f}; {m(name, 'shown'):,.0f}/s first to last shown)")
        print(f"   {'':22s} the tool wrote them at {m(name, 'host'):,.0f} lines/s (into pipe buffers); last line "
              f"shown {1000 * m(name, 'lag'):.0f} ms after it was written; exit {1000 * m(name, 'exit'):.0f} ms later")
    print(f"   ratio sluice/ssh       {m('sluice', 'e2e') / m('ssh', 'e2e'):.2f} (host first line -> last shown)")


if __name__ == "__main__":
    raise SystemExit(main())
