"""A target with external repos, built by the runner with the real CLI.

The target's own builds win over an external repo by source package name
(no arms race: a newer libfoo in the external repo is never offered), a
package only the external repo has is fetched from it, and `show` says
which repo each buildroot package came from.
"""
from __future__ import annotations

import os

from tests.test_repomerge import build_rpms, createrepo
from tests.test_runner import queue, run_once, show, submit  # noqa: F401  (queue is a fixture)

ARCH = os.uname().machine


def test_external_repos_feed_the_buildroot_after_the_targets_own_builds(queue, make_srpm, tmp_path):
    epel = tmp_path / "epel"
    build_rpms(epel, "extlib", "1.0")
    build_rpms(epel, "libfoo", "5.0")  # newer than ours: must never be offered
    createrepo(epel)
    added = queue("target", "add", "el", "--arch", ARCH, "--external-repo", f"epel=file://{epel}")
    assert added.code == 0, added.err
    lib = submit(queue, make_srpm("libfoo", "1.0", "1"), "--target", "el")
    run_once(queue)
    assert show(queue, lib)["state"] == "built"

    app = submit(queue, make_srpm("fooapp", "1.0", "1", "BuildRequires: libfoo\nBuildRequires: extlib"),
                 "--target", "el")
    greedy = submit(queue, make_srpm("greedy", "1.0", "1", "BuildRequires: libfoo >= 5"), "--target", "el")
    run_once(queue)
    shown = show(queue, app)
    assert shown["state"] == "built", shown["events"][-1]["reason"]
    assert sorted(shown["installed"][ARCH]) == [["extlib-1.0-1.noarch", "epel"],
                                                 [f"libfoo-1.0-1.{ARCH}", "buildroot"]]
    text = queue("show", app[:7]).out
    assert f"buildroot of {ARCH}" in text and "epel: extlib-1.0-1.noarch" in text
    failed = show(queue, greedy)
    assert failed["state"] == "failed" and "libfoo" in " ".join(failed["events"][-1]["data"]["missing"])

    listed = queue("target", "show", "el").out
    assert "buildroot feed 1. buildroot" in listed and "buildroot feed 2. epel" in listed
