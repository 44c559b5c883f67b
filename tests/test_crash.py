"""SIGKILL at random points during writes, sync and artifact import.

One repo lives through a few hundred killed sluice commands: submits (which
import SRPMs into the artifact store and write a commit), hold/unhold
transitions, and syncs with a local bare remote that a second clone keeps
moving (so syncs fetch, check, merge and push). Each command is killed
after a random delay drawn from the command's own measured duration, so
kills land all through its work; the delays come from one seeded random
generator (set SLUICE_CRASH_SEED to replay a run; the seed is printed).

Commands run in children forked from a process that imported sluice once
(tests/forkserver.py), so a kill costs a fork rather than an interpreter
start; a few kills also hit the `sluice` executable itself.

Afterwards: `git fsck --strict` is clean on both repos, every acknowledged
event (its command exited 0) is in the tree with its exact bytes, every
acknowledged sync reached the remote, the index the kills left behind gives
the same answer as one built fresh and as folding the tree, every file in
the artifact store matches its sha256 name, and what killed imports left
in `incoming/` is gone after the next command.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pygit2

from app import builds
from app.actions import Action
from app.index import Index
from app.model import Op, State
from backends.artifacts import FileArtifactStore
from backends.gitstore import STATE_REF, GitStateStore
from tests.conftest import ALICE, ROOT, Clone, folded, syncer

KILLS = 200
SLUICE = str(Path(sys.executable).parent / "sluice")
SPEC = """\
Name: crash{n}
Version: 1.0
Release: 1
Summary: a package to be killed while imported
License: MIT
Source0: payload.bin
%description
Its source is random bytes, so each SRPM is new content for the store.
%prep
%build
%install
%files
"""


def say(text: str) -> None:
    """Straight to the terminal: the CLI fixture's capsys holds sys.stdout."""
    print(text, file=sys.__stderr__, flush=True)


def _srpms(top: Path, rng: random.Random, count: int) -> list[Path]:
    made = []
    for n in range(count):
        work = top / f"srpm{n}"
        work.mkdir(parents=True)
        (work / "payload.bin").write_bytes(rng.randbytes(768 * 1024))
        (work / "crash.spec").write_text(SPEC.format(n=n))
        subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {work}", "--define", f"_sourcedir {work}",
                        "--define", "dist %{nil}", str(work / "crash.spec")], check=True, capture_output=True)
        made.append(next((work / "SRPMS").glob("*.src.rpm")))
    return made


class Server:
    """tests/forkserver.py as a child of the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.forkserver"], cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, argv: list[str], delay: float | None) -> dict:
        out, err = self.tmp / "out", self.tmp / "err"
        self.proc.stdin.write(json.dumps({"argv": argv, "delay": delay, "out": str(out), "err": str(err)}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        answer["err"] = err.read_text(errors="replace")
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _real(argv: list[str], delay: float) -> dict:
    """The same, against the `sluice` executable."""
    proc = subprocess.Popen([SLUICE, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=delay)
        return {"killed": False, "code": proc.returncode, "err": err.decode(errors="replace")}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"killed": True, "code": None, "err": ""}


def _clear_remote_lock(remote: Path) -> int:
    """A push killed inside git's receive-pack leaves the remote's ref lock.
    sluice never removes a remote's lock (it cannot tell a live pusher from
    a dead one there) and says to remove it by hand: do what it says, as the
    remote's owner would. Nothing pushes while the test's loop is between
    commands, so a lock found here is a dead pusher's."""
    lock = remote / (STATE_REF + ".lock")
    if not lock.exists():
        return 0
    lock.unlink()
    return 1


