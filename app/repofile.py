"""`sluice repo-file`: the dnf `.repo` stanza for one of a target's repos.

The baseurl is where sluice publishes the repo: `file://` of the repos root,
or `repos_url` from the local config when the repos root is served
elsewhere (a web server pointing at it). testing and stable are signed
(`gpgcheck=1`, `repo_gpgcheck=1`) with the key exported beside them; the
private buildroot repo holds the RPMs as built, unsigned, so it says so.
"""
from __future__ import annotations

import os
import urllib.parse

from app.keys import key_file_name

STAGES = ("buildroot", "testing", "stable")


def base(repos: str, repos_url: str | None) -> str:
    if repos_url:
        return repos_url.rstrip("/")
    return "file://" + urllib.parse.quote(os.path.abspath(repos))


def stanza(target: str, stage: str, repos: str, repos_url: str | None = None) -> str:
    root = base(repos, repos_url)
    signed = stage != "buildroot"
    lines = [f"[sluice-{target}-{stage}]",
             f"name=sluice {target} {stage}",
             f"baseurl={root}/{urllib.parse.quote(target)}/{stage}/",
             "enabled=1"]
    if signed:
        lines += ["gpgcheck=1", "repo_gpgcheck=1",
                  f"gpgkey={root}/{urllib.parse.quote(target)}/{key_file_name(target)}"]
    else:
        lines += ["# the private buildroot repo holds the RPMs as built: unsigned",
                  "gpgcheck=0", "repo_gpgcheck=0"]
    lines += ["metadata_expire=60"]
    return "\n".join(lines) + "\n"
