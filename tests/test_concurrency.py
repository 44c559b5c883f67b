"""Two processes writing to one repo at once: compare-and-swap loses nothing and
never writes a transition against a state it did not see."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from app import builds
from app.model import Op, State
from tests.conftest import BOB

WRITER = textwrap.dedent("""
    import json, sys
    from app.actions import Action
    from app.errors import StateConflict
    from app.index import Index
    from app.model import Op, State
    from app.queue import Queue
    from backends.base import Person
    from backends.gitstore import GitStateStore

    repo, build, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = GitStateStore.open(repo)
    queue = Queue(store, Person("Bob", "bob@example.org"), Index(store))
    done, refused, acknowledged = 0, 0, []
    while done < count:
        state = queue.view(build).state
        action = Action(Op.HOLD, build, "hold") if state is State.BUILT else Action(Op.UNHOLD, build)
        try:
            view = queue.perform(action)[0]
        except StateConflict:  # the other process toggled first: look again
            refused += 1
            continue
        acknowledged.append(view.events[-1].id)
        done += 1
    print(json.dumps({"acknowledged": acknowledged, "refused": refused}))
""")


def run_writers(repo: str, targets: list[str], count: int) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, repo, build, str(count)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for build in targets]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


@pytest.mark.parametrize("shared", [False, True], ids=["own-builds", "same-build"])
def test_two_processes_writing_1000_transitions_each_lose_none(clone, make_srpm, shared):
    first = clone.submit(make_srpm("one"), who=BOB)
    second = first if shared else clone.submit(make_srpm("two"), who=BOB)
    for build in {first, second}:
        clone.built(build)
    commits_before = sum(1 for _ in clone.store.history())
    results = run_writers(str(clone.path), [first, second], 1000)

    acknowledged = [i for r in results for i in r["acknowledged"]]
    assert len(acknowledged) == 2000 and len(set(acknowledged)) == 2000
    snap = clone.store.snapshot()
    stored = {e.id for b in {first, second} for e in builds.load_events(snap, b)}
    assert set(acknowledged) <= stored
    assert sum(1 for _ in clone.store.history()) == commits_before + 2000
    for build in {first, second}:
        view = builds.load_build(snap, build)
        assert not view.contested
        toggles = [e.event for e in view.events if e.event.op in (Op.HOLD, Op.UNHOLD)]
        # each event was valid against the state it landed on: a strict alternation
        for before, after in zip(toggles, toggles[1:]):
            assert before.dst == after.src and before.op != after.op
        assert view.state in (State.BUILT, State.HELD)
    if shared:
        assert sum(r["refused"] for r in results) > 0  # they really did collide
