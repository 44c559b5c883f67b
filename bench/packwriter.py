"""Writing git packs (and their .idx) straight from Python, for the fixture.

`git fast-import` rebuilds and re-sorts every tree on a commit's path, twice
(old and new, to delta them): on a 100k-build state tree that is ~650 entries a
commit and caps it near 2,500 commits/s. The fixture knows more than
fast-import does: every entry of a shard tree (`builds/ab/`) and of `builds/`
has the same length, so the new version differs from the old by one entry at a
known offset. The delta against the previous version is then three
instructions (copy, insert, copy) made without looking at the data, and only
the hash needs the whole tree.

Blobs (hashing and deflating the event bodies) are written by the caller's
process and trees and commits by a forked child (`SplitHistory`), so the two
halves of the work run on two cores. The result is two ordinary packs v2 with OFS_DELTA chains capped at `DEPTH`, and
an idx v2; `git fsck` and `git verify-pack` accept it (bench/README.md says how
to check).
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import struct
import sys
import zlib
from bisect import bisect_left
from array import array
from pathlib import Path

COMMIT, TREE, BLOB, OFS_DELTA = 1, 2, 3, 6
_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}
DEPTH = 50
# zlib levels: commits and blobs (text) at 1, as they read like any repo's;
# small trees and tree deltas (mostly raw ids, barely compressible) stored at 0.
LEVELS = {COMMIT: 1, BLOB: 1, TREE: 0}


def deflate(body: bytes, level: int) -> bytes:
    """zlib with a small window for small objects: `zlib.compress` sets up (and
    clears) 256 KiB of state per call, ~90 us, which would dominate the writer.
    Level 0 is written by hand (stored blocks), which is cheaper still."""
    if level == 0 and len(body) < 0x10000:
        n = len(body)
        return b"\x78\x01\x01" + struct.pack("<HH", n, n ^ 0xFFFF) + body + struct.pack(">I", zlib.adler32(body))
    small = len(body) < 8192
    c = zlib.compressobj(level, zlib.DEFLATED, 12 if small else 15, 4 if small else 8)
    return c.compress(body) + c.flush()


def _header(kind: int, size: int) -> bytes:
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _ofs(distance: int) -> bytes:
    out = [distance & 0x7F]
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))


def _copy(offset: int, size: int) -> bytes:
    out = bytearray()
    while size > 0:
        chunk = min(size, 0x10000)
        op, args = 0x80, bytearray()
        for i in range(4):
            byte = (offset >> (8 * i)) & 0xFF
            if byte:
                op |= 1 << i
                args.append(byte)
        if chunk != 0x10000:
            for i in range(3):
                byte = (chunk >> (8 * i)) & 0xFF
                if byte:
                    op |= 1 << (4 + i)
                    args.append(byte)
        out.append(op)
        out += args
        offset += chunk
        size -= chunk
    return bytes(out)


def splice_delta(source_size: int, target_size: int, at: int, cut: int, insert: bytes) -> bytes:
    """The delta that turns source into target = source[:at] + insert + source[at + cut:]."""
    out = bytearray(_varint(source_size) + _varint(target_size))
    if at:
        out += _copy(0, at)
    for i in range(0, len(insert), 127):
        piece = insert[i:i + 127]
        out.append(len(piece))
        out += piece
    rest = source_size - at - cut
    if rest:
        out += _copy(at + cut, rest)
    return bytes(out)


class PackWriter:
    """Append objects to `objects/pack/` of a repo; `close()` writes the idx."""

    def __init__(self, git_dir: str | Path) -> None:
        self.dir = Path(git_dir) / "objects" / "pack"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = self.dir / f"tmp-fixture-{os.getpid()}.pack"
        self.file = open(self.tmp, "wb", buffering=1 << 22)
        self.file.write(b"PACK" + struct.pack(">II", 2, 0))  # the count is patched in close()
        self.offset = 12
        self.shas = bytearray()
        self.offsets = array("Q")
        self.crcs = array("I")

    @staticmethod
    def name(kind: int, data: bytes) -> bytes:
        return hashlib.sha1(b"%s %d\x00" % (_NAMES[kind], len(data)) + data).digest()

    def _write(self, sha: bytes, head: bytes, body: bytes, level: int) -> int:
        at = self.offset
        packed = head + deflate(body, level)
        self.file.write(packed)
        self.offset += len(packed)
        self.shas += sha
        self.offsets.append(at)
        self.crcs.append(zlib.crc32(packed))
        return at

    def add(self, kind: int, data: bytes, sha: bytes | None = None) -> tuple[bytes, int]:
        """Store a whole object; returns (sha, offset)."""
        sha = sha or self.name(kind, data)
        return sha, self._write(sha, _header(kind, len(data)), data, LEVELS[kind] if len(data) < 8192 else 1)

    def add_delta(self, sha: bytes, base_offset: int, delta: bytes) -> int:
        """Store an object as a delta on the object at `base_offset`; returns its offset."""
        return self._write(sha, _header(OFS_DELTA, len(delta)) + _ofs(self.offset - base_offset), delta, 0)

    def close(self) -> Path:
        count = len(self.offsets)
        self.file.close()
        with open(self.tmp, "r+b") as f:
            f.seek(8)
            f.write(struct.pack(">I", count))
            f.seek(0)
            digest = hashlib.sha1()
            while chunk := f.read(1 << 24):
                digest.update(chunk)
            pack_sha = digest.digest()
            f.seek(0, 2)
            f.write(pack_sha)
        final = self.dir / f"pack-{pack_sha.hex()}.pack"
        self._write_idx(final.with_suffix(".idx"), pack_sha)
        os.rename(self.tmp, final)
        return final

    def _write_idx(self, path: Path, pack_sha: bytes) -> None:
        names = [bytes(self.shas[i:i + 20]) for i in range(0, len(self.shas), 20)]
        order = sorted(range(len(names)), key=names.__getitem__)
        fanout = [0] * 256
        for name in names:
            fanout[name[0]] += 1
        total, cumulative = 0, []
        for n in fanout:
            total += n
            cumulative.append(total)
        offsets = [self.offsets[i] for i in order]
        large = array("Q", (o for o in offsets if o >= 0x80000000))  # idx v2: 8-byte offsets past 2 GiB
        big = 0
        small = array("I")
        for offset in offsets:
            if offset < 0x80000000:
                small.append(offset)
            else:
                small.append(0x80000000 | big)
                big += 1
        crcs = array("I", [self.crcs[i] for i in order])
        for table in (small, large, crcs):
            if table.itemsize > 1 and sys.byteorder == "little":
                table.byteswap()
        body = bytearray(b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *cumulative))
        body += b"".join(names[i] for i in order)
        body += crcs.tobytes() + small.tobytes() + large.tobytes() + pack_sha
        body += hashlib.sha1(body).digest()
        tmp = path.with_suffix(".idx.tmp")
        tmp.write_bytes(body)
        os.rename(tmp, path)


FILE, DIR = b"100644", b"40000"


class Tree:
    """One directory of the tree being written, with its last stored version
    (so that a one-entry change can be stored as a splice delta)."""

    __slots__ = ("keys", "entries", "sha", "offset", "size", "depth", "changes", "splice")

    def __init__(self) -> None:
        self.keys: list[bytes] = []  # git's order: a directory sorts as "name/"
        self.entries: list[bytes] = []
        self.sha: bytes | None = None
        self.offset: int | None = None
        self.size = self.depth = self.changes = 0
        self.splice: tuple[int, int, bytes] | None = None

    def set(self, name: bytes, mode: bytes, sha: bytes) -> None:
        key = name + b"/" if mode == DIR else name
        entry = mode + b" " + name + b"\0" + sha
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            cut = len(self.entries[i])
            self.entries[i] = entry
        else:
            cut = 0
            self.keys.insert(i, key)
            self.entries.insert(i, entry)
        self.changes += 1
        if self.changes == 1 and self.offset is not None:
            self.splice = (sum(map(len, self.entries[:i])), cut, entry)

    def write(self, pack: PackWriter) -> bytes:
        data = b"".join(self.entries)
        sha = hashlib.sha1(b"tree %d\x00" % len(data))
        sha.update(data)
        sha = sha.digest()
        if self.changes == 1 and self.splice and self.depth < DEPTH and len(data) > 1024:
            at, cut, entry = self.splice
            self.offset = pack.add_delta(sha, self.offset, splice_delta(self.size, len(data), at, cut, entry))
            self.depth += 1
        else:
            _, self.offset = pack.add(TREE, data, sha)
            self.depth = 0
        self.sha, self.size, self.changes, self.splice = sha, len(data), 0, None
        return sha


class PackHistory:
    """A linear history of commits written into one pack (see the module doc)."""

    def __init__(self, git_dir: str | Path) -> None:
        self.git_dir = Path(git_dir)
        self.pack = PackWriter(git_dir)
        self.trees: dict[str, Tree] = {"": Tree()}
        self.head: bytes | None = None

    def _tree(self, path: str) -> Tree:
        tree = self.trees.get(path)
        if tree is None:
            tree = self.trees[path] = Tree()
        return tree

    def commit(self, author: bytes, committer: bytes, message: bytes,
               files: list[tuple[str, bytes]]) -> bytes:
        """`author`/`committer` are whole signature lines ("Name <email> secs +0000");
        `files` are (path, blob id) of blobs already stored (in any pack)."""
        dirty = {""}
        for path, sha in files:
            folder, _, name = path.rpartition("/")
            self._tree(folder).set(name.encode(), FILE, sha)
            while folder:
                dirty.add(folder)
                folder = folder.rpartition("/")[0]
        for folder in sorted(dirty, key=len, reverse=True):  # a child's path is longer than its parent's
            sha = self.trees[folder].write(self.pack)
            if folder:
                parent, _, name = folder.rpartition("/")
                self._tree(parent).set(name.encode(), DIR, sha)
        lines = [b"tree " + self.trees[""].sha.hex().encode()]
        if self.head is not None:
            lines.append(b"parent " + self.head.hex().encode())
        lines += [b"author " + author, b"committer " + committer]
        self.head, _ = self.pack.add(COMMIT, b"\n".join(lines) + b"\n\n" + message)
        return self.head

    def forget(self, *folders: str) -> None:
        """Drop finished subtrees' bookkeeping (their ids stay in their parents)."""
        for folder in folders:
            self.trees.pop(folder, None)

    def close(self, ref: str) -> str:
        self.pack.close()
        head = self.head.hex()
        path = self.git_dir / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + "\n")
        return head


