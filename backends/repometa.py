"""Reading createrepo_c metadata over http(s) or file://, every download checked.

Shared by the buildroot merge (`repomerge`) and the upstream import
(`upstream`). `repomd.xml` is read first; every file it names is downloaded
through `fetch_file`, which hashes while it writes and refuses a file whose
checksum is not the one its metadata gives. The `<package>` elements of a
metadata file are streamed as bytes (`chunks`) and picked apart with small
regular expressions (`describe`): a 20,000-package primary.xml never becomes
an element tree.

Errors say what failed and where; callers add which repo it was and what to
do next (`RepoUnreachable`, `RepoBroken`, `ChecksumMismatch`).
"""
from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from typing import IO, Iterator
from xml.etree import ElementTree
from xml.sax.saxutils import unescape

from backends.base import BackendError

REPO_NS = "{http://linux.duke.edu/metadata/repo}"
ROOTS = {"primary": (b"metadata", b'xmlns="http://linux.duke.edu/metadata/common" '
                                  b'xmlns:rpm="http://linux.duke.edu/metadata/rpm"'),
         "filelists": (b"filelists", b'xmlns="http://linux.duke.edu/metadata/filelists"'),
         "other": (b"otherdata", b'xmlns="http://linux.duke.edu/metadata/other"')}
CHUNK = 1 << 20
TIMEOUT = 30  # a repo that does not answer must not hold anyone for long
HASHES = ("sha1", "sha224", "sha256", "sha384", "sha512")

NAME = re.compile(rb"<name>([^<]*)</name>")
ARCH = re.compile(rb"<arch>([^<]*)</arch>")
VERSION = re.compile(rb"<version\s([^>]*?)/?>")
SOURCERPM = re.compile(rb"<rpm:sourcerpm>([^<]*)</rpm:sourcerpm>")
PKGID_PRIMARY = re.compile(rb'<checksum([^>]*pkgid="YES"[^>]*)>([^<]+)</checksum>')
PKGID_ATTR = re.compile(rb'<package\s[^>]*pkgid="([^"]+)"')
LOCATION = re.compile(rb"<location\s([^>]*?)/?>")
SIZE = re.compile(rb"<size\s([^>]*?)/?>")
ATTR = re.compile(rb'([\w:]+)="([^"]*)"')


class RepoUnreachable(BackendError):
    """A URL of the repo could not be read (network, missing file)."""


class RepoBroken(BackendError):
    """The repo's metadata is not what createrepo_c writes."""


class ChecksumMismatch(BackendError):
    """A downloaded file is not the one the metadata describes."""


@dataclass(frozen=True)
class Entry:
    """One `<package>` of primary.xml, as text (never used as a path)."""

    pkgid: str
    checksum_type: str
    name: str
    epoch: str
    version: str
    release: str
    arch: str
    href: str
    size: int
    sourcerpm: str

    @property
    def nevra(self) -> str:
        return f"{self.name}-{self.version}-{self.release}.{self.arch}"


def join(url: str, href: str) -> str:
    return url.rstrip("/") + "/" + href.lstrip("/")


