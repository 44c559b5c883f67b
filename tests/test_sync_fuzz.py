"""The sync merge fuzzed with crafted trees (hypothesis).

Each example writes, with raw git objects as an attacker's own tool would
(no libgit2 or git checks on the way), one hostile commit on top of a real
bare hub: an existing event or record modified, a file deleted, an event for
a build that does not exist, a tree entry with an odd name (`..`, `a/b`, a
whole path as one name, bytes that are no UTF-8), a file outside the layout,
a file over its size limit, a valid event with the wrong mode (executable,
symlink, submodule, folder), a valid event by someone the policy does not
allow, two events for one build in one commit, an old event replayed under a
new name. Sometimes a valid commit comes before it and after it. alice's
`sluice sync` (the CLI, in-process) must refuse with exit 3 and a finding
that says why, and leave her ref, her index and her tree as they were.
"""
from __future__ import annotations

import json
import secrets

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from app import builds
from app.index import Index
from app.model import Op
from app.queue import make_event
from backends.base import Person
from tests.conftest import ALICE, BOB, MALLORY, syncer, tree_files
from tests.test_sync import hub  # noqa: F401  (the fixture)

COMMIT, TREE, BLOB = 1, 2, 3  # git's object type numbers
FOLDER, FILE = 0o40000, 0o100644
# Names git can store in a tree (no NUL) that no file of a queue has.
ODD = [b"..", b".", b".git", b".GIT", b"a/b", b"/", b"builds/../x", b"../../etc/passwd", b"\xff\xfe.json",
       b"x\\y", b"-", b" ", b"build.json ", b"events\n", "é.json".encode(), b"con", b"..."]
# Not 100664 or 100600: git reads those (old git's) modes as 100644, a plain file.
MODES = [0o100755, 0o120000, 0o160000, FOLDER]
WHY = {  # what a refusal must say, per kind of crafted change (any one of these words)
    "modify": ("may never change",), "delete": ("deletes",), "unknown": ("does not exist",),
    "outside": ("no part of a sluice queue",), "huge": ("over the",),
    "actor": ("may not approve",), "spoof": ("claims actor",), "two": ("two events",),
    "replay": ("does not match its hash", "lamport or replica differs"),
    "mode": ("not a regular file", "malformed"),
    "odd": ("no part of a sluice queue", "malformed", "may never change", "deletes", "not a regular file"),
}


class World:
    """The hub with two built builds of bob's, and raw-object writers on it."""

    def __init__(self, hub, alice, bob) -> None:
        self.hub, self.alice, self.repo = hub, alice, hub.store.repo
        self.base = hub.store.head()
        self.b1, self.b2 = (bob.submit_and_build(name) for name in ("first", "second"))

    # ----------------------------------------------------- raw git objects

    def entries(self, tree: bytes | None) -> dict[bytes, tuple[int, bytes]]:
        if tree is None:
            return {}
        _, data = self.repo.odb.read(tree.hex())
        found, at = {}, 0
        while at < len(data):
            space, nul = data.index(b" ", at), data.index(b"\0", at)
            found[data[space + 1:nul]] = (int(data[at:space], 8), data[nul + 1:nul + 21])
            at = nul + 21
        return found

    def edit(self, tree: bytes | None, parts: list[bytes], entry: tuple[int, bytes] | None) -> bytes:
        """`tree` with the entry at `parts` set to (mode, raw id) or removed,
        written as raw bytes: any name, any mode, git's entry order."""
        entries = self.entries(tree)
        name = parts[0]
        if len(parts) == 1:
            if entry is None:
                entries.pop(name, None)
            else:
                entries[name] = entry
        else:
            mode, sub = entries.get(name, (0, b""))
            entries[name] = (FOLDER, self.edit(sub if mode == FOLDER else None, parts[1:], entry))
        order = sorted(entries, key=lambda n: n + (b"/" if entries[n][0] == FOLDER else b""))
        body = b"".join(b"%o %s\0" % (entries[n][0], n) + entries[n][1] for n in order)
        return self.repo.odb.write(TREE, body).raw

    def commit(self, parent: str, edits: list, who: Person) -> str:
        tree = self.repo[parent].tree.id.raw
        for parts, entry in edits:
            tree = self.edit(tree, parts, entry)
        stamp = f"{who.name} <{who.email}> 1700000000 +0000"
        body = f"tree {tree.hex()}\nparent {parent}\nauthor {stamp}\ncommitter {stamp}\n\ncrafted\n"
        return str(self.repo.odb.write(COMMIT, body.encode()))

    def blob(self, data: bytes) -> bytes:
        return self.repo.odb.write(BLOB, data).raw

    # ----------------------------------------------------- queue content

    def event(self, build_id: str, op: Op, who: Person, reason: str = "") -> tuple[str, bytes]:
        view = self.alice.queue().view(build_id)
        return make_event(view, op, who.email, "c4af7ed0", reason=reason).encode()

    def files(self, build_id: str) -> list[str]:
        snap = self.alice.store.snapshot()
        events = f"{builds.build_dir(build_id)}/events"
        return [builds.record_path(build_id), *(f"{events}/{n}" for n in snap.list(events))]

    def read(self, path: str) -> bytes:
        return self.alice.store.snapshot().read(path)


