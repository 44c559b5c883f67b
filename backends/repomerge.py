"""A target's buildroot repo with its external repos merged in, first match wins.

Builders get ONE repo: the target's own builds first, then each external repo
in priority order, where a package is offered only if no earlier repo has a
package built from the same SOURCE package (Koji's external-repo merge).
So an external repo can never win by a higher version number: if the local
repo has any build of `libfoo`, every `libfoo*` of the external repos is
hidden, and a repo that shares a source name with an earlier one adds none
of its subpackages either (no mixing libfoo 2.0 with libfoo-devel 1.0).
Within one repo every version is offered (dnf picks the newest); the same
NVRA may be in two repos, the first one's is offered.

The metadata is merged at the level of each `<package>` element, byte for
byte as its repo wrote it; external packages get `xml:base` set to their
repo's URL so dnf downloads them from there. Local packages keep their
relative `href`: they are hard links in the merged repo's own directory
(the local repo itself lives, complete with its own createrepo_c metadata,
in the hidden `.local/` beside them). mergerepo_c was measured and rejected:
its Koji mode keeps only the newest version per name of even the first
repo, and its other modes do not mask by source name.

Which repo each offered package came from is kept in `.origins.json`, and a
merge whose inputs (local metadata, each external `repomd.xml`) are the
same as last time's does nothing.
"""
from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import time
import urllib.request
from typing import IO, Iterator, Sequence
from xml.etree import ElementTree
from xml.sax.saxutils import unescape

from backends.base import BackendError, sha256_file, write_atomic
from backends.repo_protocols import LOCAL, Merged, RepoSource

TYPES = ("primary", "filelists", "other")
_ROOTS = {"primary": (b"metadata", b'xmlns="http://linux.duke.edu/metadata/common" '
                                   b'xmlns:rpm="http://linux.duke.edu/metadata/rpm"'),
          "filelists": (b"filelists", b'xmlns="http://linux.duke.edu/metadata/filelists"'),
          "other": (b"otherdata", b'xmlns="http://linux.duke.edu/metadata/other"')}
_REPO = "{http://linux.duke.edu/metadata/repo}"
_CHUNK = 1 << 20
_MARKER, _ORIGINS, _LOCK = ".merged", ".origins.json", ".lock"
_NEW, _OLD = ".repodata-merging", ".repodata-old"
_TIMEOUT = 30  # a repo that does not answer must not hold the runner for long

_NAME = re.compile(rb"<name>([^<]*)</name>")
_ARCH = re.compile(rb"<arch>([^<]*)</arch>")
_VERSION = re.compile(rb"<version\s([^>]*?)/?>")
_SOURCERPM = re.compile(rb"<rpm:sourcerpm>([^<]*)</rpm:sourcerpm>")
_PKGID_PRIMARY = re.compile(rb'<checksum[^>]*pkgid="YES"[^>]*>([^<]+)</checksum>')
_PKGID_ATTR = re.compile(rb'<package\s[^>]*pkgid="([^"]+)"')
_LOCATION = re.compile(rb"<location\s")
_ATTR = re.compile(rb'([\w:]+)="([^"]*)"')