def fetch_bytes(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.read()
    except (OSError, ValueError) as exc:
        raise RepoUnreachable(f"cannot read {url}: {exc}") from exc


def fetch_file(url: str, path: str, kind: str, expected: str) -> None:
    """Download `url` to `path`, refusing it unless its `kind` checksum is `expected`."""
    kind = {"sha": "sha1"}.get(kind, kind)
    if kind not in HASHES:
        raise RepoBroken(f"{url}: the metadata names checksum type {kind!r}")
    digest = hashlib.new(kind)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(path, "wb") as out:
            while block := response.read(CHUNK):
                digest.update(block)
                out.write(block)
    except (OSError, ValueError) as exc:
        raise RepoUnreachable(f"cannot read {url}: {exc}") from exc
    if digest.hexdigest() != expected.strip().lower():
        raise ChecksumMismatch(f"{url} does not match the {kind} checksum its metadata gives "
                               f"(expected {expected.strip()[:16]}…, got {digest.hexdigest()[:16]}…)")


def metadata_files(repomd: bytes, kinds: tuple[str, ...]) -> dict[str, tuple[str, str, str]]:
    """{type: (href, checksum type, checksum)} of the `kinds` repomd.xml lists."""
    try:
        root = ElementTree.fromstring(repomd)
    except ElementTree.ParseError as exc:
        raise RepoBroken(f"repodata/repomd.xml is not XML ({exc})") from exc
    found = {}
    for data in root.iterfind(REPO_NS + "data"):
        kind = data.get("type")
        if kind not in kinds:
            continue
        location, checksum = data.find(REPO_NS + "location"), data.find(REPO_NS + "checksum")
        if location is None or checksum is None or not location.get("href"):
            raise RepoBroken(f"repomd.xml lists {kind} without a location or checksum")
        found[kind] = (location.get("href"), checksum.get("type", ""), (checksum.text or "").strip())
    missing = [k for k in kinds if k not in found]
    if missing:
        raise RepoBroken(f"repomd.xml has no {', '.join(missing)} metadata")
    return found


def chunks(path: str, kind: str) -> Iterator[bytes]:
    """Each `<package>…</package>` of a metadata file, as bytes, streamed."""
    with open_metadata(path) as stream:
        buffer, checked = b"", False
        while True:
            block = stream.read(CHUNK)
            buffer += block
            if not checked and (b"<package" in buffer or not block):
                check_root(buffer, kind)
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


def check_root(head: bytes, kind: str) -> None:
    """The <package> elements are read (and copied) as bytes, so their
    prefixes must mean what the usual root element declares."""
    tag, namespaces = ROOTS[kind]
    root = re.search(rb"<" + tag + rb"\s[^>]*>", head)
    if root is None or any(ns not in root.group(0) for ns in namespaces.split(b" ")):
        raise RepoBroken(f"its {kind} metadata does not start with the usual <{tag.decode()}> element "
                         "and namespaces (createrepo_c writes them)")


def describe(chunk: bytes) -> Entry:
    """The fields of a primary `<package>` sluice uses."""
    name, arch = NAME.search(chunk), ARCH.search(chunk)
    version, pkgid = VERSION.search(chunk), PKGID_PRIMARY.search(chunk)
    if not (name and arch and version and pkgid):
        raise RepoBroken("a <package> in primary lacks name, arch, version or a pkgid checksum")
    attrs = dict(ATTR.findall(version.group(1)))
    location, size, sourcerpm = LOCATION.search(chunk), SIZE.search(chunk), SOURCERPM.search(chunk)
    where = dict(ATTR.findall(location.group(1))) if location else {}
    sizes = dict(ATTR.findall(size.group(1))) if size else {}
    kind = dict(ATTR.findall(pkgid.group(1))).get(b"type", b"")
    return Entry(_text(pkgid.group(2)).strip(), _text(kind), _text(name.group(1)), _text(attrs.get(b"epoch", b"0")),
                 _text(attrs.get(b"ver", b"")), _text(attrs.get(b"rel", b"")), _text(arch.group(1)),
                 _text(where.get(b"href", b"")), int(sizes.get(b"package", b"0") or 0),
                 _text(sourcerpm.group(1)) if sourcerpm else "")


def _text(raw: bytes) -> str:
    return unescape(raw.decode("utf-8", "replace"), {"&quot;": '"', "&apos;": "'"})


def open_metadata(path: str) -> IO[bytes]:
    if path.endswith(".zst"):
        try:
            done = subprocess.run(["zstd", "-dc", "--", path], capture_output=True, check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise BackendError(f"cannot read zstd-compressed metadata: {exc}",
                               "install zstd (apt install zstd, or dnf install zstd)") from exc
        plain = path[:-4]
        with open(plain, "wb") as out:
            out.write(done.stdout)
        return open(plain, "rb")
    openers = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    return openers.get(suffix(path), open)(path, "rb")


def suffix(href: str) -> str:
    for ending in (".gz", ".xz", ".bz2", ".zst"):
        if href.endswith(ending):
            return ending
    return ".xml"
