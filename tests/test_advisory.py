"""Advisories end to end with real parts: the stable repo's updateinfo.xml read
by Debian's real dnf (gpgcheck=1, repo_gpgcheck=1: `dnf updateinfo` and
`dnf upgrade --advisory` in an installroot), the announcement mailed through
a real SMTP server (aiosmtpd), and sync refusing advisories the policy does
not allow."""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from app import advisories
from app.errors import HistoryRefused
from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL, MALLORY, forge, syncer, tree_files
from tests.test_notify import smtp  # noqa: F401
from tests.test_release import DAVE, dnf_command, manifests, release, repos, signed  # noqa: F401
from tests.test_signing import built_and_approved, gnupg, queue  # noqa: F401
from tests.test_sync import hub  # noqa: F401

CVE = "CVE-2026-12345"
BUG = "https://bugzilla.example.org/show_bug.cgi?id=4242"


def tested(sluice, *builds: str) -> None:
    for build in builds:
        for argv, who in ((("push", "testing", build[:7]), CAROL), (("mark-tested", build[:7]), DAVE)):
            result = sluice(*argv, user=who)
            assert result.code == 0, (argv, result.err)


def new_advisory(sluice, *builds: str, who=BOB, **how) -> dict:
    argv = ["--json", "advisory", "new", "--type", how.get("type", "security"), "--title",
            how.get("title", "fixlib: heap overflow in the parser"), "--builds", *(b[:7] for b in builds)]
    if how.get("severity", "important"):
        argv += ["--severity", how.get("severity", "important")]
    for ref in how.get("refs", (CVE, BUG)):
        argv += ["--ref", ref]
    argv += ["--description", how.get("description", "A crafted file overflowed the parser's buffer.\n"
                                                      "Found by the <fuzz> & \"friends\" team.")]
    result = sluice(*argv, user=who)
    assert result.code == 0, result.err
    return result.json


def updateinfo(stable) -> ET.Element:
    repomd = (stable / "repodata/repomd.xml").read_text()
    href = re.search(r'<data type="updateinfo">.*?<location href="([^"]+)"', repomd, re.DOTALL).group(1)
    return ET.fromstring(gzip.decompress((stable / href).read_bytes()))


