"""Repo metadata written incrementally from per-package fragments.

createrepo_c reads each package once: its `<package>` elements of
primary.xml, filelists.xml and other.xml (the "fragments") are kept in a
cache inside the repo, `.metadata-cache/`, keyed by the package's sha256 and
file name. A publish asks createrepo_c only for the packages the cache does
not hold, and writes the three files itself from the fragments.

The fragments sit in 256 buckets (the first byte of the sha256). Each bucket
keeps its fragments and, per file, the bucket's fragments compressed as one
raw deflate segment ended by a full flush. A gzip file may be any sequence
of such segments (pigz writes them the same way): sluice writes the gzip
header, the segments of every bucket, a final segment and the CRC32 and
size of the whole. So one new package recompresses its one bucket, not the
repo, and the output is one ordinary gzip member any zlib reads.

A cache file is checked (magic, CRC32 of its payload) on every read; one
that fails is dropped and its packages read by createrepo_c again.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Mapping

from backends.base import BackendError

CACHE = ".metadata-cache"
KINDS = ("primary", "filelists", "other")
_MAGIC = b"sluice-fragments 2\n"
_LEVEL = 6  # zlib's default, as createrepo_c's gzip
_OPENING = {
    "primary": b'<metadata xmlns="http://linux.duke.edu/metadata/common" '
               b'xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="%d">\n',
    "filelists": b'<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="%d">\n',
    "other": b'<otherdata xmlns="http://linux.duke.edu/metadata/other" packages="%d">\n'}
_CLOSING = {"primary": b"</metadata>\n", "filelists": b"</filelists>\n", "other": b"</otherdata>\n"}
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# XML text escapes `<`, so these only ever match createrepo_c's own elements.
_PACKAGE = re.compile(rb"<package[ >].*?</package>\n", re.DOTALL)
_PKGID = re.compile(rb'<checksum type="sha256" pkgid="YES">([0-9a-f]{64})</checksum>')
_HREF = re.compile(rb'<location href="([^"]+)"')
_ATTR_PKGID = re.compile(rb'<package pkgid="([0-9a-f]{64})"')

Key = tuple[str, str]  # (sha256, file name)
Fragments = tuple[bytes, bytes, bytes]  # primary, filelists, other


def bucket_of(sha256: str) -> str:
    return sha256[:2]


@dataclass(frozen=True)
class Bucket:
    """The packages whose sha256 starts alike, in key order: per kind, their
    fragments end to end (`raw`) and compressed as one segment."""
    keys: tuple[Key, ...]
    sizes: tuple[tuple[int, int, int], ...]
    raw: tuple[bytes | memoryview, ...]
    segments: tuple[bytes | memoryview, ...]

    @classmethod
    def build(cls, fragments: Mapping[Key, Fragments]) -> "Bucket":
        keys = tuple(sorted(fragments))
        raw = tuple(b"".join(fragments[key][n] for key in keys) for n in range(len(KINDS)))
        return cls(keys, tuple(tuple(map(len, fragments[key])) for key in keys), raw,
                   tuple(_segment(blob) for blob in raw))

    def fragments(self) -> dict[Key, Fragments]:
        """Each package's fragments; none when the sizes do not add up (the
        packages are then read again)."""
        if [sum(sizes[n] for sizes in self.sizes) for n in range(len(KINDS))] != [len(b) for b in self.raw]:
            return {}
        found: dict[Key, list[bytes]] = {key: [] for key in self.keys}
        for n, blob in enumerate(self.raw):
            at = 0
            for key, sizes in zip(self.keys, self.sizes):
                found[key].append(bytes(blob[at:at + sizes[n]]))
                at += sizes[n]
        return {key: tuple(parts) for key, parts in found.items()}

    def encode(self) -> bytes:
        payload = b"".join(self.raw) + b"".join(self.segments)
        head = json.dumps({"crc": zlib.crc32(payload), "sha256": [sha for sha, _ in self.keys],
                           "names": [name for _, name in self.keys], "sizes": self.sizes,
                           "raw": [len(b) for b in self.raw], "segments": [len(s) for s in self.segments]},
                          separators=(",", ":"))
        return _MAGIC + head.encode() + b"\n" + payload

    @classmethod
    def decode(cls, data: bytes) -> "Bucket | None":
        """The bucket in `data`, or None when it is not a whole cache file."""
        end = data.find(b"\n", len(_MAGIC))
        if not data.startswith(_MAGIC) or end < 0:
            return None
        try:
            head = json.loads(data[len(_MAGIC):end])
            payload = memoryview(data)[end + 1:]
            if zlib.crc32(payload) != head["crc"]:
                return None
            keys = tuple(zip(head["sha256"], head["names"]))
            sizes = tuple(map(tuple, head["sizes"]))
            blobs, at = [], 0
            for length in head["raw"] + head["segments"]:
                blobs.append(payload[at:at + length])  # views: nothing is copied
                at += length
        except (ValueError, KeyError, TypeError):
            return None
        if at != len(payload) or len(blobs) != 2 * len(KINDS) or len(keys) != len(sizes):
            return None
        return cls(keys, sizes, tuple(blobs[:3]), tuple(blobs[3:]))


class FragmentCache:
    """The buckets under `<repo>/.metadata-cache/`, read and written whole."""

    def __init__(self, repo_dir: str) -> None:
        self.folder = os.path.join(repo_dir, CACHE)

    def load(self, names: Iterable[str]) -> dict[str, Bucket]:
        found = {}
        for name in names:
            try:
                with open(os.path.join(self.folder, name), "rb") as handle:
                    bucket = Bucket.decode(handle.read())
            except (FileNotFoundError, NotADirectoryError):
                continue
            if bucket is not None:
                found[name] = bucket
        return found

    def store(self, name: str, bucket: Bucket) -> None:
        """Write by rename, without fsync: a file a crash damaged fails its
        CRC on the next read and is simply built again."""
        os.makedirs(self.folder, exist_ok=True)
        tmp = os.path.join(self.folder, f".{name}.tmp")
        with open(tmp, "wb") as out:
            out.write(bucket.encode())
        os.replace(tmp, os.path.join(self.folder, name))

    def drop_except(self, keep: set[str]) -> None:
        try:
            entries = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in entries:
            if name not in keep:
                os.unlink(os.path.join(self.folder, name))


def fragments_of(repodata: str, expected: Mapping[str, str]) -> dict[Key, Fragments]:
    """Split createrepo_c's output in `repodata` into per-package fragments,
    checking that it describes exactly the `expected` files (name -> sha256)."""
    with open(os.path.join(repodata, "repomd.xml"), "rb") as handle:
        repomd = handle.read()
    lists = []
    for kind in KINDS:
        match = re.search(rb'<data type="%s">.*?<location href="repodata/([^"/]+)"' % kind.encode(), repomd,
                          re.DOTALL)
        if not match:
            raise BackendError(f"createrepo_c wrote no {kind} metadata in {repodata}",
                               "check the createrepo_c installation, then publish again")
        with open(os.path.join(repodata, match.group(1).decode()), "rb") as handle:
            lists.append(_PACKAGE.findall(gzip.decompress(handle.read())))
    found: dict[Key, Fragments] = {}
    for primary, filelists, other in zip(*lists):
        sha, href = _PKGID.search(primary), _HREF.search(primary)
        ids = [_ATTR_PKGID.match(filelists), _ATTR_PKGID.match(other)]
        if not (sha and href and all(ids)) or {m.group(1) for m in ids} != {sha.group(1)}:
            raise BackendError(f"createrepo_c's metadata in {repodata} does not pair up package by package",
                               "check the createrepo_c version, then publish again")
        found[(sha.group(1).decode(), href.group(1).decode())] = (primary, filelists, other)
    wanted = {(sha, name) for name, sha in expected.items()}
    if len(lists[0]) != len(found) or set(found) != wanted or not len(lists[0]) == len(lists[1]) == len(lists[2]):
        strays = sorted(name for _, name in set(found) ^ wanted)
        raise BackendError(f"createrepo_c did not describe exactly the packages asked for ({', '.join(strays)})",
                           "a file may have changed while publishing; publish again")
    return found


def write_metadata(folder: str, buckets: Mapping[str, Bucket], now: int | None = None,
                   extra: Mapping[str, bytes] | None = None) -> bytes:
    """Write the three gzip files into `folder` and return repomd.xml. Each
    of `extra` (repomd type -> uncompressed XML, e.g. "updateinfo") is
    written gzipped beside them and listed in repomd.xml after them."""
    now = int(time.time()) if now is None else now
    ordered = [buckets[name] for name in sorted(buckets)]
    count = sum(len(bucket.keys) for bucket in ordered)
    data = []
    for n, kind in enumerate(KINDS):
        opening, closing = _XML_DECLARATION + _OPENING[kind] % count, _CLOSING[kind]
        raw = hashlib.sha256()
        crc = size = 0
        for piece in (opening, *(bucket.raw[n] for bucket in ordered), closing):
            raw.update(piece)
            crc, size = zlib.crc32(piece, crc), size + len(piece)
        body = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", _segment(opening),
                *(bucket.segments[n] for bucket in ordered), _segment(closing, final=True),
                struct.pack("<II", crc, size & 0xFFFFFFFF)]
        blob = b"".join(body)
        digest = hashlib.sha256(blob).hexdigest()
        href = f"repodata/{digest}-{kind}.xml.gz"
        write_new(os.path.join(folder, os.path.basename(href)), blob)
        data.append((kind, digest, raw.hexdigest(), href, len(blob), size))
    for kind, xml in sorted((extra or {}).items()):
        blob = gzip.compress(xml, _LEVEL, mtime=0)  # the same XML gives the same file
        digest = hashlib.sha256(blob).hexdigest()
        href = f"repodata/{digest}-{kind}.xml.gz"
        write_new(os.path.join(folder, os.path.basename(href)), blob)
        data.append((kind, digest, hashlib.sha256(xml).hexdigest(), href, len(blob), len(xml)))
    return _repomd(data, now)


def _repomd(data: list[tuple[str, str, str, str, int, int]], now: int) -> bytes:
    lines = [_XML_DECLARATION.decode(),
             '<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">\n',
             f"  <revision>{now}</revision>\n"]
    for kind, digest, open_digest, href, size, open_size in data:
        lines += [f'  <data type="{kind}">\n',
                  f'    <checksum type="sha256">{digest}</checksum>\n',
                  f'    <open-checksum type="sha256">{open_digest}</open-checksum>\n',
                  f'    <location href="{href}"/>\n', f"    <timestamp>{now}</timestamp>\n",
                  f"    <size>{size}</size>\n", f"    <open-size>{open_size}</open-size>\n", "  </data>\n"]
    lines.append("</repomd>\n")
    return "".join(lines).encode()


def listed(repomd: bytes) -> list[str]:
    """The metadata file names a repomd.xml points at."""
    return [m.decode() for m in re.findall(rb'<location href="repodata/([^"/]+)"', repomd)]


def _segment(data: bytes, final: bool = False) -> bytes:
    """Raw deflate of `data` from an empty window, ended byte-aligned by a
    full flush (or, for the last one, the final block)."""
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def write_new(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def sync_folder(folder: str) -> None:
    """Every file in `folder`, and the folder, on disk before it is swapped
    in; the fsyncs run at once, so the filesystem can commit them together."""
    def sync(path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    paths = [os.path.join(folder, name) for name in os.listdir(folder)]
    with ThreadPoolExecutor(max_workers=len(paths) or 1) as pool:
        list(pool.map(sync, paths))
    sync(folder)
