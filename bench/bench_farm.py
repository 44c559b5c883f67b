"""6. A build farm: 20 concurrent builds on two SSH builder hosts.

    python -m bench.bench_farm [--builds 20] [--sleep 3] [--slots 10] [--max-sessions 32] [--quick]

Two real sshd builder hosts (127.0.0.2 and 127.0.0.3, both x86_64, `--slots`
each, so every build can run at once) with the mock test double on their
PATH, as in tests/test_runner_ssh.py, but with sshd's MaxSessions raised
to 32 (`--max-sessions`) and the builder config's `max_sessions` set to
match: sluice runs all of a host's builds as channels of one connection and
needs slots + 2 sessions (a stock sshd allows 10). Every build sleeps `--sleep` seconds in
%build. The runner is the venv's `sluice run --once`, a whole process; its
CPU (user + sys, including the createrepo_c and rpm children it waits for) is
its own rusage from `os.wait4`. The builds' own durations are timed on the
hosts by a wrapper around the tool (see `Farm`), so that "sum of build times"
is what the hosts spent in mock, not what sluice says.

Peer, same run: the same number of builds of the same kind of SRPM, each
done by a naive OpenSSH runner in its own thread (mkdir, scp up, mock, list,
scp down, rm: one new ssh connection per step), with the client's CPU
(every ssh and scp) from RUSAGE_CHILDREN.

The helpers here (`Farm`, `make_srpms`, `naive_task`) are shared with
bench_dispatch and bench_logstream.

No target was set for this one: the figures are the controller's CPU per
build and the wall time against the longest build.
"""
from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import SLUICE, header, isolate, median, scratch_dir
from tests.conftest import ROOT, SPEC
from tests.sshd import SshServer, start_sshd

DOUBLE = ROOT / "tests" / "doubles" / "mock"
# Runs the real tool (the mock double) and appends "start end status" (host
# clock, seconds) for each --rebuild to the file named by $1's environment.
WRAPPER = """#!/bin/sh
case " $* " in *" --rebuild "*) ;; *) exec {double} "$@";; esac
start=$(date +%s.%N)
{double} "$@"
rc=$?
echo "$start $(date +%s.%N) $rc" >> {timings}
exit $rc
"""