def split(path: str) -> list[bytes]:
    return [p.encode() for p in path.split("/")]


def craft(world: World, data, kind: str) -> tuple[list, Person]:
    """The edits of one hostile commit of `kind`, and its author."""
    b1 = world.b1
    hold_id, hold = world.event(b1, Op.HOLD, BOB, data.draw(st.from_regex(r"[\w ]{0,20}", fullmatch=True)))
    if kind == "modify":
        path = data.draw(st.sampled_from(world.files(b1)))
        body = bytearray(world.read(path))
        body[data.draw(st.integers(0, len(body) - 1))] ^= data.draw(st.integers(1, 255))
        return [(split(path), (FILE, world.blob(bytes(body))))], BOB
    if kind == "delete":
        path = data.draw(st.sampled_from([*world.files(b1), builds.build_dir(b1), "config/policy.toml",
                                          "config/targets/default.toml"]))
        return [(split(path), None)], ALICE
    if kind == "unknown":
        other = data.draw(st.text("0123456789abcdef", min_size=40, max_size=40))
        return [(split(builds.event_path(other, hold_id)), (FILE, world.blob(hold)))], BOB
    folder = data.draw(st.sampled_from(["", "builds", f"builds/{b1[:2]}", builds.build_dir(b1),
                                        f"{builds.build_dir(b1)}/events", "config", "config/targets"]))
    at = split(folder) if folder else []
    if kind == "odd":
        name = data.draw(st.sampled_from(ODD) | st.binary(min_size=1, max_size=12).filter(lambda n: b"\0" not in n))
        return [([*at, name], (FILE, world.blob(hold)))], BOB
    if kind == "outside":
        name = data.draw(st.from_regex(r"[a-z0-9_-]{1,12}\.txt", fullmatch=True))
        return [([*at, name.encode()], (FILE, world.blob(b"x")))], BOB
    if kind == "huge":
        which = data.draw(st.sampled_from(["event", "record", "policy"]))
        if which == "policy":
            body = world.read("config/policy.toml") + b"#" * (1 << 20)
            return [(split("config/policy.toml"), (FILE, world.blob(body)))], ALICE
        path = builds.event_path(b1, hold_id) if which == "event" else builds.record_path(secrets.token_hex(20))
        return [(split(path), (FILE, world.blob(hold + b" " * (1 << 18))))], BOB
    if kind == "mode":
        mode = data.draw(st.sampled_from(MODES))
        target = secrets.token_bytes(20) if mode == 0o160000 else world.blob(hold)
        return [(split(builds.event_path(b1, hold_id)), (mode, target))], BOB
    if kind in ("actor", "spoof"):
        event_id, body = world.event(b1, Op.APPROVE, MALLORY if kind == "actor" else BOB)
        return [(split(builds.event_path(b1, event_id)), (FILE, world.blob(body)))], MALLORY
    if kind == "two":
        other_id, other = world.event(b1, Op.WITHDRAW, BOB, "two at once")
        return [(split(builds.event_path(b1, hold_id)), (FILE, world.blob(hold))),
                (split(builds.event_path(b1, other_id)), (FILE, world.blob(other)))], BOB
    assert kind == "replay"
    old = json.loads(world.read(world.files(b1)[-1]))
    name = f"{old['lamport'] + data.draw(st.integers(1, 5)):08d}-{old['replica']}-00000000"
    return [(split(builds.event_path(b1, name)), (FILE, world.blob(world.read(world.files(b1)[-1]))))], BOB


