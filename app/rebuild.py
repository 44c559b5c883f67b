"""`sluice publish TARGET --from-manifest N --into DIR`: a repo as it was.

A manifest lists every file a testing or stable repo held after one publish,
by name and sha256, so the artifact store can rebuild that repo exactly: to
serve a known-good copy while a broken repo is sorted out, or to reproduce
it on another host. The rebuild goes into a directory of its own, laid out
like the repos root (`DIR/<target>/<repo>/` and the key file beside it), and
never into the published repos or the state: the published repos follow the
queue, stable never goes back to an older NEVR, and a publish from the queue
would undo an in-place rollback at once (take a broken build out of testing
with `withdraw`; a broken published directory is repaired by `publish`).

The packages keep the signatures the manifest names (their bytes are the
sha256s it lists); `repomd.xml` is signed by the target's current key, which
is the manifest's own key unless the key was rotated since, and the key file
holds every key that signed one of the packages.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from app import builds, manifests
from app.errors import BadInput, UsageError
from app.keys import key_file_name
from app.manifests import Manifest
from app.release import STAGES, Passphrase, Releases
from backends.base import write_atomic


@dataclass(frozen=True)
class Rebuilt:
    target: str
    repo: str
    manifest: str  # its file name without .json
    packages: int
    repo_dir: str
    key_file: str
    key: str  # the key that signed repomd.xml
    changed: bool

    def to_json(self) -> dict:
        return {"target": self.target, "repo": self.repo, "manifest": self.manifest, "packages": self.packages,
                "repo_dir": self.repo_dir, "key_file": self.key_file, "key": self.key, "changed": self.changed}


class Rebuilds:
    def __init__(self, releases: Releases) -> None:
        self.releases = releases

    def rebuild(self, target: str, repo: str, which: str, into: str, passphrase: Passphrase) -> Rebuilt:
        """Make `into/<target>/<repo>` hold exactly what manifest `which`
        lists; everything is checked before a file is written."""
        if repo not in STAGES:
            raise UsageError(f"there is no manifest of a {repo!r} repo", "--stage testing or --stage stable")
        releases = self.releases
        snap = releases.store.snapshot()
        builds.load_target(snap, target)  # a clear error for an unknown target
        builds.load_policy(snap).require_publisher(releases.actor.email, "rebuild repos")
        name, manifest = manifests.find(snap, target, repo, which)
        self._check_artifacts(name, manifest)
        folder = self._destination(into, target, repo)
        key = releases.keys.for_target(target)
        key_data = releases.keys.key_file(target, frozenset(p.signed_by for p in manifest.packages))
        phrase = releases.passphrase(key, passphrase)
        result = releases.publisher.publish(folder, {p.name: p.sha256 for p in manifest.packages},
                                            sign=releases.repomd_signer(key.fingerprint, phrase))
        key_path = os.path.join(os.path.dirname(folder), key_file_name(target))
        write_atomic(key_path, key_data)
        return Rebuilt(target, repo, name, len(manifest.packages), folder, key_path, key.fingerprint,
                       result.changed)

    def _check_artifacts(self, name: str, manifest: Manifest) -> None:
        missing = [p for p in manifest.packages if not self.releases.artifacts.has(p.sha256)]
        if missing:
            listed = ", ".join(f"{p.name} (sha256:{p.sha256[:12]}…)" for p in missing)
            raise BadInput(f"manifest {name} of the {manifest.repo} repo of target {manifest.target} lists "
                           f"{len(missing)} file(s) this machine's artifact store does not have: {listed}; "
                           "nothing was written",
                           "copy them from the store of the machine that signed them (`rsync -a "
                           "artifacts/ here:artifacts/` is safe: the store is content-addressed), then run "
                           "it again")

    def _destination(self, into: str, target: str, repo: str) -> str:
        """`into/<target>/<repo>`, refused when it is (in) the published
        repos or holds files a rebuild would delete."""
        root = os.path.realpath(into)
        published = os.path.realpath(self.releases.root)
        if root == published or root.startswith(published + os.sep):
            raise BadInput(f"{into} is inside the published repos ({self.releases.root}); a rebuild never "
                           "changes them", "rebuild into a directory of its own, e.g. --into /srv/rollback")
        if os.path.lexists(root) and not os.path.isdir(root):
            raise BadInput(f"{into} is not a directory", "name a new or empty directory")
        folder = os.path.join(root, target, repo)
        if os.path.lexists(folder):
            if not os.path.isdir(folder) or os.path.islink(folder):
                raise BadInput(f"{folder} is not a directory", "name a new or empty directory")
            if os.listdir(folder) and not os.path.exists(os.path.join(folder, ".published")):
                raise BadInput(f"{folder} holds files a rebuild did not put there, and a rebuild leaves "
                               "only the manifest's packages in it", "name a new or empty directory")
        return folder