@dataclass
class Farm:
    """Builder hosts (real sshd), a state repo, the local config naming them,
    and the timings the tool wrapper writes on the hosts."""

    work: Path
    env: dict[str, str]
    repo: str = ""
    servers: dict[str, SshServer] = field(default_factory=dict)
    timings: Path = Path()

    @classmethod
    def start(cls, work: Path, addresses: dict[str, str], slots: int = 1, max_sessions: int = 0) -> "Farm":
        """`addresses`: builder name -> 127.0.0.x; all x86_64, `slots` each.
        `max_sessions` > 0 sets sshd's MaxSessions (default 10 channels per
        connection) and the builders' `max_sessions` to match: sluice runs
        every build of a host on one connection and needs slots + 2."""
        farm = cls(work, dict(os.environ), str(work / "state.git"))
        bin_dir = work / "bin"
        bin_dir.mkdir()
        farm.timings = work / "tool-timings"
        wrapper = bin_dir / "mock"
        wrapper.write_text(WRAPPER.format(double=shlex.quote(str(DOUBLE)), timings=shlex.quote(str(farm.timings))))
        wrapper.chmod(0o755)
        try:
            for name, address in addresses.items():
                (work / f"sshd-{name}").mkdir()
                farm.servers[name] = start_sshd(work / f"sshd-{name}", address, forwarding="remote",
                                                path=f"{bin_dir}:{DOUBLE.parent}:/usr/bin:/bin",
                                                max_sessions=max_sessions or None)
            farm.sluice("init")
            blocks = []
            for name, server in farm.servers.items():
                h = server.host
                blocks.append(f'[[builder]]\nname = "{name}"\nhost = "{h.host}"\nport = {h.port}\n'
                              f'user = "{h.user}"\nkey = "{h.key}"\nknown_hosts = "{h.known_hosts}"\n'
                              f'arches = ["x86_64"]\nslots = {slots}\ntool = "mock"\n'
                              f'max_sessions = {max_sessions or 10}\n'
                              f'workdir = "{work / "hosts" / name}"\n')
            config = Path(farm.env["XDG_CONFIG_HOME"]) / "sluice" / "config.toml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text("\n".join(blocks))
        except BaseException:
            farm.stop()
            raise
        return farm

    def sluice(self, *argv: str) -> str:
        result = subprocess.run([SLUICE, "--repo", self.repo, *argv], capture_output=True, text=True, env=self.env)
        if result.returncode != 0:
            raise RuntimeError(f"sluice {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def submit(self, srpms: list[Path]) -> list[str]:
        import json
        return [b["id"] for b in json.loads(self.sluice("--json", "submit", *map(str, srpms)))]

    def tool_times(self) -> list[tuple[float, float, int]]:
        """(start, end, status) of every build the tool ran on the hosts so far."""
        if not self.timings.exists():
            return []
        return sorted((float(a), float(b), int(c)) for a, b, c in
                      (line.split() for line in self.timings.read_text().splitlines()))

    def reset_times(self) -> None:
        self.timings.unlink(missing_ok=True)

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def make_srpms(out: Path, prefix: str, count: int, build: str) -> list[Path]:
    """`count` real SRPMs (rpmbuild -bs) named prefix-NNN whose %build runs `build`."""
    made = []
    for n in range(count):
        name = f"{prefix}{n:03d}"
        top = out / name
        top.mkdir(parents=True)
        spec = top / f"{name}.spec"
        spec.write_text(SPEC.format(name=name, version="1.0", release="1", extra="", build=build))
        subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {top}", "--define", f"_sourcedir {top}",
                        "--define", "dist %{nil}", str(spec)], check=True, capture_output=True)
        made.append(next((top / "SRPMS").glob("*.src.rpm")))
    return made


