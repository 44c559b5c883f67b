"""Merging an external repo into a buildroot: sluice vs mergerepo_c, same run.

    python -m bench.bench_merge [--packages 20000] [--rounds 3] [--quick]

The external repo is metadata only (a merge never opens an external RPM):
one real package built with rpmbuild and indexed by createrepo_c, its
primary/filelists/other `<package>` elements replicated N times under new
names and pkgids, with a repomd.xml whose checksums match. The local repo
holds the one real package, so one source name of the external repo is
masked. In the same round, on the same inputs:

- sluice: `MergeRepoWriter.merge` of a changed input (it reads and
  recompresses everything), then of unchanged inputs (it reads each
  repomd.xml and stops);
- peer: `mergerepo_c --koji` into a fresh folder (gz, no sqlite), the tool a
  Koji-like setup would run (it does not apply sluice's rule, see
  docs/decisions.md, but does the same reading and writing).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import header, scratch_dir, spread
from backends.base import RepoSource
from backends.repomerge import MergeRepoWriter

SPEC = """Name: mergebench
Version: 1.0
Release: 1
Summary: merge benchmark
License: MIT
BuildArch: noarch
%description
merge benchmark
%install
mkdir -p %{buildroot}/usr/share/mergebench
echo x > %{buildroot}/usr/share/mergebench/file
%files
/usr/share/mergebench/file
"""


def one_rpm(work: Path) -> Path:
    top = work / "top"
    top.mkdir()
    (top / "mergebench.spec").write_text(SPEC)
    subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {top}", "--define", f"_rpmdir {top}/RPMS",
                    str(top / "mergebench.spec")], check=True, capture_output=True)
    return next((top / "RPMS").rglob("*.rpm"))


def createrepo(path: Path) -> None:
    subprocess.run(["createrepo_c", "-q", "--general-compress-type", "gz", "--no-database", str(path)],
                   check=True, capture_output=True)


def synthetic_external(template: Path, out: Path, n: int) -> None:
    """The template repo's one package, and n-1 copies of it renamed pkgNNNNN."""
    repodata = out / "repodata"
    repodata.mkdir(parents=True)
    entries = []
    for kind in ("primary", "filelists", "other"):
        text = gzip.decompress(next((template / "repodata").glob(f"*-{kind}.xml.gz")).read_bytes()).decode()
        head, rest = text.split("<package", 1)
        body, tail = rest.rsplit("</package>", 1)
        chunk = "<package" + body + "</package>\n"
        pkgid = re.search(r'pkgid="YES">([0-9a-f]+)<|pkgid="([0-9a-f]+)"', chunk)
        old_id = pkgid.group(1) or pkgid.group(2)
        head = re.sub(r'packages="\d+"', f'packages="{n}"', head)
        parts = [head]
        parts.append(chunk)  # the local repo's own package: masked by source name
        for i in range(1, n):
            name = f"pkg{i:05d}"
            new_id = hashlib.sha256(name.encode()).hexdigest()
            parts.append(chunk.replace("mergebench", name).replace(old_id, new_id))
        parts.append(tail)
        raw = "".join(parts).encode()
        packed = gzip.compress(raw, 6)
        digest = hashlib.sha256(packed).hexdigest()
        name = f"{digest}-{kind}.xml.gz"
        (repodata / name).write_bytes(packed)
        entries.append(f'<data type="{kind}"><checksum type="sha256">{digest}</checksum>'
                       f'<open-checksum type="sha256">{hashlib.sha256(raw).hexdigest()}</open-checksum>'
                       f'<location href="repodata/{name}"/><timestamp>0</timestamp>'
                       f"<size>{len(packed)}</size><open-size>{len(raw)}</open-size></data>")
    (repodata / "repomd.xml").write_text('<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.'
                                         'duke.edu/metadata/repo"><revision>0</revision>'
                                         + "".join(entries) + "</repomd>\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_merge", description=__doc__.split("\n\n")[0])
    p.add_argument("--packages", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="2,000 packages, 2 rounds")
    args = p.parse_args(argv)
    n, rounds = (2000, 2) if args.quick else (args.packages, args.rounds)
    header(f"merge: one external repo of {n:,} packages into a buildroot")
    work = scratch_dir("merge")
    template = work / "template"
    template.mkdir()
    shutil.copy(one_rpm(work), template)
    createrepo(template)
    external = work / "external"
    synthetic_external(template, external, n)
    buildroot = work / "buildroot"
    local = buildroot / ".local"
    shutil.copytree(template, local)
    sources = [RepoSource("ext", f"file://{external}")]
    changed, unchanged, peer = [], [], []
    for _ in range(rounds):
        (buildroot / ".merged").unlink(missing_ok=True)  # a changed input: the whole merge runs
        start = time.perf_counter()
        result = MergeRepoWriter().merge(str(buildroot), str(local), sources)
        changed.append(time.perf_counter() - start)
        start = time.perf_counter()
        MergeRepoWriter().merge(str(buildroot), str(local), sources)
        unchanged.append(time.perf_counter() - start)
        out = work / "peer"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(["mergerepo_c", "--koji", "--repo", f"file://{local}/", "--repo", f"file://{external}/",
                        "-o", str(out), "--compress-type", "gz", "--no-database"], check=True,
                       capture_output=True)
        peer.append(time.perf_counter() - start)
    print(f"   offered: {sum(result.taken.values()):,} packages ({result.masked.get('ext', 0)} masked)")
    print(f"   sluice merge, inputs changed:   {spread(changed)}")
    print(f"   sluice merge, inputs unchanged: {spread(unchanged, 'ms', 1000, 1)}")
    print(f"   peer mergerepo_c --koji:        {spread(peer)}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
