"""Publishing a repo: hard links into the artifact store plus repo metadata.

A repo directory is disposable, derived state: the list of files it must hold
(file name -> sha256) comes from the state ref, and `publish` makes the
directory match it. Packages are hard links to the store's read-only files,
so a repo costs no disk space and a package in ten repos is one inode; only
when the repo lives on another filesystem than the store (EXDEV) is a file
copied, and the copy is checked against its sha256 while it is written.

Each package is read by the distro's `createrepo_c` command line once (the
PyPI wheel writes zstd, which Debian's dnf cannot read); sluice keeps what it
wrote per package and writes primary, filelists and other itself, gzip and
no sqlite (`backends.repodata`), so a publish into a large repo reads only
the new packages.

Publishing keeps the repo usable while it runs: new files are linked in first,
the new metadata is written (and `repomd.xml` signed, when asked) in
`.repodata-new/` and exchanged with `repodata/` in one rename, and only then
are the files that left the repo removed. A reader sees the old repomd.xml
with its signature or the new one with its own, and a client that read the
old repomd.xml still finds every package and metadata file it lists.

Two processes publishing the same repo take turns on an exclusive flock of
`repo_dir/.lock` held for the whole publish.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from typing import Callable, Mapping

from backends import repodata
from backends.createrepo import CREATEREPO, Reading
from backends.base import ArtifactStore, BackendError, BadInput, Published, sha256_file, write_atomic
from backends.repodir import RepoLock, read_bytes, read_text, remove, swap_in

_EXTRA = re.compile(r"[a-z][a-z0-9_]{0,31}")  # a repomd data type
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+~^-]*\.rpm")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAMES = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._+~^-]*\.rpm\n)*")  # a whole list at once
_SHA256S = re.compile(r"(?:[0-9a-f]{64}\n)*")
_LOCK = ".lock"
_MARKER = ".published"  # what the current metadata was built from
_LINKED = ".linked"  # "sha256 name inode" of each hard link the last publish left
_INCOMING = ".incoming-"  # prefix of a file being linked or copied in
_STAGE = ".repodata-new"  # the next metadata, until it is exchanged with repodata/
_OLD = ".repodata-old"  # the previous metadata, where renameat2 cannot exchange
Sign = Callable[[str], bytes]  # repomd.xml path -> armoured detached signature
_CHUNK = 1 << 20


class CreaterepoPublisher:
    """`Publisher` over hard links and the `createrepo_c` command line."""

    def __init__(self, artifacts: ArtifactStore, createrepo: str = CREATEREPO) -> None:
        self.artifacts = artifacts
        self.createrepo = createrepo

    def publish(self, repo_dir: str, files: Mapping[str, str], sign: Sign | None = None,
                extra: Mapping[str, bytes] | None = None) -> Published:
        """Make `repo_dir` hold exactly `files` (name -> sha256) with fresh
        metadata; with `sign`, `repodata/repomd.xml.asc` is `sign(path)` of
        the new repomd.xml, written before the new metadata goes live.
        `extra` maps more repomd types to their uncompressed XML (e.g.
        {"updateinfo": …}); they are staged, listed and signed with the rest.
        Everything is checked before anything is touched, so a bad name or a
        missing artifact leaves the repo as it was."""
        wanted = dict(files)
        _check_all(wanted)
        extra = dict(extra or {})
        for kind, xml in extra.items():
            if not (isinstance(kind, str) and _EXTRA.fullmatch(kind)) or kind in repodata.KINDS \
                    or not isinstance(xml, bytes):
                raise BadInput(f"{kind!r} is not an extra metadata type a publisher can write",
                               "pass lower-case repomd types other than primary, filelists and other, "
                               "each with its XML as bytes")
        try:
            os.makedirs(repo_dir, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create the repo directory {repo_dir}: {exc.strerror}",
                               "check the repos root in the config and its permissions") from exc
        with RepoLock(os.path.join(repo_dir, _LOCK)):
            return self._publish_locked(repo_dir, wanted, sign, extra)

    def _publish_locked(self, repo_dir: str, wanted: dict[str, str], sign: Sign | None,
                        extra: dict[str, bytes]) -> Published:
        entries = _scan(repo_dir)
        linked = _linked(repo_dir)
        added, links, device = [], {}, os.stat(repo_dir).st_dev
        for name in sorted(wanted):
            entry = entries.get(name)
            if entry is not None and linked.get(name) == (wanted[name], entry.inode()):
                links[name] = linked[name]  # the very link this publisher made for that artifact: no stat
                continue
            try:
                source = os.stat(self.artifacts.path(wanted[name]))
            except FileNotFoundError:
                raise BackendError(
                    f"cannot publish {name} to {repo_dir}: artifact sha256:{wanted[name]} is not in the "
                    f"artifact store", "the store may have been pruned or moved; rebuild the package "
                    "(or restore the store) and publish again") from None
            if not _same(entry, source, device, wanted[name]):
                added.append(name)
            if source.st_dev == device:
                links[name] = (wanted[name], source.st_ino)  # linked now, or already: the store's inode
        for name in added:
            self._place(repo_dir, name, wanted[name])
        reading = Reading(self.createrepo, repo_dir, {name: wanted[name] for name in added}) if added else None
        try:
            published = self._publish_read(repo_dir, wanted, entries, added, reading, sign, extra)
        finally:
            if reading is not None:
                reading.close()
        if links != linked:  # only after a publish that stood: a failed one changes nothing
            write_atomic(os.path.join(repo_dir, _LINKED),
                         "".join(f"{sha} {name} {inode}\n" for name, (sha, inode) in sorted(links.items())).encode())
        return published

    def _publish_read(self, repo_dir: str, wanted: dict[str, str], entries: dict[str, os.DirEntry],
                      added: list[str], reading: Reading | None, sign: Sign | None,
                      extra: dict[str, bytes]) -> Published:
        # Hidden files are sluice's own; directories are left alone (never
        # deleted recursively) and are not packages of the repo.
        unwanted = sorted(name for name, entry in entries.items()
                          if name not in wanted and (entry.is_symlink() or entry.is_file(follow_symlinks=False)))
        marker = "".join(f"{sha256}  {name}\n" for name, sha256 in sorted(wanted.items())) + "".join(
            f"{hashlib.sha256(xml).hexdigest()}  :{kind}\n" for kind, xml in sorted(extra.items()))
        current = read_text(os.path.join(repo_dir, _MARKER))
        live = os.path.join(repo_dir, "repodata")
        has_metadata = os.path.isfile(os.path.join(live, "repomd.xml"))
        unsigned = sign is not None and not os.path.isfile(os.path.join(live, "repomd.xml.asc"))
        if not (added or unwanted or unsigned) and current == marker and has_metadata:
            return Published((), (), False)
        stage = os.path.join(repo_dir, _STAGE)
        try:
            self._stage(repo_dir, wanted, stage, reading, sign, extra)
            swap_in(stage, live, os.path.join(repo_dir, _OLD))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        write_atomic(os.path.join(repo_dir, _MARKER), marker.encode())
        for name in unwanted:
            remove(os.path.join(repo_dir, name))
        return Published(tuple(added), tuple(unwanted), True)

    # ------------------------------------------------------------ the files

    def _place(self, repo_dir: str, name: str, sha256: str) -> None:
        """Link (or copy) the artifact to a temporary name, then rename it over
        `name`: a reader sees the old file or the new one, never neither, and
        a symlink planted at `name` is replaced, never followed."""
        source = self.artifacts.path(sha256)
        tmp = os.path.join(repo_dir, _INCOMING + name)
        remove(tmp)
        try:
            try:
                os.link(source, tmp)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_checked(source, tmp, sha256)
            os.replace(tmp, os.path.join(repo_dir, name))
        except OSError as exc:
            remove(tmp)
            raise BackendError(f"cannot put {name} into {repo_dir}: {exc.strerror}",
                               "check free space and permissions of the repo directory") from exc

    # ------------------------------------------------------------ metadata

    def _stage(self, repo_dir: str, wanted: dict[str, str], stage: str, reading: Reading | None,
               sign: Sign | None, extra: dict[str, bytes]) -> None:
        """The complete next `repodata/` in `stage`: the metadata files,
        repomd.xml, its signature, and the files the live repomd.xml lists
        (so a client that has just read it still finds them). `reading` is
        createrepo_c already at work on the packages just linked in."""
        by_bucket: dict[str, list[repodata.Key]] = {}
        for name, sha256 in wanted.items():
            by_bucket.setdefault(sha256[:2], []).append((sha256, name))  # repodata.bucket_of, inlined
        cache = repodata.FragmentCache(repo_dir)
        buckets = cache.load(by_bucket)
        changed = [name for name, keys in by_bucket.items()
                   if name not in buckets or buckets[name].keys != tuple(sorted(keys))]
        have = {key: parts for name in changed if name in buckets for key, parts in buckets[name].fragments().items()}
        missing = {name: sha256 for bucket in changed for sha256, name in by_bucket[bucket]
                   if (sha256, name) not in have}
        if reading is not None and missing:
            have.update(reading.fragments())
        rest = {name: sha256 for name, sha256 in missing.items() if (sha256, name) not in have}
        if rest:  # packages already in the repo that the cache lacks
            again = Reading(self.createrepo, repo_dir, rest)
            try:
                have.update(again.fragments())
            finally:
                again.close()
        for name in changed:
            buckets[name] = repodata.Bucket.build({key: have[key] for key in by_bucket[name]})
            cache.store(name, buckets[name])
        cache.drop_except(set(by_bucket))
        os.mkdir(stage)
        repomd = repodata.write_metadata(stage, {name: buckets[name] for name in by_bucket}, extra=extra)
        repodata.write_new(os.path.join(stage, "repomd.xml"), repomd)
        if sign is not None:
            repodata.write_new(os.path.join(stage, "repomd.xml.asc"), sign(os.path.join(stage, "repomd.xml")))
        live = os.path.join(repo_dir, "repodata")
        for name in repodata.listed(read_bytes(os.path.join(live, "repomd.xml")) or b""):
            if not os.path.exists(os.path.join(stage, name)):
                try:
                    os.link(os.path.join(live, name), os.path.join(stage, name))
                except FileNotFoundError:
                    pass
        repodata.sync_folder(stage)


def _check_all(wanted: Mapping[str, str]) -> None:
    """check_name and _check_sha256 of every entry; one regex over the whole
    list first, as a repo of 10,000 packages is checked on every publish."""
    names, digests = list(wanted), list(wanted.values())
    if all(type(x) is str for x in names + digests):
        joined = "".join(f"{name}\n" for name in names)
        if (_NAMES.fullmatch(joined) and joined.count("\n") == len(names) and ".." not in joined
                and max(map(len, names), default=0) <= 255 and _SHA256S.fullmatch("".join(f"{d}\n" for d in digests))):
            return
    for name, sha256 in wanted.items():  # find the one to name in the error
        check_name(name)
        _check_sha256(name, sha256)


def check_name(name: str) -> None:
    """Refuse anything but a plain RPM file name: the name comes from package
    data and becomes a path, so it must never reach outside the repo."""
    if (not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name
            or len(name.encode()) > 255):
        raise BadInput(f"{name!r} is not a valid RPM file name for a repo",
                       "use a plain name like foo-1.0-1.x86_64.rpm: letters, digits and ._+~^- only, "
                       "no '/', no '..', not starting with '.' or '-'")


def _check_sha256(name: str, sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise BadInput(f"{sha256!r} (for {name}) is not a sha256 digest",
                       "pass the 64 lowercase hex digits the artifact store returned")


def _same(entry: os.DirEntry | None, source: os.stat_result, device: int, sha256: str) -> bool:
    """Is the repo's `entry` the artifact already: its hard link (the store's
    inode: a symlink or another file has its own), or (on another filesystem
    than the store) a regular file with the artifact's bytes?"""
    if entry is None:
        return False
    if device == source.st_dev:
        return entry.inode() == source.st_ino
    return (not entry.is_symlink() and entry.is_file(follow_symlinks=False)
            and entry.stat(follow_symlinks=False).st_size == source.st_size and sha256_file(entry.path) == sha256)


