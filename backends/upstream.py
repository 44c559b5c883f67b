"""An upstream repo of source RPMs, and RPM signature checks against given keys.

The repo is read with `backends.repodata` (the same reader the buildroot
merge uses): repomd.xml, then primary.xml checked against repomd.xml's
checksum, then each SRPM checked against primary.xml's. Nothing the metadata
says becomes a path: the caller names the files.

Signatures are checked with `rpmkeys --checksig` in a throw-away rpmdb that
holds only the keys given, with `_pkgverify_level signature` (without it an
unsigned package passes). The verbose output says, per package, whether a
signature was there, by which key id, and whether it held; the key id is
matched to the trusted key (or its subkey) that made it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Mapping, Sequence

from backends import repometa
from backends.base import BackendError, BadInput
from backends.keys import gpg_binary
from backends.upstream_protocols import UpstreamFetchFailed, UpstreamPackage, SignatureVerdict

_SIGNATURE = re.compile(r"Signature, key ID ([0-9a-fA-F]+): (\w+)")
_DIGEST = re.compile(r"(digest|MD5 digest): (BAD|NOTOK)", re.IGNORECASE)


class UpstreamReader:
    """`UpstreamRepo` over http(s) and file:// URLs."""

    def source_packages(self, url: str) -> list[UpstreamPackage]:
        work = tempfile.mkdtemp(prefix="sluice-upstream-")
        try:
            try:
                repomd = repometa.fetch_bytes(repometa.join(url, "repodata/repomd.xml"))
            except repometa.RepoUnreachable as exc:
                raise BackendError(f"the upstream repo is unreachable: {exc.message}",
                                   "check the URL and that this machine reaches it; nothing was queued") from exc
            try:
                href, kind, checksum = repometa.metadata_files(repomd, ("primary",))["primary"]
                path = os.path.join(work, "primary" + repometa.suffix(href))
                repometa.fetch_file(repometa.join(url, href), path, kind, checksum)
                entries = [repometa.describe(chunk) for chunk in repometa.chunks(path, "primary")]
            except (repometa.RepoBroken, repometa.ChecksumMismatch, repometa.RepoUnreachable) as exc:
                raise BackendError(f"the upstream repo {url} cannot be read: {exc.message}",
                                   "it may be mid-sync (try again later) or damaged; nothing was queued") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return [UpstreamPackage(e.name, e.epoch, e.version, e.release, e.href, e.checksum_type, e.pkgid, e.size)
                for e in entries if e.arch in ("src", "nosrc")]

    def fetch(self, url: str, package: UpstreamPackage, path: str) -> None:
        try:
            repometa.fetch_file(repometa.join(url, package.href), path, package.checksum_type, package.checksum)
        except repometa.ChecksumMismatch as exc:
            raise UpstreamFetchFailed(f"checksum mismatch: {exc.message}", True) from exc
        except (repometa.RepoUnreachable, repometa.RepoBroken) as exc:
            raise UpstreamFetchFailed(f"not fetched: {exc.message}", False) from exc


class RpmSignatureChecker:
    """`SignatureChecker` with gpg (reading key files) and rpmkeys (checking)."""

    def fingerprints(self, armored: bytes) -> list[str]:
        return [primary for primary, _ in self._keys(armored)]

    def _keys(self, armored: bytes) -> list[tuple[str, list[str]]]:
        """[(primary fingerprint, [its fingerprint and its subkeys'])] of a key file."""
        if b"PRIVATE KEY BLOCK" in armored:
            raise BadInput("the key file holds a secret key", "export only the public key: gpg --armor --export FPR")
        home = tempfile.mkdtemp(prefix="sluice-keys-")
        try:
            done = subprocess.run([gpg_binary(), "--homedir", home, "--batch", "--with-colons", "--show-keys"],
                                  input=armored, capture_output=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        found: list[tuple[str, list[str]]] = []
        kind = ""
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            fields = line.split(":")
            if fields[0] in ("pub", "sub", "sec", "ssb"):
                kind = fields[0]
            elif fields[0] == "fpr" and len(fields) > 9:
                if kind in ("sec", "ssb"):
                    raise BadInput("the key file holds a secret key",
                                   "export only the public key: gpg --armor --export FPR")
                if kind == "pub":
                    found.append((fields[9].upper(), [fields[9].upper()]))
                elif kind == "sub" and found:
                    found[-1][1].append(fields[9].upper())
        if done.returncode != 0 or not found:
            raise BadInput("the file holds no OpenPGP public key",
                           "give an ASCII-armoured public key (gpg --armor --export FPR > KEYFILE)")
        return found

    def verify(self, paths: Sequence[str], keys: Mapping[str, bytes]) -> dict[str, SignatureVerdict]:
        ids: dict[str, str] = {}
        db = tempfile.mkdtemp(prefix="sluice-rpmdb-")
        try:
            for n, (fingerprint, armored) in enumerate(sorted(keys.items())):
                for primary, fingerprints in self._keys(armored):
                    ids.update({f[-16:]: primary for f in fingerprints})
                key = os.path.join(db, f"key-{n}.asc")
                with open(key, "wb") as f:
                    f.write(armored)
                _rpmkeys(["--dbpath", db, "--import", key], f"rpmkeys could not import trusted key {fingerprint}")
            return {path: _verdict(path, db, ids) for path in paths}
        finally:
            shutil.rmtree(db, ignore_errors=True)


def _verdict(path: str, db: str, ids: dict[str, str]) -> SignatureVerdict:
    done = subprocess.run(["rpmkeys", "--dbpath", db, "--define", "_pkgverify_level signature", "-Kv", "--", path],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    signatures = _SIGNATURE.findall(output)
    good = [key_id.upper() for key_id, status in signatures if status == "OK"]
    if done.returncode == 0 and good:
        signer = next((primary for tail, primary in ids.items() if tail.endswith(good[0])), None)
        return SignatureVerdict(signer) if signer else SignatureVerdict(None, f"signed by key {good[0]}, not a trusted key")
    if _DIGEST.search(output) or any(status == "BAD" for _, status in signatures):
        return SignatureVerdict(None, "its signature or digests do not verify: the package was changed after it was signed")
    if any(status == "NOKEY" for _, status in signatures):
        key_ids = ", ".join(sorted({key_id.upper() for key_id, status in signatures if status == "NOKEY"}))
        return SignatureVerdict(None, f"signed by key {key_ids}, which the target does not trust")
    if not signatures:
        return SignatureVerdict(None, "unsigned: it carries no signature")
    return SignatureVerdict(None, "its signature check failed: " + " ".join(output.split())[-200:])


def _rpmkeys(args: list[str], what: str) -> None:
    try:
        done = subprocess.run(["rpmkeys", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise BackendError(f"{what}: cannot run rpmkeys ({exc.strerror})", "install rpm") from exc
    if done.returncode != 0:
        raise BackendError(what, "check the key with `sluice target show`; re-add it with `sluice target trust`",
                           command=["rpmkeys", *args], status=done.returncode, output=done.stderr[-2000:])
