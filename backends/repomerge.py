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

import errno
import gzip
import hashlib
import json
import os
import shutil
import time
from typing import Iterator, Sequence

from backends import repometa
from backends.base import BackendError, sha256_file, write_atomic
from backends.repo_protocols import LOCAL, Merged, RepoSource
from backends.repodata import sync_folder
from backends.repodir import RepoLock, read_text, swap_in
from backends.repometa import PKGID_ATTR, PKGID_PRIMARY, ROOTS

TYPES = ("primary", "filelists", "other")
_MARKER, _ORIGINS, _LOCK = ".merged", ".origins.json", ".lock"
_NEW, _OLD = ".repodata-merging", ".repodata-old"
_LOCATION = b"<location "


class MergeRepoWriter:
    """`RepoMerger` that writes the merged metadata itself (see the module doc)."""

    def merge(self, repo_dir: str, local_dir: str, externals: Sequence[RepoSource]) -> Merged:
        sources = [RepoSource(LOCAL, "file://" + os.path.abspath(local_dir) + "/"),
                   *(RepoSource(e.name, e.url.rstrip("/") + "/") for e in externals)]
        os.makedirs(repo_dir, exist_ok=True)
        with RepoLock(os.path.join(repo_dir, _LOCK)):
            work = os.path.join(repo_dir, _NEW)
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
            try:
                return self._merge(repo_dir, local_dir, sources, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)

    def _merge(self, repo_dir: str, local_dir: str, sources: list[RepoSource], work: str) -> Merged:
        repomds = [_fetch_repomd(s) for s in sources]
        packages = sorted(n for n in os.listdir(local_dir) if n.endswith(".rpm") and not n.startswith("."))
        inputs = hashlib.sha256(json.dumps([[s.name, s.url, hashlib.sha256(r).hexdigest()]
                                            for s, r in zip(sources, repomds)] + packages).encode()).hexdigest()
        if read_text(os.path.join(repo_dir, _MARKER)) == inputs and os.path.isdir(os.path.join(repo_dir, "repodata")):
            return Merged(False, _load_origins(repo_dir))
        files = [self._download(s, r, work, n) for n, (s, r) in enumerate(zip(sources, repomds))]
        kept, origins, taken, masked = _choose(sources, files)
        repodata = os.path.join(work, "repodata")
        os.makedirs(repodata)
        written = {kind: _write(repodata, kind, sources, files, kept) for kind in TYPES}
        write_atomic(os.path.join(repodata, "repomd.xml"), _repomd(written))
        sync_folder(repodata)  # on disk before .merged says it is done
        _link_farm(repo_dir, local_dir, packages)
        swap_in(repodata, os.path.join(repo_dir, "repodata"), os.path.join(repo_dir, _OLD))
        for name in set(os.listdir(repo_dir)) - set(packages):
            if name.endswith(".rpm") and not name.startswith("."):
                os.unlink(os.path.join(repo_dir, name))  # after the swap: old metadata still finds them
        write_atomic(os.path.join(repo_dir, _ORIGINS), json.dumps(origins, sort_keys=True).encode())
        write_atomic(os.path.join(repo_dir, _MARKER), inputs.encode())
        return Merged(True, origins, taken, masked)

    def _download(self, source: RepoSource, repomd: bytes, work: str, n: int) -> dict[str, str]:
        """{type: local path of its (compressed) file}, checksums checked."""
        found = {}
        with _named(source):
            for kind, (href, checksum_type, checksum) in repometa.metadata_files(repomd, TYPES).items():
                path = os.path.join(work, f"{n}-{kind}{repometa.suffix(href)}")
                repometa.fetch_file(repometa.join(source.url, href), path, checksum_type, checksum)
                found[kind] = path
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
            if srcname in blocked or nevra in origins:  # an NVRA is offered once, by the first repo
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
    with _named(source):
        entry = repometa.describe(chunk)
    if entry.arch in ("src", "nosrc"):
        return None
    srpm = entry.sourcerpm
    srcname = srpm.rsplit("-", 2)[0] if srpm.count("-") >= 2 else entry.name
    return PKGID_PRIMARY.search(chunk).group(2).strip(), entry.nevra, srcname


def _write(repodata: str, kind: str, sources: list[RepoSource], files: list[dict[str, str]],
           kept: list[set[bytes]]) -> tuple[str, str, int, str, int]:
    """Write one merged metadata file; returns (its name, sha256, size, open
    sha256, open size) for repomd.xml."""
    tag, namespaces = ROOTS[kind]
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
                pkgid = (PKGID_PRIMARY if kind == "primary" else PKGID_ATTR).search(chunk)
                if pkgid and pkgid.group(pkgid.re.groups).strip() in kept[n]:
                    put((_based(chunk, base) if base and kind == "primary" else chunk) + b"\n")
        put(b"</" + tag + b">\n")
    digest = sha256_file(tmp)
    name = f"{digest}-{kind}.xml.gz"
    os.rename(tmp, os.path.join(repodata, name))
    return name, digest, os.path.getsize(os.path.join(repodata, name)), opened.hexdigest(), size


def _based(chunk: bytes, base: bytes) -> bytes:
    """Point a package's <location> at its own repo, unless it already names one."""
    start = chunk.find(_LOCATION)
    if start < 0:
        return chunk
    after = start + len(_LOCATION)
    if b"xml:base=" in chunk[start:chunk.index(b">", after)]:
        return chunk
    escaped = base.replace(b"&", b"&amp;").replace(b'"', b"&quot;").replace(b"<", b"&lt;")
    return chunk[:after] + b'xml:base="' + escaped + b'" ' + chunk[after:]


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
    with _named(source):
        yield from repometa.chunks(path, kind)


def _fetch_repomd(source: RepoSource) -> bytes:
    with _named(source):
        return repometa.fetch_bytes(repometa.join(source.url, "repodata/repomd.xml"))


class _named:
    """Say which external repo a metadata error came from, and what to do."""

    def __init__(self, source: RepoSource) -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, trace) -> None:
        if isinstance(exc, repometa.RepoUnreachable):
            raise BackendError(f"{exc.message} (external repo {self.source.name})",
                               "check the URL in the target (`sluice target show`) and that this machine "
                               "reaches it; builds wait until the buildroot can be merged") from exc
        if isinstance(exc, (repometa.RepoBroken, repometa.ChecksumMismatch)):
            what = exc.message + (" (the repo changed while it was read, or is damaged); try again"
                                  if isinstance(exc, repometa.ChecksumMismatch) else "")
            raise _broken(self.source, what) from exc


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


def _load_origins(repo_dir: str) -> dict[str, str]:
    try:
        return dict(json.loads(read_text(os.path.join(repo_dir, _ORIGINS)) or "{}"))
    except ValueError:
        return {}
