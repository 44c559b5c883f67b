"""`sluice review`: a real build against the last release of its package.

libfoo 1.0 goes to testing, fooapp (which requires libfoo.so.1) is built
against it, then libfoo 2.0 moves to libfoo.so.2: review must shout ABI
change and name fooapp, list what changed, the changelog since, and what
the real rpmlint says.
"""
from __future__ import annotations

import os

from tests.conftest import BOB, CAROL
from tests.test_release import release, signed  # noqa: F401 (fixtures)
from tests.test_signing import gnupg, queue  # noqa: F401 (fixtures release needs)
from tests.test_runner import run_once, show, submit

BITS = "(64bit)" if os.uname().machine in ("x86_64", "aarch64", "ppc64le", "s390x") else ""


def changelog(day: str, version: str, text: str) -> str:
    return f"true\n%changelog\n* {day} Bob Packager <bob@example.org> - {version}\n- {text}\n"


def abi_change(release, make_srpm) -> tuple[str, str, str]:
    """libfoo 1.0 (libfoo.so.1) in testing, fooapp requiring libfoo.so.1 and
    libfoo 2.0 (libfoo.so.2) built: the ids of the three builds."""
    old = make_srpm("libfoo", "1.0", "1", f"Provides: libfoo.so.1(){BITS}",
                    build=changelog("Mon Nov 02 2026", "1.0-1", "first release"))
    (first,) = signed(release, old)
    assert release("push", "testing", first[:7], user=CAROL).code == 0
    app = submit(release, make_srpm("fooapp", "1.0", "1", f"Requires: libfoo.so.1(){BITS}"))
    new = submit(release, make_srpm("libfoo", "2.0", "1", f"Provides: libfoo.so.2(){BITS}\nProvides: libfoo-tools",
                                    build=changelog("Fri Nov 20 2026", "2.0-1", "new soname")
                                    + "* Mon Nov 02 2026 Bob Packager <bob@example.org> - 1.0-1\n- first release\n"))
    run_once(release)
    assert show(release, app)["state"] == "built" and show(release, new)["state"] == "built"
    return first, app, new


def test_review_shouts_an_abi_change_names_its_users_and_lists_what_changed(release, make_srpm):
    first, app, new = abi_change(release, make_srpm)
    result = release("--json", "review", new[:7], user=BOB)
    assert result.code == 0, result.err
    doc = result.json
    assert doc["previous"]["id"] == first and doc["previous"]["state"] == "testing"
    (abi,) = doc["abi"]
    assert abi["soname"] == f"libfoo.so.1(){BITS}" and abi["new"] == [f"libfoo.so.2(){BITS}"]
    assert [u["id"] for u in abi["required_by"]] == [app]
    (package,) = [p for p in doc["packages"] if p["name"].startswith("libfoo.")]
    assert package["status"] == "changed"
    assert f"libfoo.so.2(){BITS}" in package["provides_added"] and "libfoo-tools" in package["provides_added"]
    assert package["provides_removed"] == [f"libfoo.so.1(){BITS}"]
    assert package["files_added"] == [] and package["files_removed"] == []  # same paths, new content
    assert len(doc["changelog"]) == 1 and "new soname" in doc["changelog"][0]
    checks = {f["check"] for f in doc["lint"]}
    assert "no-url-tag" in checks  # the test spec has none: rpmlint really ran

    text = release("review", new[:7], user=BOB).out
    assert f"!! ABI change: libfoo.so.1(){BITS} is gone" in text
    assert f"{app[:7]} fooapp-1.0-1" in text and "rpmlint:" in text


def test_a_first_release_is_all_new_and_an_unbuilt_build_is_refused(release, make_srpm):
    build = submit(release, make_srpm("lonely", "1.0", "1"))
    refused = release("review", build[:7], user=BOB)
    assert refused.code == 2 and "no built RPMs" in refused.err
    run_once(release)
    result = release("--json", "review", build[:7], "--no-lint", user=BOB)
    assert result.code == 0, result.err
    assert result.json["previous"] is None and result.json["lint"] == []
    assert {p["status"] for p in result.json["packages"]} == {"new"}
