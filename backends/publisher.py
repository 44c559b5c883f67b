"""Publishing a repo: hard links into the artifact store plus createrepo_c metadata.

A repo directory is disposable, derived state: the list of files it must hold
(file name -> sha256) comes from the state ref, and `publish` makes the
directory match it. Packages are hard links to the store's read-only files,
so a repo costs no disk space and a package in ten repos is one inode; only
when the repo lives on another filesystem than the store (EXDEV) is a file
copied, and the copy is checked against its sha256 while it is written.

The metadata is written by the `createrepo_c` command line, not the Python
bindings: the distro's own createrepo_c writes what the distro's own dnf reads
(the PyPI wheel writes zstd, which Debian's dnf cannot read). Output is gzip
for every file and has no sqlite databases (dnf reads only the XML; sqlite was
for yum), which both Debian's and Fedora's dnf read.

Publishing keeps the repo usable while it runs: new files are linked in first,
createrepo_c builds `.repodata/` and swaps it in, and only then are the files
that left the repo removed. A client that read the old repomd.xml still finds
every package it lists. `--pkglist` confines the metadata to exactly the wanted
files, whatever else lies in the directory.

Two processes publishing the same repo take turns on an exclusive flock of
`repo_dir/.lock` held for the whole publish.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from typing import Mapping

from backends.base import ArtifactStore, BackendError, BadInput, Published, sha256_file, write_atomic

CREATEREPO = "createrepo_c"
# gz everywhere and no sqlite: readable by dnf on Debian 12 and on Fedora/EL.
CREATEREPO_OPTIONS = ("--general-compress-type", "gz", "--no-database", "--checksum", "sha256",
                      "--error-exit-val")
CREATEREPO_TIMEOUT = 1800.0

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+~^-]*\.rpm")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LOCK = ".lock"
_MARKER = ".published"  # what the current metadata was built from
_INCOMING = ".incoming-"  # prefix of a file being linked or copied in
_CHUNK = 1 << 20


class CreaterepoPublisher:
    """`Publisher` over hard links and the `createrepo_c` command line."""

    def __init__(self, artifacts: ArtifactStore, createrepo: str = CREATEREPO) -> None:
        self.artifacts = artifacts
        self.createrepo = createrepo

    def publish(self, repo_dir: str, files: Mapping[str, str]) -> Published:
        """Make `repo_dir` hold exactly `files` (name -> sha256) with fresh
        metadata. Everything is checked before anything is touched, so a bad
        name or a missing artifact leaves the repo as it was."""
        wanted = dict(files)
        for name, sha256 in wanted.items():
            check_name(name)
            _check_sha256(name, sha256)
        for name, sha256 in sorted(wanted.items()):
            if not self.artifacts.has(sha256):
                raise BackendError(
                    f"cannot publish {name} to {repo_dir}: artifact sha256:{sha256} is not in the "
                    f"artifact store", "the store may have been pruned or moved; rebuild the package "
                    "(or restore the store) and publish again")
        try:
            os.makedirs(repo_dir, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create the repo directory {repo_dir}: {exc.strerror}",
                               "check the repos root in the config and its permissions") from exc
        with _Lock(os.path.join(repo_dir, _LOCK)):
            return self._publish_locked(repo_dir, wanted)

    def _publish_locked(self, repo_dir: str, wanted: dict[str, str]) -> Published:
        _clear_leftovers(repo_dir)
        added, replaced = [], False
        for name, sha256 in sorted(wanted.items()):
            state = self._state(os.path.join(repo_dir, name), sha256)
            if state != "same":
                self._place(repo_dir, name, sha256)
                added.append(name)
                replaced = replaced or state == "different"
        unwanted = _unwanted(repo_dir, wanted)
        marker = "".join(f"{sha256}  {name}\n" for name, sha256 in sorted(wanted.items()))
        current = _read(os.path.join(repo_dir, _MARKER))
        has_metadata = os.path.isfile(os.path.join(repo_dir, "repodata", "repomd.xml"))
        if not (added or unwanted) and current == marker and has_metadata:
            return Published((), (), False)
        # A replaced name may keep its size and mtime second, which is all
        # --update compares: rebuild every package's metadata then.
        self._createrepo(repo_dir, sorted(wanted), incremental=has_metadata and not replaced)
        write_atomic(os.path.join(repo_dir, _MARKER), marker.encode())
        for name in unwanted:
            _unlink(os.path.join(repo_dir, name))
        return Published(tuple(added), tuple(unwanted), True)

    # ------------------------------------------------------------ the files

    def _state(self, dest: str, sha256: str) -> str:
        """"same", "missing" or "different": is `dest` the artifact already?"""
        try:
            have = os.lstat(dest)
        except FileNotFoundError:
            return "missing"
        source = os.stat(self.artifacts.path(sha256))
        if os.path.samestat(have, source):
            return "same"
        if (stat.S_ISREG(have.st_mode) and have.st_dev != source.st_dev
                and have.st_size == source.st_size and sha256_file(dest) == sha256):
            return "same"  # a copy, on another filesystem than the store
        return "different"

    def _place(self, repo_dir: str, name: str, sha256: str) -> None:
        """Link (or copy) the artifact to a temporary name, then rename it over
        `name`: a reader sees the old file or the new one, never neither, and
        a symlink planted at `name` is replaced, never followed."""
        source = self.artifacts.path(sha256)
        tmp = os.path.join(repo_dir, _INCOMING + name)
        _unlink(tmp)
        try:
            try:
                os.link(source, tmp)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _copy_checked(source, tmp, sha256)
            os.replace(tmp, os.path.join(repo_dir, name))
        except OSError as exc:
            _unlink(tmp)
            raise BackendError(f"cannot put {name} into {repo_dir}: {exc.strerror}",
                               "check free space and permissions of the repo directory") from exc

    # ------------------------------------------------------------ metadata

    def _createrepo(self, repo_dir: str, names: list[str], incremental: bool) -> None:
        with tempfile.NamedTemporaryFile("w", prefix="sluice-pkglist-", suffix=".txt") as pkglist:
            pkglist.write("".join(f"{name}\n" for name in names))
            pkglist.flush()
            command = [self.createrepo, *(["--update"] if incremental else []),
                       "--pkglist", pkglist.name, *CREATEREPO_OPTIONS, repo_dir]
            try:
                result = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                        timeout=CREATEREPO_TIMEOUT)
            except FileNotFoundError as exc:
                raise BackendError(f"cannot run {self.createrepo}: it is not installed",
                                   "install createrepo-c (apt install createrepo-c, or dnf install "
                                   "createrepo_c)", command=command) from exc
            except subprocess.TimeoutExpired as exc:
                _clear_leftovers(repo_dir)
                output = (exc.stdout or "") + (exc.stderr or "")
                raise BackendError(f"createrepo_c took over {CREATEREPO_TIMEOUT:.0f} s for {repo_dir}",
                                   "check the disk and the packages, then publish again",
                                   command=command, output=str(output)) from exc
        if result.returncode != 0:
            raise BackendError(
                f"createrepo_c failed with status {result.returncode} for {repo_dir}",
                "read its output; a package that cannot be read must be rebuilt, then publish again "
                "(the repo keeps its previous metadata)",
                command=command, status=result.returncode, output=result.stdout + result.stderr)


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


def _unwanted(repo_dir: str, wanted: Mapping[str, str]) -> list[str]:
    """Files at the top of the repo that are not wanted. Hidden files are
    sluice's own; directories are left alone (never deleted recursively) and
    kept out of the metadata by --pkglist."""
    found = []
    with os.scandir(repo_dir) as entries:
        for entry in entries:
            if entry.name.startswith(".") or entry.name in wanted:
                continue
            if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                found.append(entry.name)
    return sorted(found)


def _clear_leftovers(repo_dir: str) -> None:
    """Remove what an interrupted publish left: createrepo_c refuses to run
    while `.repodata/` exists, and we hold the lock, so nobody else owns it."""
    with os.scandir(repo_dir) as entries:
        for entry in entries:
            if entry.name == ".repodata" or (entry.name.startswith("repodata.old.")
                                             and entry.is_dir(follow_symlinks=False)):
                shutil.rmtree(entry.path, ignore_errors=True)
            elif entry.name.startswith(_INCOMING):
                _unlink(entry.path)


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
        _unlink(dest)
        raise BackendError(f"artifact {source} does not match its sha256 {sha256}",
                           "the artifact store is damaged: restore the file or rebuild the package")
    have = os.stat(source)
    os.utime(dest, ns=(have.st_atime_ns, have.st_mtime_ns))


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Lock:
    """An exclusive flock on a file, held for a `with` block. The kernel drops
    it when the process dies, so a crash never leaves a repo locked."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "_Lock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise BackendError(f"cannot open the repo lock {self.path}: {exc.strerror}",
                               "check permissions of the repo directory") from exc
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)  # closing releases the lock
        self.fd = -1