@pytest.fixture
def world(hub, make_srpm):  # noqa: F811
    hub_clone, alice, bob = hub

    def submit_and_build(name: str) -> str:
        build = bob.submit(make_srpm(name), who=BOB)
        bob.built(build)
        return build
    bob.submit_and_build = submit_and_build
    found = World(hub_clone, alice, bob)
    syncer(bob, BOB).sync(str(hub_clone.path))
    syncer(alice).sync(str(hub_clone.path))
    found.base = hub_clone.store.head()
    Index(alice.store).refresh()
    return found


def alice_sees(world: World) -> tuple:
    refs = sorted((r, str(world.alice.store.repo.references[r].target))
                  for r in world.alice.store.repo.references if not r.startswith("refs/remotes/"))
    return world.alice.store.head(), Index(world.alice.store).indexed(), refs


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data())
def test_any_crafted_commit_is_refused_and_nothing_is_merged(world, sluice, data):
    kind = data.draw(st.sampled_from(sorted(WHY)), label="kind")
    before, files = alice_sees(world), tree_files(world.alice.store)
    tip = world.base
    if data.draw(st.booleans(), label="a valid commit first"):
        hold_id, hold = world.event(world.b2, Op.HOLD, BOB, "fine")
        tip = world.commit(tip, [(split(builds.event_path(world.b2, hold_id)), (FILE, world.blob(hold)))], BOB)
    edits, who = craft(world, data, kind)
    tip = world.commit(tip, edits, who)
    if data.draw(st.booleans(), label="a valid-looking commit after it"):
        other_id, other = world.event(world.b2, Op.WITHDRAW, BOB, "after")
        tip = world.commit(tip, [(split(builds.event_path(world.b2, other_id)), (FILE, world.blob(other)))], BOB)
    world.repo.references["refs/sluice/state"].set_target(tip)
    try:
        result = sluice("sync", str(world.hub.path), user=ALICE, repo_path=str(world.alice.path))
    finally:
        world.repo.references["refs/sluice/state"].set_target(world.base)
    if kind == "mode" and FOLDER in [entry[0] for _, entry in edits]:
        # A folder's mode on a file's id: the hub's own git cannot send it
        # (`pack-objects` reads it as a tree), so the fetch fails (exit 1).
        assert result.code == 1 and "cannot fetch" in result.err and "corruption" in result.err, result.err
    else:
        assert result.code == 3, (kind, result.err)
        assert "nothing was merged" in result.err
        assert any(word in result.err for word in WHY[kind]), (kind, result.err)
    assert "Traceback" not in result.err
    assert alice_sees(world) == before
    assert tree_files(world.alice.store) == files


def test_the_harness_merges_a_valid_crafted_commit(world, sluice):
    """The fuzz above can fail: the same raw writer's valid commit is merged."""
    hold_id, hold = world.event(world.b2, Op.HOLD, BOB, "fine")
    path = builds.event_path(world.b2, hold_id)
    tip = world.commit(world.base, [(split(path), (FILE, world.blob(hold)))], BOB)
    world.repo.references["refs/sluice/state"].set_target(tip)
    result = sluice("sync", str(world.hub.path), user=ALICE, repo_path=str(world.alice.path))
    assert result.code == 0, result.err
    assert world.alice.store.head() == tip and world.alice.store.snapshot().read(path) == hold


def test_a_whole_path_as_one_tree_entry_name_is_refused(world, sluice):
    """A tree entry named `builds/ab/<id>/events/<event>.json` (one name, with
    slashes) reads in `git log --raw` exactly like the real path. Before sync
    had git fsck what it fetches, a valid event written so passed the checks
    and was merged into a tree that neither sluice's readers nor `git fsck`
    accept."""
    hold_id, hold = world.event(world.b1, Op.HOLD, BOB, "hidden")
    name = builds.event_path(world.b1, hold_id).encode()
    world.repo.references["refs/sluice/state"].set_target(world.commit(world.base, [([name], (FILE, world.blob(hold)))],
                                                                       BOB))
    before = alice_sees(world)
    result = sluice("sync", str(world.hub.path), user=ALICE, repo_path=str(world.alice.path))
    assert result.code == 3 and "fullPathname" in result.err, result.err
    assert alice_sees(world) == before
