"""The two tree diffs sluice relies on, checked against libgit2's own diff
(slow on wide trees, but exact): `diff_trees` (index catch-up, union,
merge audit) and the one `git log --raw` walk that sync reads every
incoming commit's changes from, including paths crafted to look like
the log's own records."""
from __future__ import annotations

import subprocess

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.gitstore import GitStateStore
from backends.base import BackendError, FileChange
from backends.gitcli import RawLogReader, git_command
from backends.gitsync import GitMerger
from backends.gittree import diff_trees

BLOB = int(pygit2.enums.FileMode.BLOB)
EXEC = int(pygit2.enums.FileMode.BLOB_EXECUTABLE)
LINK = int(pygit2.enums.FileMode.LINK)
TREE = pygit2.enums.FileMode.TREE

_names = st.sampled_from(["a", "b", "builds", "ev", "x.json", "z"])
_paths = st.lists(_names, min_size=1, max_size=4).map("/".join)
_files = st.dictionaries(_paths, st.tuples(st.sampled_from([b"1", b"2", b"3"]), st.sampled_from([BLOB, EXEC, LINK])),
                         max_size=12)


def _tree(repo: pygit2.Repository, files: dict[str, tuple[bytes, int]]) -> pygit2.Oid:
    """A tree holding `files`; a path that is also a folder of another keeps the folder.
    Deliberately not sluice's `write_tree`: the inputs must not be built by the
    code under test, and they need executable and symlink modes it never writes."""
    here: dict[str, tuple[bytes, int]] = {}
    below: dict[str, dict] = {}
    for path, value in files.items():
        head, _, rest = path.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = value
        else:
            here[head] = value
    builder = repo.TreeBuilder()
    for name, (data, mode) in here.items():
        if name not in below:
            builder.insert(name, repo.create_blob(data), mode)
    for name, sub in below.items():
        builder.insert(name, _tree(repo, sub), TREE)
    return builder.write()


def _libgit2(repo, old, new) -> set[tuple[str, str | None, str | None, int]]:
    """libgit2's diff as (path, old blob, new blob, mode). It splits a file
    that became a symlink into a deletion and an addition; git's raw diff
    (and sluice's) shows one change with the new mode: join such pairs."""
    gone, came, found = {}, {}, set()
    for d in repo[old].diff_to_tree(repo[new]).deltas:
        if d.status == pygit2.enums.DeltaStatus.DELETED:
            gone[d.old_file.path] = (str(d.old_file.id), int(d.old_file.mode))
        elif d.status == pygit2.enums.DeltaStatus.ADDED:
            came[d.new_file.path] = (str(d.new_file.id), int(d.new_file.mode))
        else:
            found.add((d.new_file.path, str(d.old_file.id), str(d.new_file.id), int(d.new_file.mode)))
    for path in gone.keys() & came.keys():
        found.add((path, gone.pop(path)[0], *came.pop(path)))
    found |= {(path, blob, None, mode) for path, (blob, mode) in gone.items()}
    found |= {(path, None, blob, mode) for path, (blob, mode) in came.items()}
    return found


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return pygit2.init_repository(str(tmp_path_factory.mktemp("diff") / "r.git"), bare=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=_files, new=_files)
def test_diff_trees_matches_libgit2(repo, old, new):
    a, b = _tree(repo, old), _tree(repo, new)
    ours = {(d.path, d.old, d.new, d.mode) for d in diff_trees(repo[a], repo[b])}
    assert ours == _libgit2(repo, a, b)


def test_diff_trees_sees_a_mode_change_beside_a_content_change(repo):
    a = _tree(repo, {"d/one": (b"1", BLOB), "d/two": (b"2", BLOB)})
    b = _tree(repo, {"d/one": (b"1", EXEC), "d/two": (b"3", BLOB)})
    paths = {d.path: d.mode for d in diff_trees(repo[a], repo[b])}
    assert paths == {"d/one": EXEC, "d/two": BLOB}


def _commit(repo, tree, parents, n):
    sig = pygit2.Signature("t", "t@example.org", 1_700_000_000 + n, 0)
    return repo.create_commit(None, sig, sig, f"c{n}", tree, parents)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(states=st.lists(_files, min_size=1, max_size=5))
def test_incoming_walk_matches_libgit2_commit_by_commit(repo, states):
    parents, commits = [], []
    for n, files in enumerate(states):
        commit = _commit(repo, _tree(repo, files), parents, n)
        commits.append(commit)
        parents = [commit]
    store = GitStateStore(repo)
    walked = list(GitMerger(store).incoming(str(commits[-1]), None))
    assert [w.info.id for w in walked] == [str(c) for c in commits]
    for n, incoming in enumerate(walked):
        old = repo[commits[n - 1]].tree.id if n else _tree(repo, {})
        expected = _libgit2(repo, old, repo[commits[n]].tree.id)
        assert {(c.path, c.old, c.new, c.mode) for c in incoming.changes} == expected


def test_crafted_paths_cannot_pass_for_records_or_commits(repo):
    """Names holding the log's separators stay names: a fake commit header,
    a fake status record and a newline are read as parts of one path."""
    fake_commit = "\x01" + "ab" * 20
    fake_record = ":000000 100644 " + "0" * 40 + " " + "1" * 40 + " A"
    names = [fake_commit, fake_record, "line\nbreak", "\x01", ":"]
    tree = _tree(repo, {f"builds/{name}": (b"1", BLOB) for name in names})
    head = _commit(repo, tree, [], 99)
    walked = list(GitMerger(GitStateStore(repo)).incoming(str(head), None))
    assert len(walked) == 1
    assert sorted(c.path for c in walked[0].changes) == sorted(f"builds/{name}" for name in names)


def parse_raw_log(out: bytes) -> list[tuple[str, list[FileChange]]]:
    reader = RawLogReader()
    return reader.feed(out) + reader.close()


def test_the_log_reader_refuses_what_it_cannot_read():
    with pytest.raises(BackendError, match="cannot read"):
        parse_raw_log(b"\x01" + b"a" * 40 + b"\0garbage\0path\0")


def test_the_log_reads_the_same_in_any_chunks(repo):
    """The walk reads git's output as it streams; where the chunks end must not matter."""
    names = ["\x01" + "cd" * 20, ":000000 100644 x A", "plain.json"]
    first = _commit(repo, _tree(repo, {f"d/{n}": (b"1", BLOB) for n in names}), [], 200)
    second = _commit(repo, _tree(repo, {f"d/{n}": (b"2", EXEC) for n in names}), [first], 201)
    out = subprocess.run(git_command(repo, "log", "--raw", "-r", "-z", "--no-renames", "--no-abbrev", "--root",
                                     "--reverse", "--format=%x01%H", str(second)),
                         capture_output=True, check=True).stdout
    whole = parse_raw_log(out)
    assert [c for c, _ in whole] == [str(first), str(second)]
    for size in (1, 7, 41, 64):
        reader = RawLogReader()
        pieces = [out[i:i + size] for i in range(0, len(out), size)]
        assert [done for piece in pieces for done in reader.feed(piece)] + reader.close() == whole
