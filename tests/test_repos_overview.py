"""`sluice repos` (app/repos.py): what each repo holds and what a push or a
publish would change, on real builds, keys and repos. Nothing is written."""
from __future__ import annotations

import os

from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL, tree_files
from tests.test_release import DAVE, release, signed  # noqa: F401 (fixtures)
from tests.test_signing import gnupg, queue  # noqa: F401 (fixtures)

ARCH = os.uname().machine


def overview(sluice) -> dict:
    result = sluice("--json", "repos", "default")
    assert result.code == 0, result.err
    [target] = result.json
    return target


def names(changes) -> list[tuple[str, str, str]]:
    return sorted((c["repo"], c["nevra"], c["build"]) for c in changes)


def test_what_each_push_and_publish_would_change(release, make_srpm):  # noqa: F811
    first, second = signed(release, make_srpm("alpha", "1.0", "1"), make_srpm("beta", "2.0", "1"))
    before = tree_files(GitStateStore.open(release.repo))
    shown = overview(release)
    assert tree_files(GitStateStore.open(release.repo)) == before  # a question writes nothing
    assert {p["nevra"] for p in shown["repos"]["buildroot"]} == {f"alpha-1.0-1.{ARCH}", f"beta-2.0-1.{ARCH}"}
    assert all(p["signed_by"] == "" for p in shown["repos"]["buildroot"])  # the buildroot keeps them as built
    assert shown["repos"]["testing"] == [] and shown["manifests"] == {"testing": None, "stable": None}
    pushes = {m["command"]: m for m in shown["moves"]}
    assert set(pushes) == {f"sluice push testing {first[:7]}", f"sluice push testing {second[:7]}"}
    alpha = pushes[f"sluice push testing {first[:7]}"]
    assert names(alpha["adds"]) == [("testing", f"alpha-1.0-1.{ARCH}", first)] and alpha["removes"] == []
    assert alpha["adds"][0]["signed_by"] == shown["key"]

    assert release("push", "testing", first[:7], second[:7], user=CAROL).code == 0
    assert release("mark-tested", first[:7], user=DAVE).code == 0
    assert release("--yes", "withdraw", second[:7], "-m", "broken", user=BOB).code == 0
    # the withdrawer (bob) may not publish, so testing still holds beta: the next publish takes it out
    shown = overview(release)
    assert {p["nevra"] for p in shown["repos"]["testing"]} == {f"alpha-1.0-1.{ARCH}", f"beta-2.0-1.{ARCH}"}
    assert shown["manifests"]["testing"] == 1
    pushes = {m["command"]: m for m in shown["moves"]}
    stable = pushes[f"sluice push stable {first[:7]}"]
    assert names(stable["adds"]) == [("stable", f"alpha-1.0-1.{ARCH}", first)]
    assert names(stable["removes"]) == [("testing", f"alpha-1.0-1.{ARCH}", first)]
    publish = pushes["sluice publish default"]
    assert publish["adds"] == [] and names(publish["removes"]) == [("testing", f"beta-2.0-1.{ARCH}", second)]
    assert {p["nevra"] for p in shown["repos"]["buildroot"]} == {f"alpha-1.0-1.{ARCH}"}  # withdrawn: gone

    text = release("repos", user=BOB)  # anyone may look
    assert text.code == 0 and f"sluice push stable {first[:7]} would:" in text.out
    assert f"- testing: beta-2.0-1.{ARCH}  {second[:7]}" in text.out
    assert release("publish", user=ALICE).code == 0
    assert [m["command"] for m in overview(release)["moves"]] == [f"sluice push stable {first[:7]}"]


def test_an_unknown_target_is_a_clear_error(release):  # noqa: F811
    result = release("repos", "nope")
    assert result.code == 2 and "nope" in result.err
