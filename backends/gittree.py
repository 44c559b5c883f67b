"""Reading and writing nested git trees with pygit2.

One function writes every tree sluice makes (a single event, a submit, a merge
of ten thousand events): it rebuilds only the directories on the changed
paths and reuses every other subtree by id.
"""
from __future__ import annotations

from typing import Mapping

import pygit2

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def write_tree(repo: pygit2.Repository, base: pygit2.Tree | None,
               blobs: Mapping[str, pygit2.Oid]) -> pygit2.Oid:
    """Return the id of `base` with each path in `blobs` set to that blob."""
    here: dict[str, pygit2.Oid] = {}
    below: dict[str, dict[str, pygit2.Oid]] = {}
    for path, oid in blobs.items():
        head, _, rest = path.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = oid
        else:
            here[head] = oid
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    for name, oid in here.items():
        builder.insert(name, oid, pygit2.enums.FileMode.BLOB)
    for name, sub in below.items():
        existing = _subtree(base, name)
        builder.insert(name, write_tree(repo, existing, sub), pygit2.enums.FileMode.TREE)
    return builder.write()


def _subtree(tree: pygit2.Tree | None, name: str) -> pygit2.Tree | None:
    if tree is None:
        return None
    try:
        obj = tree[name]
    except KeyError:
        return None
    return obj if isinstance(obj, pygit2.Tree) else None


class GitSnapshot:
    """A read-only view of one commit's tree (or of an empty state)."""

    __slots__ = ("repo", "commit", "tree")

    def __init__(self, repo: pygit2.Repository, commit: str | None) -> None:
        self.repo = repo
        self.commit = commit
        self.tree: pygit2.Tree | None = repo[commit].tree if commit else None

    def _get(self, path: str) -> pygit2.Object | None:
        if self.tree is None:
            return None
        try:
            return self.tree[path]
        except KeyError:
            return None

    def read(self, path: str) -> bytes | None:
        obj = self._get(path)
        return obj.data if isinstance(obj, pygit2.Blob) else None

    def list(self, path: str) -> list[str]:
        obj = self.tree if path in ("", ".") else self._get(path)
        return [entry.name for entry in obj] if isinstance(obj, pygit2.Tree) else []

    def entries(self, path: str) -> list[tuple[str, str]]:
        """(name, object id) of each entry in the directory at `path`."""
        obj = self.tree if path in ("", ".") else self._get(path)
        return [(entry.name, str(entry.id)) for entry in obj] if isinstance(obj, pygit2.Tree) else []

    def object_id(self, path: str) -> str | None:
        """The id of the blob or tree at `path`, for caches keyed by content."""
        obj = self.tree if path in ("", ".") else self._get(path)
        return str(obj.id) if obj is not None else None
