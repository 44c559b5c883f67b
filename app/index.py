"""A disposable SQLite cache of every build's folded summary.

It lives beside the repo (`<gitdir>/sluice/index.sqlite`, WAL) and remembers
the commit it was built from. `refresh` catches up by diffing that commit's
tree against the new one and refolding only the builds whose files changed;
when the indexed commit is not an ancestor (history was replaced) or the schema
changed, it is rebuilt from the tree. Deleting the file loses nothing.
Listing reads only this cache, never git history.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Sequence

from app import builds, tasks
from app.errors import BadInput
from app.lifecycle import BuildView, extend, follows, resume
from app.model import State, canonical
from backends.base import FileChange, Snapshot, StateStore

SCHEMA = "6"
_COLUMNS = ("id", "package", "nvr", "owner", "target", "state", "batch", "scratch", "contested",
            "created", "updated", "summary")
_TABLES = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS problems (id TEXT PRIMARY KEY, message TEXT);
CREATE TABLE IF NOT EXISTS builds ({', '.join(_COLUMNS)}, PRIMARY KEY (created, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS folds (id TEXT PRIMARY KEY, fold TEXT);
CREATE TABLE IF NOT EXISTS uses (dep TEXT, user TEXT, arch TEXT, PRIMARY KEY (dep, user, arch)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS builds_id ON builds (id);
CREATE INDEX IF NOT EXISTS builds_state ON builds (state);
CREATE INDEX IF NOT EXISTS builds_owner ON builds (owner);
CREATE INDEX IF NOT EXISTS builds_package ON builds (package);
CREATE INDEX IF NOT EXISTS builds_batch ON builds (batch);
CREATE INDEX IF NOT EXISTS builds_nvr ON builds (target, nvr);
"""