class MergeRepoWriter:
    """`RepoMerger` that writes the merged metadata itself (see the module doc)."""

    def merge(self, repo_dir: str, local_dir: str, externals: Sequence[RepoSource]) -> Merged:
        sources = [RepoSource(LOCAL, "file://" + os.path.abspath(local_dir) + "/"),
                   *(RepoSource(e.name, e.url.rstrip("/") + "/") for e in externals)]
        os.makedirs(repo_dir, exist_ok=True)
        with _flock(os.path.join(repo_dir, _LOCK)):
            work = os.path.join(repo_dir, _NEW)
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            try:
                return self._merge(repo_dir, local_dir, sources, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)

    def _merge(self, repo_dir: str, local_dir: str, sources: list[RepoSource], work: str) -> Merged:
        repomds = [_fetch_bytes(_join(s.url, "repodata/repomd.xml"), s) for s in sources]
        packages = sorted(n for n in os.listdir(local_dir) if n.endswith(".rpm") and not n.startswith("."))
        inputs = hashlib.sha256(json.dumps([[s.name, s.url, hashlib.sha256(r).hexdigest()]
                                            for s, r in zip(sources, repomds)] + packages).encode()).hexdigest()
        if _read(os.path.join(repo_dir, _MARKER)) == inputs and os.path.isdir(os.path.join(repo_dir, "repodata")):
            return Merged(False, _load_origins(repo_dir))
        files = [self._download(s, r, work, n) for n, (s, r) in enumerate(zip(sources, repomds))]
        kept, origins, taken, masked = _choose(sources, files)
        repodata = os.path.join(work, "repodata")
        os.makedirs(repodata)
        written = {kind: _write(repodata, kind, sources, files, kept) for kind in TYPES}
        write_atomic(os.path.join(repodata, "repomd.xml"), _repomd(written))
        _link_farm(repo_dir, local_dir, packages)
        _swap(repo_dir, repodata)
        for name in set(os.listdir(repo_dir)) - set(packages):
            if name.endswith(".rpm") and not name.startswith("."):
                os.unlink(os.path.join(repo_dir, name))  # after the swap: old metadata still finds them
        write_atomic(os.path.join(repo_dir, _ORIGINS), json.dumps(origins, sort_keys=True).encode())
        write_atomic(os.path.join(repo_dir, _MARKER), inputs.encode())
        return Merged(True, origins, taken, masked)

    def _download(self, source: RepoSource, repomd: bytes, work: str, n: int) -> dict[str, str]:
        """{type: local path of its (compressed) file}, checksums checked."""
        try:
            root = ElementTree.fromstring(repomd)
        except ElementTree.ParseError as exc:
            raise _broken(source, f"repodata/repomd.xml is not XML ({exc})") from exc
        found = {}
        for data in root.iterfind(_REPO + "data"):
            kind = data.get("type")
            if kind not in TYPES:
                continue
            location, checksum = data.find(_REPO + "location"), data.find(_REPO + "checksum")
            if location is None or checksum is None or not location.get("href"):
                raise _broken(source, f"repomd.xml lists {kind} without a location or checksum")
            href = location.get("href")
            path = os.path.join(work, f"{n}-{kind}{_suffix(href)}")
            _fetch_file(_join(source.url, href), path, source, checksum.get("type", ""), (checksum.text or "").strip())
            found[kind] = path
        missing = [k for k in TYPES if k not in found]
        if missing:
            raise _broken(source, f"repomd.xml has no {', '.join(missing)} metadata")
        return found


def _choose(sources: list[RepoSource], files: list[dict[str, str]]):
    """The pkgids each source offers: all of the first (local) repo's, then
    each repo's packages whose source name no earlier repo has."""
    kept: list[set[bytes]] = []
    origins: dict[str, str] = {}
    taken: dict[str, int] = {}
    masked: dict[str, int] = {}
    blocked: set[str] = set()
    for source, paths in zip(sources, files):
        ids: set[bytes] = set()
        names: set[str] = set()
        hidden = 0
        for chunk in _chunks(paths["primary"], "primary", source):
            info = _describe(chunk, source)
            if info is None:
                continue  # source RPMs are not for buildroots
            pkgid, nevra, srcname = info
            names.add(srcname)
            if srcname in blocked or nevra in origins and origins[nevra] == source.name:
                hidden += 1
                continue
            ids.add(pkgid)
            origins.setdefault(nevra, source.name)
        blocked |= names
        kept.append(ids)
        taken[source.name], masked[source.name] = len(ids), hidden
    return kept, origins, taken, masked


def _describe(chunk: bytes, source: RepoSource) -> tuple[bytes, str, str] | None:
    """(pkgid, "name-version-release.arch", source package name) of a primary <package>."""
    name, arch = _NAME.search(chunk), _ARCH.search(chunk)
    version, pkgid = _VERSION.search(chunk), _PKGID_PRIMARY.search(chunk)
    if not (name and arch and version and pkgid):
        raise _broken(source, "a <package> in primary lacks name, arch, version or a pkgid checksum")
    if arch.group(1) in (b"src", b"nosrc"):
        return None
    attrs = dict(_ATTR.findall(version.group(1)))
    text = unescape(name.group(1).decode("utf-8", "replace"))
    nevra = (f"{text}-{attrs.get(b'ver', b'').decode()}-{attrs.get(b'rel', b'').decode()}."
             f"{arch.group(1).decode()}")
    sourcerpm = _SOURCERPM.search(chunk)
    srpm = unescape(sourcerpm.group(1).decode("utf-8", "replace")) if sourcerpm else ""
    srcname = srpm.rsplit("-", 2)[0] if srpm.count("-") >= 2 else text
    return pkgid.group(1).strip(), nevra, srcname