def _scan(repo_dir: str) -> dict[str, os.DirEntry]:
    """The repo's entries that are not sluice's own (hidden) files, after
    removing what an interrupted publish left: our stage and old metadata,
    half-placed files, and createrepo_c's `.repodata/` and `repodata.old.*`
    from before sluice wrote the metadata itself. We hold the lock, so
    nobody else owns them."""
    found = {}
    with os.scandir(repo_dir) as entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.startswith("repodata.old."):
                if name in (".repodata", _STAGE, _OLD) or (name.startswith("repodata.old.")
                                                           and entry.is_dir(follow_symlinks=False)):
                    shutil.rmtree(entry.path, ignore_errors=True)
                elif name.startswith(_INCOMING):
                    remove(entry.path)
                elif not name.startswith("."):
                    found[name] = entry
            else:
                found[name] = entry
    return found


def _linked(repo_dir: str) -> dict[str, tuple[str, int]]:
    """name -> (sha256, inode) of the hard links the last publish left, so a
    publish into a large repo need not stat every artifact again. A file
    someone replaced has another inode, and is checked (and put right) the
    long way."""
    found = {}
    for line in (read_text(os.path.join(repo_dir, _LINKED)) or "").splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[2].isdigit():
            found[parts[1]] = (parts[0], int(parts[2]))
    return found


def _copy_checked(source: str, dest: str, sha256: str) -> None:
    """Copy across filesystems, proving the bytes are the artifact's, and keep
    the mtime so createrepo_c --update recognises the package next time."""
    digest = hashlib.sha256()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    if digest.hexdigest() != sha256:
        remove(dest)
        raise BackendError(f"artifact {source} does not match its sha256 {sha256}",
                           "the artifact store is damaged: restore the file or rebuild the package")
    have = os.stat(source)
    os.utime(dest, ns=(have.st_atime_ns, have.st_mtime_ns))
