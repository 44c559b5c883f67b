"""Repo manifests: what a published testing or stable repo held, in git.

Every publish that changes a repo adds one file to the state tree,
`repos/<target>/<repo>/manifests/<n:08d>-<sha8>.json`, where `n` counts the
repo's publishes (one more than the highest seen) and `sha8` is the start of
the file's own sha256, so two clones publishing concurrently never write the
same path. The newest manifest (highest `n`, then name) is what the repo
holds; `git log -- repos/T/stable` is the repo's history, and the files it
names (by sha256, in the artifact store) rebuild it exactly.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from app.errors import AmbiguousId, BadInput, NotFound
from app.model import FINGERPRINT, NAME, SHA256
from app.tasks import safe_name
from backends.base import Snapshot

ADVISORY_ID = re.compile(r"SLUICE-[0-9]{4}-[0-9a-f]{10}")  # an advisory's id (app.advisories)
PATH = re.compile(rf"repos/({NAME.pattern})/(testing|stable)/manifests/([0-9]{{8}})-([0-9a-f]{{8}})\.json")


@dataclass(frozen=True, order=True)
class Package:
    name: str  # the file name in the repo
    nevra: str
    sha256: str
    signed_by: str
    build: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "nevra": self.nevra, "sha256": self.sha256, "signed_by": self.signed_by,
                "build": self.build}


@dataclass(frozen=True)
class Manifest:
    target: str
    repo: str
    number: int
    packages: tuple[Package, ...]
    key: str
    actor: str
    time: str
    advisories: tuple[str, ...] = ()  # the ids in the repo's updateinfo.xml

    def encode(self) -> bytes:
        doc = {"target": self.target, "repo": self.repo, "number": self.number, "key": self.key,
               "actor": self.actor, "time": self.time, "packages": [p.to_json() for p in self.packages]}
        if self.advisories:  # absent rather than empty, so manifests from before advisories read the same
            doc["advisories"] = list(self.advisories)
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def folder(target: str, repo: str) -> str:
    return f"repos/{target}/{repo}/manifests"


def path_of(manifest: Manifest, data: bytes) -> str:
    return f"{folder(manifest.target, manifest.repo)}/{manifest.number:08d}-{hashlib.sha256(data).hexdigest()[:8]}.json"


def parse(path: str, data: bytes) -> Manifest:
    """A manifest read from the tree, checked against its path; BadInput if not."""
    match = PATH.fullmatch(path)
    if not match:
        raise BadInput(f"{path} is not a manifest path")
    if hashlib.sha256(data).hexdigest()[:8] != match.group(4):
        raise BadInput(f"{path} does not match its content's sha256")
    try:
        doc = json.loads(data)
        packages = tuple(_package(p) for p in doc["packages"])
        manifest = Manifest(doc["target"], doc["repo"], doc["number"], packages, doc["key"], doc["actor"],
                            doc["time"], tuple(doc.get("advisories", ())))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{path} is not a valid manifest: {exc}") from exc
    if (manifest.target, manifest.repo, manifest.number) != (match.group(1), match.group(2), int(match.group(3))):
        raise BadInput(f"{path} names another repo or number than its path")
    if not all(isinstance(a, str) and ADVISORY_ID.fullmatch(a) for a in manifest.advisories):
        raise BadInput(f"{path} lists an advisory id that is not one")
    if len({p.name for p in packages}) != len(packages) or not FINGERPRINT.fullmatch(str(manifest.key)):
        raise BadInput(f"{path} lists a file twice or has no valid key")
    return manifest


def _package(doc: Any) -> Package:
    package = Package(doc["name"], doc["nevra"], doc["sha256"], doc["signed_by"], doc["build"])
    if not (safe_name(package.name) and package.name.endswith(".rpm") and SHA256.fullmatch(package.sha256)
            and FINGERPRINT.fullmatch(package.signed_by) and isinstance(package.nevra, str)
            and isinstance(package.build, str)):
        raise ValueError(f"bad package entry {package.name!r}")
    return package


def latest(snap: Snapshot, target: str, repo: str) -> Manifest | None:
    names = [n for n in snap.list(folder(target, repo)) if n.endswith(".json")]
    if not names:
        return None
    name = max(names)  # zero-padded numbers sort as numbers
    path = f"{folder(target, repo)}/{name}"
    return parse(path, snap.read(path) or b"")


def find(snap: Snapshot, target: str, repo: str, which: str) -> tuple[str, Manifest]:
    """One of a repo's manifests and its name, by number (`12`) or name
    (`00000012-ab12cd34`, `.json` optional); two clones publishing at once
    can share a number."""
    names = sorted(n[:-len(".json")] for n in snap.list(folder(target, repo)) if n.endswith(".json"))
    wanted = which[:-len(".json")] if which.endswith(".json") else which
    if wanted.isdigit():
        chosen = [n for n in names if int(n[:8]) == int(wanted)]
    else:
        chosen = [n for n in names if n == wanted]
    if not chosen:
        known = ", ".join(names[-5:]) or "none yet"
        raise NotFound(f"the {repo} repo of target {target} has no manifest {which!r} (latest: {known})",
                       f"see its history with `git log refs/sluice/state -- repos/{target}/{repo}`")
    if len(chosen) > 1:
        raise AmbiguousId(f"two clones published manifest {int(wanted)} of the {repo} repo of target {target}: "
                          f"{', '.join(chosen)}", "name one of them in full")
    path = f"{folder(target, repo)}/{chosen[0]}.json"
    return chosen[0], parse(path, snap.read(path) or b"")



def nevra(name: str, epoch: int | None) -> str:
    """A result's NEVRA from its file name, which import made sure is its
    header's N-V-R.A (so publishing reads no RPM)."""
    nvr, arch = name[:-len(".rpm")].rsplit(".", 1)
    package, version, release = nvr.rsplit("-", 2)
    return f"{package}-{epoch}:{version}-{release}.{arch}" if epoch else f"{nvr}.{arch}"