def _write(repodata: str, kind: str, sources: list[RepoSource], files: list[dict[str, str]],
           kept: list[set[bytes]]) -> tuple[str, str, int, str, int]:
    """Write one merged metadata file; returns (its name, sha256, size, open
    sha256, open size) for repomd.xml."""
    tag, namespaces = _ROOTS[kind]
    count = sum(len(ids) for ids in kept)
    tmp = os.path.join(repodata, f"{kind}.xml.gz")
    opened, size = hashlib.sha256(), 0
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
        def put(data: bytes) -> None:
            nonlocal size
            opened.update(data)
            size += len(data)
            out.write(data)

        put(b'<?xml version="1.0" encoding="UTF-8"?>\n<' + tag + b" " + namespaces
            + b' packages="' + str(count).encode() + b'">\n')
        for n, (source, paths) in enumerate(zip(sources, files)):
            base = None if n == 0 else source.url.encode()
            for chunk in _chunks(paths[kind], kind, source):
                pkgid = (_PKGID_PRIMARY if kind == "primary" else _PKGID_ATTR).search(chunk)
                if pkgid and pkgid.group(1).strip() in kept[n]:
                    put((_based(chunk, base) if base and kind == "primary" else chunk) + b"\n")
        put(b"</" + tag + b">\n")
    digest = sha256_file(tmp)
    name = f"{digest}-{kind}.xml.gz"
    os.rename(tmp, os.path.join(repodata, name))
    return name, digest, os.path.getsize(os.path.join(repodata, name)), opened.hexdigest(), size


def _based(chunk: bytes, base: bytes) -> bytes:
    """Point a package's <location> at its own repo, unless it already names one."""
    match = _LOCATION.search(chunk)
    if match is None:
        return chunk
    end = chunk.index(b">", match.end())
    if b"xml:base=" in chunk[match.start():end]:
        return chunk
    escaped = base.replace(b"&", b"&amp;").replace(b'"', b"&quot;").replace(b"<", b"&lt;")
    return chunk[:match.end()] + b'xml:base="' + escaped + b'" ' + chunk[match.end():]


def _repomd(written: dict[str, tuple[str, str, int, str, int]]) -> bytes:
    now = int(time.time())
    parts = [b'<?xml version="1.0" encoding="UTF-8"?>\n<repomd xmlns="http://linux.duke.edu/metadata/repo" '
             b'xmlns:rpm="http://linux.duke.edu/metadata/rpm">\n', f"  <revision>{now}</revision>\n".encode()]
    for kind, (name, digest, packed, opened, size) in written.items():
        parts.append(
            f'  <data type="{kind}">\n    <checksum type="sha256">{digest}</checksum>\n'
            f'    <open-checksum type="sha256">{opened}</open-checksum>\n'
            f'    <location href="repodata/{name}"/>\n    <timestamp>{now}</timestamp>\n'
            f"    <size>{packed}</size>\n    <open-size>{size}</open-size>\n  </data>\n".encode())
    parts.append(b"</repomd>\n")
    return b"".join(parts)


# ------------------------------------------------------------ reading metadata

def _chunks(path: str, kind: str, source: RepoSource) -> Iterator[bytes]:
    """Each `<package>…</package>` of a metadata file, as bytes, streamed."""
    with _open(path, source) as stream:
        buffer, checked = b"", False
        while True:
            block = stream.read(_CHUNK)
            buffer += block
            if not checked and (b"<package" in buffer or not block):
                _check_root(buffer, kind, source)
                checked = True
            pos = 0
            while True:
                start = buffer.find(b"<package", pos)
                end = buffer.find(b"</package>", start) if start >= 0 else -1
                if end < 0:
                    break
                yield buffer[start:end + len(b"</package>")]
                pos = end + len(b"</package>")
            buffer = buffer[pos:]
            if not block:
                return