def test_an_advisory_reaches_stable_with_its_builds_dnf_reads_it_and_the_list_hears_of_it(
        release, make_srpm, isolated, tmp_path, smtp):  # noqa: F811
    inbox, server = smtp
    config = isolated / ".config/sluice/config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsender = "sluice@example.org"\n'
                      'announce = "updates@example.org"\n')
    old, lib, tool = signed(release, make_srpm("fixlib", "1.0", "1"), make_srpm("fixlib", "1.0", "2"),
                            make_srpm("fixtool", "2.0", "1"))
    tested(release, old)
    assert release("push", "stable", old[:7]).code == 0
    work, dnf = dnf_command(release, tmp_path)
    installed = subprocess.run([*dnf, "install", "fixlib"], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    stable = repos(isolated) / "stable"
    assert "updateinfo" not in (stable / "repodata/repomd.xml").read_text()  # no advisory, no updateinfo

    advisory = new_advisory(release, lib, tool)
    assert re.fullmatch(r"SLUICE-20[0-9]{2}-[0-9a-f]{10}", advisory["id"]) and advisory["published"] is False
    assert advisory["builds"] == sorted([lib, tool]) and advisory["actor"] == BOB.email
    assert [r["type"] for r in advisory["references"]] == ["cve", "bugzilla"]
    tested(release, lib, tool)

    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    alone = release("push", "stable", lib[:7])  # the advisory's other build is neither pushed nor stable
    assert alone.code == 4, alone.err
    assert advisory["id"] in alone.err and "fixtool-2.0-1" in alone.err and "--partial" in alone.err
    assert tree_files(store) == before

    pushed = release("push", "stable", lib[:7], tool[:7])
    assert pushed.code == 0, pushed.err
    assert f"advisory {advisory['id']} is published in the stable repo of default" in pushed.err
    [latest] = [m for m in manifests(release, "stable").values() if m.get("advisories")]
    assert latest["advisories"] == [advisory["id"]] and len(latest["packages"]) == 3  # fixlib 1.0-1 stays

    [update] = updateinfo(stable)
    assert update.get("type") == "security" and update.get("status") == "stable"
    assert update.findtext("id") == advisory["id"] and update.findtext("severity") == "Important"
    assert "<fuzz>" in update.findtext("description")
    assert {r.get("type"): r.get("id") for r in update.iter("reference")} == {"cve": CVE, "bugzilla": "4242"}
    names = {p.get("name"): (p.get("version"), p.get("release"), p.get("src")) for p in update.iter("package")}
    assert names == {"fixlib": ("1.0", "2", "fixlib-1.0-2.src.rpm"), "fixtool": ("2.0", "1", "fixtool-2.0-1.src.rpm")}

    listed = subprocess.run([*dnf, "--refresh", "updateinfo", "list", "--all"], capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"{advisory['id']}\s+Important/Sec\.\s+fixlib-1\.0-2\.", listed.stdout), listed.stdout
    info = subprocess.run([*dnf, "updateinfo", "info", advisory["id"]], capture_output=True, text=True, timeout=300)
    assert info.returncode == 0, info.stderr
    for pattern in ("fixlib: heap overflow in the parser", r"Type\s*:\s*security", r"Severity\s*:\s*Important",
                    CVE, r"Bugs\s*:\s*4242"):
        assert re.search(pattern, info.stdout), (pattern, info.stdout)
    upgraded = subprocess.run([*dnf, "upgrade", "--advisory", advisory["id"]], capture_output=True, text=True,
                              timeout=300)
    assert upgraded.returncode == 0, upgraded.stderr
    query = subprocess.run(["rpm", "--root", f"{work}/root", "-q", "fixlib"], capture_output=True, text=True)
    assert query.stdout.startswith("fixlib-1.0-2."), query.stdout

    [(to, mail)] = [(to, m) for to, m in inbox.mails if m["X-Sluice-Advisory"]]
    assert to == ["updates@example.org"] and mail["Subject"] == f"[{advisory['id']}] {advisory['title']}"
    assert mail["X-Sluice-Severity"] == "important" and mail["X-Sluice-Advisory-Type"] == "security"
    body = mail.get_payload(decode=True).decode().replace("\r\n", "\n")
    shown = release("advisory", "show", advisory["id"], "--announcement")
    assert shown.code == 0 and shown.out.strip() == body.strip()
    sums = {p["nevra"]: p["sha256"] for p in latest["packages"] if p["build"] in (lib, tool)}
    assert len(sums) == 2 and "fixlib-1.0-1" not in body
    for words in (advisory["id"], "Severity:   important", CVE, BUG, "Found by the <fuzz>",
                  f"dnf upgrade --advisory {advisory['id']}", *sums, *sums.values()):
        assert words in body, words

    again = release("publish", user=CAROL)  # nothing new: no manifest, no second mail
    assert again.code == 0 and again.out.strip() == "the repos already match the queue"
    assert len([m for _, m in inbox.mails if m["X-Sluice-Advisory"]]) == 1


def test_bad_advisories_are_refused_with_their_exit_code_and_change_nothing(release, make_srpm):
    build, other = built_and_approved(release, make_srpm("badadv", "1.0", "1"), make_srpm("badadv2", "1.0", "1"))
    store = GitStateStore.open(release.repo)
    before = tree_files(store)
    base = ["advisory", "new", "--title", "t", "--builds", build[:7]]
    for argv, code, words in (
            (["--type", "security", "--builds", "0000000"], 2, "no build matches"),
            (["--type", "security"], 2, "needs a severity"),
            (["--type", "bugfix", "--ref", "not a reference"], 2, "CVE id"),
            (["--type", "bugfix", "--description-file", "/nonexistent"], 2, "cannot read the description")):
        result = release(*base, *argv, user=BOB)
        assert result.code == code and words in result.err, (argv, result.err)
    for argv in (["--type", "hotfix"], ["--type", "bugfix", "--severity", "urgent"],
                 ["--type", "bugfix", "--description", "d", "--description-file", "/nonexistent"]):
        with pytest.raises(SystemExit) as usage:  # argparse's own refusal, exit 2
            release(*base, *argv, user=BOB)
        assert usage.value.code == 2, argv
    refused = release(*base, "--type", "bugfix", user=CAROL)  # a signer, not the package's owner
    assert refused.code == 3 and "only its package's owners and admins" in refused.err, refused.err
    assert tree_files(store) == before

    first = new_advisory(release, build, type="bugfix", severity="", refs=())
    assert first["severity"] == "" and first["type"] == "bugfix"
    twice = release(*base, "--type", "enhancement", user=ALICE)
    assert twice.code == 4 and first["id"] in twice.err
    assert release("--yes", "withdraw", other[:7], "-m", "broken", user=BOB).code == 0
    dead = release("advisory", "new", "--type", "bugfix", "--title", "t", "--builds", other[:7], user=BOB)
    assert dead.code == 4 and "withdrawn" in dead.err

    listed = release("--json", "advisory", "list").json
    assert [a["id"] for a in listed] == [first["id"]] and listed[0]["states"] == {build: "needsign"}
    assert release("advisory", "show", "SLUICE-2026-0000000000").code == 2
    assert "needsign" in release("advisory", "show", first["id"].lower()).out


def test_no_command_is_pending_any_more():
    from app.cli import later, parser
    assert later.PENDING == {}
    assert "not available yet" not in parser().format_help()


# ---------------------------------------------------------------- sync

def _advisory(actor: str, build: str, target: str = "default") -> tuple[str, bytes]:
    advisory = advisories.Advisory("SLUICE-2026-0123456789", target, "bugfix", "", "a fix", "", (build,), (),
                                   actor, "2026-01-01T00:00:00.000Z")
    return advisories.path_of(target, advisory.id), advisory.encode()


@pytest.mark.parametrize("who, build, words", [
    (MALLORY, "own", "may not write an advisory"),
    (BOB, "none", "which does not exist"),
    (ALICE, "actor", "claims actor"),
])
def test_sync_refuses_advisories_the_policy_does_not_allow(hub, make_srpm, who, build, words):  # noqa: F811
    hub_clone, alice, bob = hub
    real = hub_clone.submit(make_srpm("synced"), who=BOB)
    syncer(alice).sync(str(hub_clone.path))
    path, data = _advisory(BOB.email if build == "actor" else who.email, "ab" * 20 if build == "none" else real)
    before = alice.store.head()
    forge(hub_clone.store, {path: data}, who)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any(words in f for f in refused.value.findings), refused.value.findings
    assert alice.store.head() == before


def test_an_owners_advisory_travels_with_sync_and_never_changes(hub, make_srpm):  # noqa: F811
    hub_clone, alice, bob = hub
    real = hub_clone.submit(make_srpm("traveller"), who=BOB)
    path, data = _advisory(BOB.email, real)
    forge(hub_clone.store, {path: data}, BOB)
    syncer(alice).sync(str(hub_clone.path))
    assert json.loads(alice.store.snapshot().read(path))["builds"] == [real]
    forge(hub_clone.store, {path: data.replace(b"a fix", b"a worse fix")}, BOB)
    with pytest.raises(HistoryRefused) as refused:
        syncer(alice).sync(str(hub_clone.path))
    assert any("may never change" in f for f in refused.value.findings)
