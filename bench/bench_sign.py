"""Signing: `sluice sign` of a build with N binary RPMs vs a per-file rpmsign loop.

    python -m bench.bench_sign [--rpms 500] [--rounds 3] [--quick]

Each round builds, for real, one package whose spec has N noarch
subpackages (`sluice submit`, `sluice run --once` with the embedded local
builder, `sluice approve`), so the build holds N small binary RPMs in the
artifact store. Then, interleaved in the same round, on the same N RPMs and
the same key (ed25519, no passphrase: unattended signing):

- sluice: `sluice sign ID` as a process. It does more than sign: copies the
  RPMs out of the store, signs them with one `rpmsign --addsign` call
  (chunks of 500 files), checks every signature with `rpmkeys --checksig`
  against the target key alone, stores the signed files and writes the
  `sign` event (a commit);
- peer: copies of the same RPMs signed by a loop of one `rpmsign --addsign`
  per file, with the same defines, no verification;
- for reference: one `rpmsign --addsign` call on all the copies.

Times are wall clock; the figure is the median over rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import SLUICE, header, isolate, median, scratch_dir


def spec(n: int, release: int) -> str:
    parts = [f"Name: signbench\nVersion: 1.0\nRelease: {release}\nSummary: signing benchmark\nLicense: MIT\n"
             "BuildArch: noarch\n%description\nsigning benchmark\n"]
    parts += [f"%package -n signbench{i}\nSummary: part {i}\n%description -n signbench{i}\npart {i}\n"
              for i in range(n)]
    parts.append("%install\n" + "".join(f"mkdir -p %{{buildroot}}/usr/share/signbench{i}\n"
                                        f"echo {i} > %{{buildroot}}/usr/share/signbench{i}/f\n" for i in range(n)))
    parts += [f"%files -n signbench{i}\n/usr/share/signbench{i}/f\n" for i in range(n)]
    return "\n".join(parts)


def sluice(*argv: str) -> str:
    result = subprocess.run([SLUICE, *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"sluice {' '.join(argv)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def build(work: Path, n: int, release: int) -> tuple[str, list[str]]:
    """A needsign build with n binary RPMs: its id and the stored RPM paths."""
    top = work / f"src-{release}"
    top.mkdir()
    (top / "signbench.spec").write_text(spec(n, release))
    subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {top}", "--define", f"_sourcedir {top}",
                    str(top / "signbench.spec")], check=True, capture_output=True)
    srpm = next((top / "SRPMS").glob("*.src.rpm"))
    build_id = json.loads(sluice("--json", "submit", str(srpm)))[0]["id"]
    sluice("run", "--once")
    sluice("approve", build_id[:7])
    shown = json.loads(sluice("--json", "show", build_id))
    store = Path(os.environ["XDG_DATA_HOME"]) / "sluice/artifacts/sha256"
    rpms = [str(store / a["sha256"][:2] / a["sha256"]) for a in shown["artifacts"]
            if a["arch"] != "src" and a["name"].endswith(".rpm")]
    assert len(rpms) == n, f"built {len(rpms)} RPMs, expected {n}"
    return build_id, rpms


def copies(rpms: list[str], folder: Path) -> list[str]:
    folder.mkdir()
    paths = []
    for n, path in enumerate(rpms):
        paths.append(str(folder / f"p{n}.rpm"))
        shutil.copyfile(path, paths[-1])
    return paths


def rpmsign(fingerprint: str, home: str, files: list[str]) -> None:
    subprocess.run(["rpmsign", "--addsign", "--define", f"_gpg_name {fingerprint}",
                    "--define", f"__gpg {shutil.which('gpg2') or shutil.which('gpg')}",
                    "--define", f"_gpg_path {home}", "--define", "_gpg_sign_cmd_extra_args --batch",
                    "--", *files], check=True, capture_output=True, stdin=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_sign", description=__doc__.split("\n\n")[0])
    p.add_argument("--rpms", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="50 RPMs, one round")
    args = p.parse_args(argv)
    n, rounds = (50, 1) if args.quick else (args.rpms, args.rounds)
    home = isolate()
    header(f"signing {n} RPMs: sluice sign vs a per-file rpmsign loop ({rounds} rounds)")
    gnupg = os.path.join(os.environ["XDG_DATA_HOME"], "sluice", "gnupg")
    sluice("init")
    sluice("policy", "grant", "signer", os.environ["SLUICE_USER"])
    fingerprint = json.loads(sluice("--json", "key", "create", "--target", "default", "--no-passphrase"))[
        "fingerprint"]
    work = scratch_dir("sign")
    figures: dict[str, list[float]] = {"sluice sign": [], "rpmsign per file": [], "rpmsign one call": []}
    try:
        for r in range(1, rounds + 1):
            start = time.perf_counter()
            build_id, rpms = build(work, n, r)
            prepared = time.perf_counter() - start
            loop_files = copies(rpms, work / f"loop-{r}")
            start = time.perf_counter()
            for path in loop_files:
                rpmsign(fingerprint, gnupg, [path])
            figures["rpmsign per file"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sluice("sign", build_id[:7])
            figures["sluice sign"].append(time.perf_counter() - start)
            one_files = copies(rpms, work / f"one-{r}")
            start = time.perf_counter()
            rpmsign(fingerprint, gnupg, one_files)
            figures["rpmsign one call"].append(time.perf_counter() - start)
            print(f"   round {r}: built {n} RPMs in {prepared:.1f}s; " +
                  ", ".join(f"{k} {v[-1]:.2f}s" for k, v in figures.items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": gnupg},
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    loop, ours = median(figures["rpmsign per file"]), median(figures["sluice sign"])
    for name, values in figures.items():
        m = median(values)
        print(f"   {name:<18} {m:7.2f}s  {m / n * 1000:6.1f} ms/RPM  ({n / m:6.0f} RPMs/s)")
    print(f"   sluice sign (with verification, store and event) is {loop / ours:.1f}x the per-file loop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