@dataclass(frozen=True)
class Filters:
    states: Sequence[str] = ()
    owner: str | None = None
    package: str | None = None  # a glob
    target: str | None = None
    batch: str | None = None
    limit: int | None = None

    def sql(self) -> tuple[str, list]:
        where, args = [], []
        if self.states:
            where.append(f"state IN ({','.join('?' * len(self.states))})")
            args += list(self.states)
        for column, value in (("owner", self.owner), ("target", self.target), ("batch", self.batch)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if self.package:
            where.append("package GLOB ?")
            args.append(self.package)
        text = (" WHERE " + " AND ".join(where)) if where else ""
        text += " ORDER BY created DESC, id DESC"
        if self.limit:
            text += " LIMIT ?"
            args.append(self.limit)
        return text, args


class Index:
    def __init__(self, store: StateStore, path: str | None = None) -> None:
        self.store = store
        self.path = path or os.path.join(store.index_dir(), "index.sqlite")
        self._db: sqlite3.Connection | None = None

    # ------------------------------------------------------------ upkeep

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_TABLES)
            if self._meta(db, "schema") != SCHEMA:
                db.executescript("DROP TABLE IF EXISTS builds; DROP TABLE IF EXISTS folds; DROP TABLE IF EXISTS uses; "
                                 "DELETE FROM meta; DELETE FROM problems;" + _TABLES)
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
            self._db = db
        return self._db

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def indexed(self) -> str | None:
        return self._meta(self.db, "commit")

    def refresh(self, snap: Snapshot | None = None) -> str | None:
        """Bring the cache up to `snap` (default: the ref's head); returns the
        commit it now reflects."""
        target = snap.commit if snap is not None else self.store.head()
        current = self.indexed()
        if self._holds(current, target, snap):
            return current
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            current = self.indexed()  # another process may have moved it meanwhile
            if self._holds(current, target, snap):
                target = current
            else:
                snap = snap if snap is not None else self.store.snapshot(target)
                changes = self.store.changes(current, target) if current and target else None
                if changes is None:
                    db.execute("DELETE FROM builds")
                    db.execute("DELETE FROM folds")
                    db.execute("DELETE FROM uses")
                    db.execute("DELETE FROM problems")
                    self._store(snap, builds.build_ids(snap))
                else:
                    self._catch_up(snap, changes)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('commit', ?)", (target,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return target

    def _holds(self, current: str | None, target: str | None, snap: Snapshot | None) -> bool:
        """Whether the index already answers for `target`: it is there, or (for
        a writer's snapshot from before someone's later refresh) past it."""
        if current == target:
            return True
        return snap is not None and bool(current and target) and self.store.is_ancestor(target, current)

    def _catch_up(self, snap: Snapshot, changes: Iterable[FileChange]) -> None:
        """Refold the builds whose files changed. A build whose only changes
        are new events that follow its indexed fold (the usual case) is
        extended from the fold kept in `folds`, decoding only the new event
        files; any other build is read and folded whole."""
        added: dict[str, list[tuple[str, str]]] = {}
        whole: set[str] = set()
        for change in changes:
            parts = change.path.split("/")
            if len(parts) < 4 or parts[0] != builds.BUILDS:
                continue
            if len(parts) == 5 and parts[3] == "events" and change.old is None and change.new is not None:
                added.setdefault(parts[2], []).append((parts[4], change.new))
            else:
                whole.add(parts[2])
        rows = []
        for build_id, files in added.items():
            view = None if build_id in whole else self._extended(snap, build_id, files)
            if view is None:
                whole.add(build_id)
            else:
                rows.append(_rows(view))
        self._upsert(rows)
        self._store(snap, whole)

    def _extended(self, snap: Snapshot, build_id: str, files: list[tuple[str, str]]) -> BuildView | None:
        """The build's indexed fold extended by the new event `files`, or None
        when that cannot be done exactly (the caller then folds it whole)."""
        row = self.db.execute("SELECT summary, fold FROM builds JOIN folds USING (id) WHERE id = ?",
                              (build_id,)).fetchone()
        if row is None:
            return None
        summary, kept = json.loads(row[0]), json.loads(row[1])
        if summary["contested"] or kept["last"] is None:
            return None
        try:
            record = builds.load_record(snap, build_id)
            events = [builds.load_event(snap, build_id, name, blob) for name, blob in files]
        except BadInput:
            return None
        if record is None or None in events:
            return None
        view = resume(record, State(summary["state"]), tuple(kept["heads"]),
                      {arch: State(state) for arch, state in summary["arches"].items()},
                      State(kept["hold"]) if kept["hold"] else None, summary["updated"], tuple(kept["last"]))
        for stored in sorted(events, key=lambda e: e.key):
            if not follows(view, stored):
                return None
            view = extend(view, record, stored)
        return view

    def _store(self, snap: Snapshot, ids: Iterable[str]) -> None:
        rows = []
        for build_id in ids:
            try:
                rows.append(_rows(builds.load_build(snap, build_id)))
            except BadInput as exc:  # listed as a problem, no longer as the state it had
                self.db.execute("INSERT OR REPLACE INTO problems VALUES (?, ?)",
                                (build_id, f"build {build_id[:7]} cannot be read: {exc}"))
                self.db.execute("DELETE FROM builds WHERE id = ?", (build_id,))
                self.db.execute("DELETE FROM folds WHERE id = ?", (build_id,))
                continue
            if len(rows) >= 2000:
                self._upsert(rows)
                rows = []
        self._upsert(rows)

    def _upsert(self, rows: list[tuple[tuple, tuple, list[tuple]]]) -> None:
        """(listing row, kept fold) pairs from `_rows`. The fold has a table of
        its own, so that listing scans only what it shows."""
        marks = ",".join("?" * len(_COLUMNS))
        self.db.executemany(f"INSERT OR REPLACE INTO builds VALUES ({marks})", [row for row, _, _ in rows])
        self.db.executemany("INSERT OR REPLACE INTO folds VALUES (?, ?)", [fold for _, fold, _ in rows])
        self.db.executemany("INSERT OR IGNORE INTO uses VALUES (?, ?, ?)", [u for _, _, uses in rows for u in uses])
        self.db.executemany("DELETE FROM problems WHERE id = ?", [(row[0],) for row, _, _ in rows])

    @property
    def problems(self) -> list[str]:
        """Builds whose files cannot be read (kept until they can)."""
        return [row[0] for row in self.db.execute("SELECT message FROM problems ORDER BY id")]

    # ------------------------------------------------------------ queries

    def summaries_json(self, filters: Filters = Filters()) -> bytes:
        """The `list --json` document (UTF-8), joined from pre-rendered rows.
        The table is stored in listing order (its key is (created, id)), so the
        newest-first listing is one sequential scan; summaries are stored as
        UTF-8 bytes and never decoded: 100k builds are 31 MB of JSON."""
        where, args = filters.sql()
        rows = self.db.execute(f"SELECT summary FROM builds{where}", args).fetchall()
        return b"[" + b",".join(row[0] for row in rows) + b"]"

    def rows(self, filters: Filters = Filters()) -> list[dict]:
        where, args = filters.sql()
        cursor = self.db.execute(f"SELECT {', '.join(_COLUMNS)} FROM builds{where}", args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def batch(self, name: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM builds WHERE batch = ? ORDER BY created, id", (name,))]

    def same_nvr(self, target: str, nvr: str) -> list[tuple[str, str]]:
        return list(self.db.execute(
            "SELECT id, state FROM builds WHERE target = ? AND nvr = ? AND scratch = 0", (target, nvr)))

    def used_by(self, build_id: str) -> list[tuple[str, str]]:
        """(build id, arch) of every task that started with `build_id` in its
        buildroot repo: who to tell when it is withdrawn."""
        return list(self.db.execute("SELECT user, arch FROM uses WHERE dep = ? ORDER BY user, arch", (build_id,)))

    def rivals(self, unsigned: Sequence[str], approved: Sequence[str]) -> list[tuple[str, str]]:
        """(target, package) pairs with an unsigned build and an approved one
        (not scratch): where a supersede may be due."""
        marks_u, marks_a = ",".join("?" * len(unsigned)), ",".join("?" * len(approved))
        return list(self.db.execute(
            f"SELECT target, package FROM builds WHERE scratch = 0 GROUP BY target, package "
            f"HAVING sum(state IN ({marks_u})) > 0 AND sum(state IN ({marks_a})) > 0 AND count(*) > 1",
            (*unsigned, *approved)))

    def of_package(self, target: str, package: str, states: Sequence[str]) -> list[str]:
        """The builds of `package` for `target` in one of `states`, oldest first."""
        marks = ",".join("?" * len(states))
        return [r[0] for r in self.db.execute(
            f"SELECT id FROM builds WHERE target = ? AND package = ? AND state IN ({marks}) ORDER BY created, id",
            (target, package, *states))]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM builds").fetchone()[0]

    def states(self) -> dict[str, int]:
        """How many builds are in each state, most first."""
        return dict(self.db.execute("SELECT state, count(*) AS n FROM builds GROUP BY state ORDER BY n DESC"))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _rows(view: BuildView) -> tuple[tuple, tuple, list[tuple]]:
    """The build's listing row, its kept fold (what `_extended` resumes from)
    and the buildroot uses its (new) start events record. Events are never
    removed, so uses only ever grow and a resumed view's new events suffice."""
    r = view.record
    summary = view.summary()
    kept = {"heads": list(view.heads), "last": list(view.last) if view.last else None,
            "hold": str(view.before_hold) if view.before_hold else None}
    return ((r.id, r.package, r.nvr, r.owner, r.target, str(view.state), r.batch, int(r.scratch),
             int(view.contested), r.created, summary["updated"], canonical(summary).rstrip(b"\n")),
            (r.id, json.dumps(kept)),
            [(dep, r.id, arch) for arch, dep in sorted(tasks.buildroot_uses(view))])