def naive_task(server: SshServer, srpm: Path, remote_dir: str, local_dir: Path) -> None:
    """One task the way a naive OpenSSH runner does it: a new connection per
    step (mkdir, scp up, mock, list, scp down, rm); the peer of sluice's task."""
    h = server.host
    ssh = [*shlex.split(h.ssh_command), "-p", str(h.port)]
    scp = ["scp", "-q", *shlex.split(h.ssh_command)[1:], "-P", str(h.port)]
    where = f"{h.user}@{h.host}"

    def remote(*argv: str) -> str:
        return subprocess.run([*ssh, where, "--", shlex.join(argv)], check=True, capture_output=True,
                              text=True).stdout

    remote("mkdir", "-p", "--", f"{remote_dir}/result")
    subprocess.run([*scp, str(srpm), f"{where}:{remote_dir}/source.src.rpm"], check=True, capture_output=True)
    remote("mock", "-r", "fedora-41-x86_64", "--resultdir", f"{remote_dir}/result", "--rebuild", "--",
           f"{remote_dir}/source.src.rpm")
    names = remote("sh", "-c", 'cd -- "$1" && sha256sum -- *', "sh", f"{remote_dir}/result").split()[1::2]
    local_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([*scp, *(f"{where}:{remote_dir}/result/{n}" for n in names), str(local_dir)],
                   check=True, capture_output=True)
    remote("rm", "-rf", "--", remote_dir)


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(farm: Farm) -> tuple[float, float, str]:
    """`sluice run --once` as a whole process: (wall s, its CPU s, stderr)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([SLUICE, "--repo", farm.repo, "run", "--once"], stdout=subprocess.DEVNULL,
                                stderr=err, env=farm.env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        notes = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"sluice run --once exited {proc.returncode}: {notes[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, notes


def states(farm: Farm) -> dict[str, int]:
    import json
    counts: dict[str, int] = {}
    for build in json.loads(farm.sluice("--json", "list")):
        counts[build["state"]] = counts.get(build["state"], 0) + 1
    return counts


def bench(builds: int, sleep: float, slots: int, max_sessions: int) -> dict:
    work = scratch_dir("farm")
    farm = Farm.start(work, {"b2": "127.0.0.2", "b3": "127.0.0.3"}, slots=slots, max_sessions=max_sessions)
    try:
        srpms = make_srpms(work / "srpms", "farm", builds, f"sleep {sleep:g}")
        farm.submit(srpms)
        wall, cpu, notes = run_once(farm)
        times = farm.tool_times()
        done = states(farm)
        if len(times) != builds or done.get("built") != builds:
            raise RuntimeError(f"expected {builds} built builds, got {done} and {len(times)} tool runs:\n{notes[-3000:]}")
        durations = [end - start for start, end, _ in times]
        span = max(e for _, e, _ in times) - min(s for s, _, _ in times)
        farm.reset_times()
        # the peer: a naive OpenSSH runner per build, all at once, alternating hosts
        servers = list(farm.servers.values())
        peer_srpms = make_srpms(work / "peer-srpms", "peer", builds, f"sleep {sleep:g}")
        cpu0 = cpu_of_children()
        threads = [threading.Thread(target=naive_task, args=(servers[n % 2], srpm, f"{work}/hosts/peer/{n}",
                                                                work / "peer-results" / str(n)))
                   for n, srpm in enumerate(peer_srpms)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        peer_wall = time.perf_counter() - start
        peer_cpu = cpu_of_children() - cpu0
        peer_times = farm.tool_times()
        if len(peer_times) != builds:
            raise RuntimeError(f"the OpenSSH peer ran {len(peer_times)} of {builds} builds")
        peer_durations = [e - s for s, e, _ in peer_times]
    finally:
        farm.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"-- {builds} builds, each `sleep {sleep:g}` in %build, on 2 hosts x {slots} slots (all at once); "
          f"sshd MaxSessions {max_sessions or '10 (default)'}")
    print(f"   sluice run --once          wall {wall:6.2f} s   runner CPU {cpu:5.2f} s "
          f"({1000 * cpu / builds:.0f} ms per build, {100 * cpu / wall:.0f}% of one core)")
    print(f"     tool time on the hosts:  sum {sum(durations):6.1f} s, each {median(durations):.2f} s median "
          f"(min {min(durations):.2f}, max {max(durations):.2f}); first start to last end {span:.2f} s")
    print(f"     wall / longest build     {wall / max(durations):6.2f}x   wall / sum of builds "
          f"{wall / sum(durations):.3f}")
    print(f"   naive OpenSSH (peer)       wall {peer_wall:6.2f} s   client CPU {peer_cpu:5.2f} s "
          f"({1000 * peer_cpu / builds:.0f} ms per build; 6 ssh/scp connections each)")
    print(f"     tool time on the hosts:  sum {sum(peer_durations):6.1f} s, each {median(peer_durations):.2f} s "
          f"median (min {min(peer_durations):.2f}, max {max(peer_durations):.2f})")
    print(f"   ratio sluice/peer          wall {wall / peer_wall:.2f}   CPU {cpu / peer_cpu:.2f}")
    return {"wall": wall, "cpu": cpu, "sum": sum(durations), "peer_wall": peer_wall, "peer_cpu": peer_cpu}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_farm", description=__doc__.split("\n\n")[0])
    p.add_argument("--builds", type=int, default=20)
    p.add_argument("--sleep", type=float, default=3.0, help="seconds each build sleeps in %%build")
    p.add_argument("--slots", type=int, default=10, help="slots per host (2 hosts)")
    p.add_argument("--max-sessions", type=int, default=32,
                   help="sshd MaxSessions on the hosts and max_sessions in the config "
                        "(0: sshd's default, 10, which sluice refuses for more than 8 slots)")
    p.add_argument("--quick", action="store_true", help="6 builds, 3 slots per host, 1 s each")
    args = p.parse_args(argv)
    if args.quick:
        args.builds, args.slots, args.sleep = 6, 3, 1.0
    home = isolate()
    header("6. build farm: concurrent builds on two SSH hosts, controller CPU and wall")
    try:
        bench(args.builds, args.sleep, args.slots, args.max_sessions)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
