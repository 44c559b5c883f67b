"""7b. A 1 GB build log: throughput and peak memory of the runner and of
`sluice log --follow`, against `cat` of the same log through a pipe.

    python -m bench.bench_biglog [--size 1G] [--quick]

The embedded local builder (rpmbuild, no SSH) builds one package whose
%build sleeps 2 s (so the follower is attached first) and prints SIZE bytes
(`yes LINE | head -c SIZE`). `sluice run --once` runs in the background and
appends the output to the live log, then moves it into the artifact store;
`sluice log ID --follow` starts as soon as the task has an attempt and is
read to its end by this benchmark. The peak RSS (VmHWM in /proc) of the
runner and of the follower is sampled all along: at 10% of the log and at
its end. If either held the log, or a growing part of it, in memory, the
end figure would grow with SIZE; flat means the same at 10% and 100%.

Peers, same run, read the same way (with their own peak RSS): the same
`rpmbuild --rebuild` printing into a plain pipe (the ceiling of the live
path: rpmbuild forwards the script's output line by line), `cat` of the
stored log through a pipe, then `sluice log ID` of the stored log (no --follow). Not a test: a 1 GB run takes about a minute here.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from bench.bench_farm import make_srpms
from bench.common import SLUICE, header, isolate

LINE = "sluice-bench-1g-log-line-of-text"
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_of(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1].upper()] if text[-1].upper() in UNITS else int(text)


def peak_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set so far, in KiB (0 once gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Peak(threading.Thread):
    """Samples a process's VmHWM every 50 ms until it exits; `at(fraction)`
    gives the peak when the reader had seen that much of the log."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.last, self.marks = pid, 0, {}
        self.start()

    def run(self) -> None:
        while (now := peak_kib(self.pid)) or not self.last:
            self.last = max(self.last, now)
            time.sleep(0.05)
            if not os.path.exists(f"/proc/{self.pid}"):
                break

    def mark(self, name: str) -> None:
        self.marks[name] = max(self.last, peak_kib(self.pid))


def drain(proc: subprocess.Popen, size: int, peaks: list[Peak]) -> tuple[int, float, float, float]:
    """Read `proc`'s stdout to its end: (bytes, when the first line of the
    payload arrived, when `size` bytes had arrived, end time), marking the
    peaks at 10% of `size`. The streaming rate is taken between the first two
    (the build's 2 s sleep before the payload and, for sluice, storing the
    log and writing the finish event after it are not streaming)."""
    fd, seen, first, full, marked, needle = proc.stdout.fileno(), 0, 0.0, 0.0, False, LINE.encode()
    while chunk := os.read(fd, 1 << 16):
        if not first and needle in chunk:
            first = time.perf_counter()
        seen += len(chunk)
        if not full and seen >= size:
            full = time.perf_counter()
        if not marked and seen >= size // 10:
            for peak in peaks:
                peak.mark("10%")
            marked = True
    end = time.perf_counter()
    return seen, first or end, full or end, end


def sluice(env: dict, repo: str, *argv: str) -> str:
    return subprocess.run([SLUICE, "--repo", repo, *argv], check=True, capture_output=True, text=True,
                          env=env).stdout


def started(env: dict, repo: str, build: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(t["attempts"] for t in json.loads(sluice(env, repo, "--json", "show", build))["tasks"]):
            return
        time.sleep(0.1)
    raise RuntimeError(f"build {build[:7]} did not start within {seconds:g} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_biglog", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1G", help="bytes the build prints (K, M, G suffixes); default 1G")
    p.add_argument("--quick", action="store_true", help="100M instead")
    args = p.parse_args(argv)
    size = size_of("100M" if args.quick else args.size)
    home = isolate()
    header(f"7b. a {size / (1 << 20):,.0f} MiB build log: local build -> artifact store and sluice log --follow")
    work = Path(home) / "biglog"
    work.mkdir()
    env, repo = dict(os.environ), str(work / "state.git")
    try:
        sluice(env, repo, "init")
        (srpm,) = make_srpms(work / "srpms", "biglog", 1, f"sleep 2; yes {LINE} | head -c {size}")
        build = json.loads(sluice(env, repo, "--json", "submit", str(srpm)))[0]["id"]
        runner = subprocess.Popen([SLUICE, "--repo", repo, "run", "--once"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env)
        started(env, repo, build)
        follower = subprocess.Popen([SLUICE, "--repo", repo, "log", build, "--follow"], stdout=subprocess.PIPE,
                                    env=env)
        peaks = {"runner": Peak(runner.pid), "follower": Peak(follower.pid)}
        seen, first, full, end = drain(follower, size, list(peaks.values()))
        follower.wait()
        peaks["follower"].mark("end")
        while runner.poll() is None:
            peaks["runner"].mark("end")
            time.sleep(0.05)
        if runner.returncode != 0 or seen < size:
            raise RuntimeError(f"runner exit {runner.returncode}, follower saw {seen} of {size} bytes: "
                               f"{runner.stderr.read().decode(errors='replace')[-2000:]}")
        report("sluice log --follow", seen, first, full, peaks["follower"], "(live, while the build prints it)")
        report("sluice run --once", seen, first, full, peaks["runner"], "(streams it to the live log and the store)")
        print(f"   the task, from the payload's first line to the follower's end (output stored in the artifact "
              f"store, the finish event written): {end - first:.1f} s", flush=True)
        stored = max(Path(home, ".local/share/sluice/artifacts/sha256").rglob("*"), key=lambda f: f.stat().st_size)
        top = work / "rpmbuild-peer"
        for label, argv in (("rpmbuild | pipe (peer)", ["rpmbuild", "--rebuild", "--define", f"_topdir {top}",
                                                         str(srpm)]),
                            ("cat stored | pipe (peer)", ["cat", str(stored)]),
                            ("sluice log (stored)", [SLUICE, "--repo", repo, "log", build])):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
            peak = Peak(proc.pid)
            seen, first, full, end = drain(proc, size, [peak])
            peak.mark("end")
            proc.wait()
            report(label, seen, first, full, peak, "")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def report(label: str, seen: int, first: float, end: float, peak: Peak, note: str) -> None:
    rate = seen / (1 << 20) / max(end - first, 1e-9)
    print(f"   {label:26s} {seen / (1 << 20):8,.0f} MiB in {end - first:6.1f} s = {rate:7,.0f} MiB/s; "
          f"peak RSS {peak.marks.get('10%', 0) / 1024:6.1f} MiB at 10%, "
          f"{max(peak.marks.get('end', 0), peak.last) / 1024:6.1f} MiB at the end {note}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
