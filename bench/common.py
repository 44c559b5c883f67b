"""What the benchmarks share: the people, a clean environment, the machine
context, timing with medians, child processes measured with their own rusage,
and the fixtures with a warm index."""
from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import pygit2

from app.index import Index
from backends.gitstore import GitStateStore
from bench import fixture
from bench.fixture import ALICE, BOB

VENV_BIN = Path(sys.executable).parent
SLUICE = str(VENV_BIN / "sluice")


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   machine: nproc={os.cpu_count()} python={platform.python_version()} "
          f"pygit2={pygit2.__version__} libgit2={pygit2.LIBGIT2_VERSION} "
          f"git={subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.split()[-1]}",
          flush=True)


def clean_env(home: str) -> dict[str, str]:
    """The environment of a sluice child: its own HOME and XDG dirs, no git
    config from the machine, alice as the user, bytecode caching on."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLUICE_", "GIT_")) and k not in ("XDG_DATA_HOME", "XDG_CONFIG_HOME")}
    env.update(HOME=home, XDG_DATA_HOME=f"{home}/.local/share", XDG_CONFIG_HOME=f"{home}/.config",
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=f"{home}/.gitconfig", SLUICE_USER=ALICE.email)
    # An installed sluice starts from bytecode; compiling app/ from source on
    # every start would add ~30 ms that no user pays. Keep the bytecode out of
    # the source tree, under bench/out/.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(fixture.OUT / "pycache")
    os.makedirs(home, exist_ok=True)
    # No automatic gc: a gc that git starts in the background after a push
    # or fetch would race the clean-up and load the other core mid-run.
    with open(f"{home}/.gitconfig", "w") as config:
        config.write("[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n")
    return env


def isolate() -> str:
    """Give this process (and the git commands it runs) a clean environment."""
    home = tempfile.mkdtemp(prefix="sluice-bench-home-")
    env = clean_env(home)
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    os.environ.update(env)
    return home


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], unit: str = "s", scale: float = 1.0, digits: int = 3) -> str:
    """`median (min..max, n=N)`."""
    v = [x * scale for x in values]
    return f"{statistics.median(v):.{digits}f}{unit} (min {min(v):.{digits}f}, max {max(v):.{digits}f}, n={len(v)})"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_child(argv: Sequence[str], env: dict[str, str] | None = None, stdout=subprocess.DEVNULL,
              cwd: str | None = None) -> tuple[float, int, int]:
    """Run a process to completion; returns (wall seconds, max RSS in KiB, exit code).

    The RSS comes from /usr/bin/time when present: a child's own ru_maxrss
    (os.wait4) also counts the pages it shared with this process between fork
    and exec, so a big benchmark process would inflate it."""
    timer = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.NamedTemporaryFile("r", prefix="sluice-bench-rss-") as rss_file:
        command = ([timer, "-f", "%M", "-o", rss_file.name] if timer else []) + list(argv)
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.strip()}")
        maxrss = int(rss_file.read().split()[-1]) if timer else usage.ru_maxrss
    return wall, maxrss, proc.returncode


def fixture_with_index(builds: int, per_build: int) -> tuple[Path, dict | None, float | None]:
    """The cached fixture with its index warm. Returns the path, the generation
    report (None if cached) and the full index rebuild time if it was built now."""
    path, report = fixture.ensure(builds, per_build)
    store = GitStateStore.open(str(path))
    index = Index(store)
    rebuild = None
    if index.indexed() != store.head():
        rebuild, _ = timed(index.refresh)
    index.close()
    return path, report, rebuild


def built_builds(path: Path | str, states: Sequence[str] = ("built",), limit: int | None = None) -> list[str]:
    """Ids of builds in `states` (from the warm index), oldest first."""
    store = GitStateStore.open(str(path))
    index = Index(store)
    index.refresh()
    marks = ",".join("?" * len(states))
    rows = index.db.execute(f"SELECT id FROM builds WHERE state IN ({marks}) AND scratch = 0 "
                            f"AND contested = 0 ORDER BY created, id", list(states)).fetchall()
    index.close()
    ids = [r[0] for r in rows]
    return ids[:limit] if limit else ids


def profile(fn: Callable[[], object], top: int = 25, sort: str = "tottime") -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


def scratch_dir(name: str) -> Path:
    """A fresh folder under bench/out/work/ for copies a benchmark writes into,
    private to this process (two benchmarks running at once never share one)."""
    path = fixture.OUT / "work" / f"{name}-{os.getpid()}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


__all__ = ["ALICE", "BOB", "SLUICE", "header", "clean_env", "isolate", "median", "spread", "timed",
           "run_child", "fixture_with_index", "built_builds", "profile", "scratch_dir"]
