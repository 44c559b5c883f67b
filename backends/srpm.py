"""Reading source RPMs with the rpm bindings, checking every digest first.

The header is read with signature checks off (an upstream SRPM signed by a key
this machine does not know must still be readable; signatures are checked
where trust matters, on import) but with header digests on. The payload is
then hashed in the same pass as the whole file and compared with the header's
payload digest, so a truncated or corrupted SRPM is refused before anything is
stored. Packages older than rpm 4.14 carry no payload digest; for those the
check falls back to `rpmkeys --checksig --nosignature`.
"""
from __future__ import annotations

import hashlib
import os
import subprocess

import rpm

from backends.base import BadInput, BinaryPackage, SourcePackage

_DIGESTS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224"}
_CHUNK = 1 << 20


class RpmReader:
    """`PackageReader` over the system rpm library."""

    def read_source(self, path: str) -> SourcePackage:
        header, sha256, size = _read(path, "pass a source RPM built with rpmbuild -bs; it may be truncated "
                                           "or corrupted", source=True)
        return SourcePackage(
            name=header[rpm.RPMTAG_NAME],
            epoch=header[rpm.RPMTAG_EPOCH],
            version=header[rpm.RPMTAG_VERSION],
            release=header[rpm.RPMTAG_RELEASE],
            buildrequires=_buildrequires(header),
            exclusivearch=tuple(header[rpm.RPMTAG_EXCLUSIVEARCH] or ()),
            excludearch=tuple(header[rpm.RPMTAG_EXCLUDEARCH] or ()),
            sha256=sha256, size=size, filename=os.path.basename(path))

    def read_binary(self, path: str) -> BinaryPackage:
        """A built RPM's identity, after the same header and payload digest
        checks as a source package (a result from a builder is checked before
        it is imported)."""
        header, sha256, size = _read(path, "the builder produced a damaged RPM: rebuild it (resubmit) or "
                                           "fetch it again (`sluice rescue`)")
        return BinaryPackage(
            name=header[rpm.RPMTAG_NAME], epoch=header[rpm.RPMTAG_EPOCH], version=header[rpm.RPMTAG_VERSION],
            release=header[rpm.RPMTAG_RELEASE], arch="src" if header.isSource() else header[rpm.RPMTAG_ARCH],
            sourcerpm=header[rpm.RPMTAG_SOURCERPM] or "", sha256=sha256, size=size)


def _read(path: str, hint: str, source: bool = False) -> tuple["rpm.hdr", str, int]:
    """The header, sha256 and size of an RPM, every digest checked; `hint`
    says what to do about a damaged one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}", "check the path and that the file is readable") from exc
    try:
        header = _read_header(path, fd, hint)
        if source and not header.isSource():
            raise BadInput(f"{path} is a binary RPM ({header[rpm.RPMTAG_ARCH]}), not a source package",
                           "submit the .src.rpm (rpmbuild -bs makes one)")
        sha256, size = _check_payload(path, fd, header, hint)
    finally:
        os.close(fd)
    return header, sha256, size


def _read_header(path: str, fd: int, hint: str) -> "rpm.hdr":
    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES)
    rpm.setVerbosity(rpm.RPMLOG_EMERG)  # our message replaces rpm's own stderr noise
    try:
        return ts.hdrFromFdno(fd)
    except rpm.error as exc:
        raise BadInput(f"{path} is not a readable RPM package ({exc})", hint) from exc
    finally:
        rpm.setVerbosity(rpm.RPMLOG_WARNING)


def _check_payload(path: str, fd: int, header: "rpm.hdr", hint: str) -> tuple[str, int]:
    """Hash the whole file and the payload in one read; compare the payload's."""
    start = os.lseek(fd, 0, os.SEEK_CUR)
    expected = (header[rpm.RPMTAG_PAYLOADDIGEST] or [None])[0]
    algo = _DIGESTS.get(header[rpm.RPMTAG_PAYLOADDIGESTALGO] or 0)
    whole = hashlib.sha256()
    payload = hashlib.new(algo) if expected and algo else None
    os.lseek(fd, 0, os.SEEK_SET)
    offset = 0
    while chunk := os.read(fd, _CHUNK):
        whole.update(chunk)
        if payload is not None and offset + len(chunk) > start:
            payload.update(chunk[max(0, start - offset):])
        offset += len(chunk)
    if payload is None:
        _rpmkeys_check(path, hint)
    elif payload.hexdigest() != expected:
        raise BadInput(f"{path} is truncated or corrupted: its payload does not match the "
                       "digest in its header", hint)
    return whole.hexdigest(), offset


def _rpmkeys_check(path: str, hint: str) -> None:
    command = ["rpmkeys", "--checksig", "--nosignature", "--", path]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BadInput(f"{path} failed its digest check: {result.stdout.strip() or result.stderr.strip()}",
                       hint)


def _buildrequires(header: "rpm.hdr") -> tuple[str, ...]:
    found = []
    for dep in rpm.ds(header, "requires"):
        text = dep.DNEVR()[2:]
        if not text.startswith("rpmlib("):
            found.append(text)
    return tuple(found)
