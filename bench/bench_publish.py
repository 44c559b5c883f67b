"""Publishing: one new build into a large repo vs a full createrepo_c run.

    python -m bench.bench_publish [--packages 10000] [--repeats 7] [--quick]

The fixture is N real, small binary RPMs built with `rpmbuild -bb` from
specs of 1,000 noarch subpackages each (one file per package), cached under
bench/out/publish-v1/chunk-NN/ so that reruns skip the build (`--quick`:
1,000 packages, one chunk). They go into a `FileArtifactStore` and are
published once by `CreaterepoPublisher`, exactly as sluice publishes a
repo: hard links into the store plus metadata.

Then, interleaved, for each repeat:

- sluice: a new build of `pubnew` (3 RPMs, a new release each repeat) is
  put into the store and `CreaterepoPublisher.publish` is timed making the
  repo hold the N packages plus the new build (the links, the metadata, the
  marker; no signing callback, as the buildroot repo is published);
- peer: a full `createrepo_c` run over the same directory, with the same
  options and a package list of the same N+3 files, writing its metadata
  into a scratch output directory (`--outputdir`) so the repo sluice
  publishes is left as sluice made it.

Both sides are wall clock; the figures are the median and p90 over the
repeats, and the ratio of the medians. CPU time (user+sys, createrepo_c's
included) is printed beside them with the load average: on a shared
machine it says what each side costs whatever the others are doing.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backends.artifacts import FileArtifactStore
from backends.createrepo import CREATEREPO_OPTIONS
from backends.publisher import CreaterepoPublisher
from bench import fixture
from bench.common import header, median, scratch_dir

FIXTURE_VERSION = "publish-v1"
CHUNK = 1000  # packages per spec: rpmbuild takes about 16 s for one chunk here


def spec(name: str, prefix: str, count: int, release: int = 1) -> str:
    """A spec of `count` noarch subpackages `<prefix>-<i>`, one file each."""
    parts = [f"Name: {name}\nVersion: 1.0\nRelease: {release}\nSummary: publish benchmark\nLicense: MIT\n"
             "BuildArch: noarch\n%description\npublish benchmark\n"]
    parts += [f"%package -n {prefix}-{i}\nSummary: part {i} of {name}\n%description -n {prefix}-{i}\n"
              f"part {i} of {name}\n" for i in range(count)]
    parts.append(f"%install\nfor i in $(seq 0 {count - 1}); do mkdir -p %{{buildroot}}/usr/share/{prefix}-$i; "
                 f"echo $i > %{{buildroot}}/usr/share/{prefix}-$i/f; done\n")
    parts += [f"%files -n {prefix}-{i}\n/usr/share/{prefix}-{i}/f\n" for i in range(count)]
    return "\n".join(parts)


def rpmbuild(spec_text: str, name: str, dest: Path) -> list[Path]:
    """Build the spec's binary RPMs and move them into `dest` (made whole by
    one rename, so an interrupted build leaves no half chunk behind)."""
    fixture.OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-rpmbuild-", dir=fixture.OUT) as top:
        spec_path = Path(top) / f"{name}.spec"
        spec_path.write_text(spec_text)
        result = subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}",
                                 "--define", "_build_id_links none", str(spec_path)],
                                capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"rpmbuild of {name} exited {result.returncode}: {result.stderr[-2000:]}")
        built = Path(top) / "RPMS" / "noarch"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), str(dest))
    return sorted(dest.glob("*.rpm"))


def packages(count: int) -> list[Path]:
    """The first `count` fixture RPMs, building the missing chunks (two at once)."""
    root = fixture.OUT / FIXTURE_VERSION
    chunks = -(-count // CHUNK)
    missing = [k for k in range(chunks) if not (root / f"chunk-{k:02d}").is_dir()]
    if missing:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
            list(pool.map(lambda k: rpmbuild(spec(f"pubbench{k:02d}", f"pb{k:02d}", CHUNK),
                                             f"pubbench{k:02d}", root / f"chunk-{k:02d}"), missing))
        print(f"   fixture: built {len(missing) * CHUNK:,} RPMs in {time.perf_counter() - start:.0f}s "
              f"(cached in {root})", flush=True)
    else:
        print(f"   fixture: {chunks * CHUNK:,} RPMs cached in {root}", flush=True)
    found = [p for k in range(chunks) for p in sorted((root / f"chunk-{k:02d}").glob("*.rpm"))]
    if len(found) < count:
        raise RuntimeError(f"the fixture in {root} holds {len(found)} RPMs, not {count}: delete it and rerun")
    return found[:count]


def new_builds(work: Path, repeats: int) -> list[list[Path]]:
    """One small build (3 RPMs) per repeat, each a new release."""
    return [rpmbuild(spec("pubnew", "pubnew", 3, release=r), "pubnew", work / f"new-{r}")
            for r in range(1, repeats + 1)]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p90 of 7 values is the 7th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 100) * len(ordered) // 100))
    return ordered[rank - 1]


def figure(values: list[float]) -> str:
    return (f"median {median(values):.3f}s  p90 {percentile(values, 0.9):.3f}s  "
            f"(min {min(values):.3f}, max {max(values):.3f}, n={len(values)})")


def cpu() -> float:
    """CPU seconds of this process and its finished children (createrepo_c)."""
    mine, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def full_createrepo(repo: Path, names: list[str], out: Path) -> float:
    """The peer: createrepo_c with sluice's options over the same directory."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    with tempfile.NamedTemporaryFile("w", prefix="sluice-bench-pkglist-", suffix=".txt") as pkglist:
        pkglist.write("".join(f"{name}\n" for name in names))
        pkglist.flush()
        command = ["createrepo_c", "--pkglist", pkglist.name, *CREATEREPO_OPTIONS, "--outputdir", str(out),
                   str(repo)]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        took = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_publish", description=__doc__.split("\n\n")[0])
    p.add_argument("--packages", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="1,000 packages, 5 repeats")
    args = p.parse_args(argv)
    count, repeats = (1000, 5) if args.quick else (args.packages, args.repeats)
    header(f"publish one new build (3 RPMs) into a {count:,}-package repo vs a full createrepo_c run "
           f"({repeats} repeats)")
    rpms = packages(count)
    work = scratch_dir("publish")
    try:
        store = FileArtifactStore(str(work / "artifacts"))
        start = time.perf_counter()
        files = {path.name: store.put(str(path)).sha256 for path in rpms}
        stored = time.perf_counter() - start
        repo = work / "repos" / "bench" / "buildroot"
        publisher = CreaterepoPublisher(store)
        start = time.perf_counter()
        publisher.publish(str(repo), files)
        print(f"   set-up: {count:,} RPMs into the store {stored:.1f}s; first (full) publish "
              f"{time.perf_counter() - start:.2f}s", flush=True)
        builds = new_builds(work, repeats)
        ours, peer, ours_cpu, peer_cpu = [], [], [], []
        for r, build in enumerate(builds, 1):
            files.update({path.name: store.put(str(path)).sha256 for path in build})
            used, start = cpu(), time.perf_counter()
            result = publisher.publish(str(repo), files)
            ours.append(time.perf_counter() - start)
            ours_cpu.append(cpu() - used)
            assert result.changed and len(result.added) == len(build), result
            used = cpu()
            peer.append(full_createrepo(repo, sorted(files), work / "peer-out"))
            peer_cpu.append(cpu() - used)
            print(f"   repeat {r}: sluice {ours[-1]:.3f}s (CPU {ours_cpu[-1]:.3f}s, +{len(result.added)} "
                  f"-{len(result.removed)}), full createrepo_c {peer[-1]:.3f}s (CPU {peer_cpu[-1]:.3f}s), "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = median(peer) / median(ours)
    print(f"   sluice publish of one build ({count:,} packages): {figure(ours)}")
    print(f"   peer, full createrepo_c, same run:  {figure(peer)}")
    print(f"   CPU (user+sys, createrepo_c included): sluice median {median(ours_cpu):.3f}s, "
          f"full createrepo_c median {median(peer_cpu):.3f}s ({median(peer_cpu) / median(ours_cpu):.1f}x)")
    print(f"   sluice is {ratio:.1f}x " + ("faster than" if ratio >= 1 else "the speed of")
          + " the full run (target: under 1 s and at least 5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
