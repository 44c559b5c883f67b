"""Reading packages with the distro's `createrepo_c` command line.

sluice runs createrepo_c only on the packages its fragment cache lacks
(`backends.repodata`), with the repo as the input directory (so each
`location href` is the plain file name) and a private output directory
whose metadata is split into per-package fragments and thrown away. The run
starts in the background, so it reads the new packages while the publisher
loads the cache.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Mapping

from backends import repodata
from backends.base import BackendError

CREATEREPO = "createrepo_c"
# gz everywhere and no sqlite: readable by dnf on Debian 12 and on Fedora/EL.
CREATEREPO_OPTIONS = ("--general-compress-type", "gz", "--no-database", "--checksum", "sha256",
                      "--error-exit-val")
CREATEREPO_TIMEOUT = 1800.0


class Reading:
    """One createrepo_c run over `packages` (name -> sha256) in `repo_dir`,
    started at once; `fragments()` waits for it and splits its output."""

    def __init__(self, createrepo: str, repo_dir: str, packages: Mapping[str, str]) -> None:
        self.repo_dir, self.packages = repo_dir, dict(packages)
        self.out = tempfile.mkdtemp(prefix="sluice-createrepo-")
        self.pkglist = os.path.join(self.out, "pkglist.txt")
        with open(self.pkglist, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{name}\n" for name in sorted(self.packages)))
        os.mkdir(os.path.join(self.out, "md"))
        self.command = [createrepo, "--pkglist", self.pkglist, *CREATEREPO_OPTIONS,
                        "--outputdir", os.path.join(self.out, "md"), repo_dir]
        try:
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, text=True, errors="replace")
        except FileNotFoundError as exc:
            self.close()
            raise BackendError(f"cannot run {createrepo}: it is not installed",
                               "install createrepo-c (apt install createrepo-c, or dnf install createrepo_c)",
                               command=self.command) from exc

    def fragments(self) -> dict[repodata.Key, repodata.Fragments]:
        try:
            output, _ = self.process.communicate(timeout=CREATEREPO_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            output, _ = self.process.communicate()
            raise BackendError(f"createrepo_c took over {CREATEREPO_TIMEOUT:.0f} s for {self.repo_dir}",
                               "check the disk and the packages, then publish again",
                               command=self.command, output=output) from exc
        if self.process.returncode != 0:
            raise BackendError(
                f"createrepo_c failed with status {self.process.returncode} for {self.repo_dir}",
                "read its output; a package that cannot be read must be rebuilt, then publish again "
                "(the repo keeps its previous metadata)",
                command=self.command, status=self.process.returncode, output=output)
        return repodata.fragments_of(os.path.join(self.out, "md", "repodata"), self.packages)

    def close(self) -> None:
        """Stop the run if it is still going and remove its output."""
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
            process.communicate()
        shutil.rmtree(self.out, ignore_errors=True)