class SplitHistory:
    """`PackHistory` in a forked child, fed in batches; blobs are hashed,
    deflated and stored here meanwhile, into a pack of their own."""

    BATCH = 2000

    def __init__(self, git_dir: str | Path, ref: str) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_tree_side, args=(str(git_dir), ref, child), daemon=True)
        self.proc.start()
        child.close()
        self.blobs = PackWriter(git_dir)
        self.batch: list[tuple] = []

    def commit(self, author: bytes, committer: bytes, message: bytes, files: list[tuple[str, bytes]]) -> None:
        self.batch.append(("commit", author, committer, message,
                           [(path, self.blobs.add(BLOB, body)[0]) for path, body in files]))
        if len(self.batch) >= self.BATCH:
            self._send()

    def forget(self, *folders: str) -> None:
        self.batch.append(("forget", *folders))

    def _send(self) -> None:
        self.conn.send(self.batch)
        self.batch = []

    def close(self) -> str:
        """Finish both packs; returns the head commit id (the ref is written)."""
        self._send()
        self.conn.send(None)
        self.blobs.close()
        head = self.conn.recv()
        self.proc.join()
        if self.proc.exitcode != 0:
            raise RuntimeError(f"the tree writer exited with {self.proc.exitcode}")
        return head


def _tree_side(git_dir: str, ref: str, conn) -> None:
    history = PackHistory(git_dir)
    while (batch := conn.recv()) is not None:
        for item in batch:
            if item[0] == "commit":
                history.commit(*item[1:])
            else:
                history.forget(*item[1:])
    conn.send(history.close(ref))