def _check_root(head: bytes, kind: str, source: RepoSource) -> None:
    """The <package> elements are copied as bytes, so their prefixes must
    mean what the merged file's root element declares."""
    tag, namespaces = _ROOTS[kind]
    root = re.search(rb"<" + tag + rb"\s[^>]*>", head)
    if root is None or any(ns not in root.group(0) for ns in namespaces.split(b" ")):
        raise _broken(source, f"its {kind} metadata does not start with the usual <{tag.decode()}> element "
                              "and namespaces (createrepo_c writes them)")


def _open(path: str, source: RepoSource) -> IO[bytes]:
    if path.endswith(".zst"):
        try:
            done = subprocess.run(["zstd", "-dc", "--", path], capture_output=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BackendError(f"cannot read the zstd metadata of external repo {source.name}: {exc}",
                               "install zstd (apt install zstd, or dnf install zstd)") from exc
        plain = path[:-4]
        with open(plain, "wb") as out:
            out.write(done.stdout)
        return open(plain, "rb")
    openers = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    return openers.get(_suffix(path), open)(path, "rb")


def _suffix(href: str) -> str:
    for suffix in (".gz", ".xz", ".bz2", ".zst"):
        if href.endswith(suffix):
            return suffix
    return ".xml"


def _join(url: str, href: str) -> str:
    return url.rstrip("/") + "/" + href.lstrip("/")


def _fetch_bytes(url: str, source: RepoSource) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            return response.read()
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {url} of external repo {source.name}: {exc}",
                           "check the URL in the target (`sluice target show`) and that this machine "
                           "reaches it; builds wait until the buildroot can be merged") from exc


def _fetch_file(url: str, path: str, source: RepoSource, kind: str, expected: str) -> None:
    kind = {"sha": "sha1"}.get(kind, kind)
    if kind not in ("sha1", "sha224", "sha256", "sha384", "sha512"):
        raise _broken(source, f"repomd.xml names checksum type {kind!r}")
    digest = hashlib.new(kind)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response, open(path, "wb") as out:
            while block := response.read(_CHUNK):
                digest.update(block)
                out.write(block)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read {url} of external repo {source.name}: {exc}",
                           "check that this machine reaches the repo, then publish again") from exc
    if digest.hexdigest() != expected:
        raise _broken(source, f"{url} does not match the {kind} checksum its repomd.xml gives "
                              "(the repo changed while it was read, or is damaged); try again")


def _broken(source: RepoSource, what: str) -> BackendError:
    return BackendError(f"external repo {source.name} ({source.url}): {what}",
                        "fix the repo (createrepo_c) or take it out of the target with `sluice target load`")


# ------------------------------------------------------------ the directory

def _link_farm(repo_dir: str, local_dir: str, packages: list[str]) -> None:
    """Hard links to the local repo's packages, so relative hrefs resolve."""
    for name in packages:
        source, dest = os.path.join(local_dir, name), os.path.join(repo_dir, name)
        try:
            if os.path.samestat(os.lstat(dest), os.stat(source)):
                continue
        except FileNotFoundError:
            pass
        tmp = os.path.join(repo_dir, ".incoming-" + name)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # .local/ is on the same filesystem unless someone moved it
                raise
            shutil.copy2(source, tmp)
        os.replace(tmp, dest)


def _swap(repo_dir: str, new: str) -> None:
    """Put the new repodata/ in place: rename the old one away, the new one in."""
    current, old = os.path.join(repo_dir, "repodata"), os.path.join(repo_dir, _OLD)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(current):
        os.rename(current, old)
    os.rename(new, current)
    shutil.rmtree(old, ignore_errors=True)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _load_origins(repo_dir: str) -> dict[str, str]:
    try:
        return dict(json.loads(_read(os.path.join(repo_dir, _ORIGINS)) or "{}"))
    except ValueError:
        return {}


class _flock:
    def __init__(self, path: str) -> None:
        self.path, self.fd = path, -1

    def __enter__(self) -> "_flock":
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)