def _events(store: GitStateStore, old: str | None, new: str | None) -> dict[str, str]:
    """Event path -> blob id of every event added from `old` to `new`."""
    if new is None or old == new:
        return {}
    if old is None:
        changes = store.changes(new, new) or []
        snap = store.snapshot(new)
        return {f"{builds.build_dir(b)}/events/{name}": blob for b in builds.build_ids(snap)
                for name, blob in snap.entries(f"{builds.build_dir(b)}/events")}
    changes = store.changes(old, new)
    assert changes is not None, f"{new} does not descend from {old}: history was lost"
    return {c.path: c.new for c in changes if "/events/" in c.path and c.new}


def _fsck(path: Path) -> str:
    result = subprocess.run(["git", "--git-dir", str(path), "fsck", "--strict", "--no-dangling", "--no-progress"],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"git fsck in {path}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_sigkill_during_writes_sync_and_import_loses_nothing_acknowledged(sluice, tmp_path, monkeypatch):
    seed = int(os.environ.get("SLUICE_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    say(f"crash test seed: {seed} (replay with SLUICE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    artifacts = tmp_path / "artifacts"
    monkeypatch.setenv("SLUICE_ARTIFACTS", str(artifacts))
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True, initial_head="main")
    repo = Path(sluice.repo)
    assert sluice("init").code == 0
    srpms = _srpms(tmp_path / "srpms", rng, 10)
    store = GitStateStore.open(str(repo))
    mine = Clone(repo, store, FileArtifactStore(str(artifacts)))
    ours = [mine.submit(srpms[n]) for n in range(4)]
    for build in ours:
        mine.built(build)
    assert sluice("sync", str(remote)).code == 0
    other = Clone(tmp_path / "other.git", GitStateStore.open(str(tmp_path / "other.git"), create=True),
                  FileArtifactStore(str(tmp_path / "other-artifacts")))
    syncer(other).sync(str(remote))
    theirs = [other.submit(srpms[n], who=ALICE) for n in (4, 5)]
    for build in theirs:
        other.built(build)
    syncer(other).sync(str(remote))

    acknowledged: dict[str, str] = _events(store, None, store.head())  # event path -> blob id
    synced: list[str] = []  # our heads that an acknowledged sync pushed
    figures = {"commands": 0, "kills": 0, "landed unacknowledged": 0, "acknowledged": 0, "refused": 0,
               "kills of the sluice executable": 0, "other clone's writes": 0,
               "kills that left ours ref lock": 0, "kills that left the remote's ref lock": 0,
               "kills that left a file in incoming/": 0}
    per_kind = {"submit": 0, "transition": 0, "sync": 0}
    durations: dict[str, list[float]] = {kind: [] for kind in per_kind}
    base = ["--repo", str(repo)]
    server = Server(tmp_path)
    begun = time.monotonic()
    try:
        while figures["kills"] < KILLS:
            assert figures["commands"] < 6 * KILLS, f"too few kills landed (seed {seed}): {figures}"
            kind = rng.choices(list(per_kind), weights=(35, 40, 25))[0]
            if kind == "submit":
                argv = base + ["submit", "--scratch", str(rng.choice(srpms))]
            elif kind == "sync":
                argv = base + ["sync", str(remote)]
            else:
                build = rng.choice(ours)
                held = builds.load_build(store.snapshot(), build).state is State.HELD
                argv = base + (["unhold", build] if held else ["hold", build, "-m", "crash test"])
            figures["kills that left the remote's ref lock"] += _clear_remote_lock(remote)
            seen = durations[kind][-9:]
            delay = None if len(seen) < 3 else rng.uniform(0.1, 1.3) * statistics.median(seen)
            before = store.head()
            if delay is not None and figures["kills of the sluice executable"] < 6 and rng.random() < 0.05:
                answer = _real(argv, rng.uniform(0.2, 1.2))
                figures["kills of the sluice executable"] += answer["killed"]
            else:
                answer = server.run(argv, delay)
            figures["commands"] += 1
            after = store.head()
            if answer["killed"]:
                figures["kills"] += 1
                per_kind[kind] += 1
                figures["landed unacknowledged"] += after != before
                figures["kills that left a file in incoming/"] += any(
                    name.startswith(".put-") for name in os.listdir(artifacts / "incoming"))
                lock = repo / (STATE_REF + ".lock")
                if lock.exists() and time.time() - lock.stat().st_mtime < 5:
                    # killed holding the ref's lock: age it as 10 s of waiting would, so the
                    # next command finds it stale (backends/gitstore.py STALE_LOCK) at once
                    os.utime(lock, (time.time() - 60, time.time() - 60))
                    figures["kills that left ours ref lock"] += 1

            elif answer["code"] == 0:
                figures["acknowledged"] += 1
                durations[kind].append(answer["elapsed"]) if "elapsed" in answer else None
                acknowledged.update(_events(store, before, after))
                if kind == "sync":
                    synced.append(after)
            else:  # a refusal is fine (a submit whose NVR landed by a killed run); a trace is not
                figures["refused"] += 1
                assert "Traceback" not in answer["err"] and "sluice: error:" in answer["err"], answer["err"]
            if rng.random() < 0.12:  # the other clone moves the remote on
                build = rng.choice(theirs)
                op = "unhold" if other.state(build) is State.HELD else "hold"
                other.queue().perform(Action(Op(op), build, "elsewhere" if op == "hold" else ""))
                figures["kills that left the remote's ref lock"] += _clear_remote_lock(remote)
                syncer(other).sync(str(remote))
                figures["other clone's writes"] += 1
            if figures["commands"] % 100 == 0:
                _fsck(repo)
    finally:
        server.close()
    figures["seconds"] = round(time.monotonic() - begun, 1)
    figures.update({f"kills during {kind}": n for kind, n in per_kind.items()})
    say(f"crash test figures (seed {seed}): {json.dumps(figures)}")

    # the repos are whole
    _clear_remote_lock(remote)
    for path in (repo, remote):
        _fsck(path)
    # every acknowledged event is there, byte for byte
    final = store.snapshot()
    missing = [p for p, blob in acknowledged.items() if final.object_id(p) != blob]
    assert not missing, f"seed {seed}: acknowledged events lost: {missing[:5]}"
    # every acknowledged sync reached the remote, and a last sync joins both sides
    remote_repo = pygit2.Repository(str(remote))
    remote_head = str(remote_repo.references[STATE_REF].target)
    assert all(h == remote_head or remote_repo.descendant_of(remote_head, h) for h in synced)
    assert sluice("sync", str(remote)).code == 0
    assert store.head() == str(remote_repo.references[STATE_REF].target)
    # a lock a kill left here was cleared by that write at the latest; the remote's by hand, as told
    for path in (repo, remote):
        assert not (path / (STATE_REF + ".lock")).exists()
    # the index the kills left answers as a fresh one and as the fold
    left = sluice("--json", "list")
    assert left.code == 0, left.err
    fresh = Index(store, str(tmp_path / "fresh.sqlite"))
    fresh.refresh()
    truth = folded(mine)
    assert [b["id"] for b in left.json] == [b["id"] for b in truth]
    assert [json.loads(row["summary"]) for row in fresh.rows()] == truth
    assert Index(store).rows() == fresh.rows() and not Index(store).problems
    # no artifact is half-imported, and nothing a kill left stays
    stored = list((artifacts / "sha256").rglob("*"))
    for path in (p for p in stored if p.is_file()):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"{path} is not what its name says"
        assert path.stat().st_mode & 0o777 == 0o444
    left_over = sorted(os.listdir(artifacts / "incoming"))
    say(f"crash test: killed imports left {len(left_over)} entries in incoming/; the next command removes them")
    assert sluice("submit", "--scratch", str(srpms[0])).code == 0  # the next run
    assert os.listdir(artifacts / "incoming") == []
    assert figures["kills"] >= KILLS and figures["acknowledged"] > 0 and figures["landed unacknowledged"] > 0
