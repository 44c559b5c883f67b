"""The headless CLI: the contract's commands, JSON shapes, exit codes, and bad
input that changes nothing."""
from __future__ import annotations

import os

import pytest

from backends.gitstore import GitStateStore
from tests.conftest import ALICE, BOB, CAROL, MALLORY, Clone, tree_files


@pytest.fixture
def queue(sluice):
    """An initialised queue at sluice.repo where bob owns every package."""
    assert sluice("init").code == 0
    assert sluice("policy", "grant", "owner", BOB.email).code == 0
    return sluice


def built(sluice, build_id: str) -> None:
    from backends.artifacts import FileArtifactStore
    store = GitStateStore.open(sluice.repo)
    Clone(None, store, FileArtifactStore("/nonexistent")).built(build_id)


def submit(sluice, srpm, *extra, user=BOB) -> dict:
    result = sluice("--json", "submit", str(srpm), *extra, user=user)
    assert result.code == 0, result.err
    return result.json[0]


def unchanged(sluice):
    """A context manager proving the state tree is byte-for-byte the same."""
    class Same:
        def __enter__(self):
            self.before = tree_files(GitStateStore.open(sluice.repo))

        def __exit__(self, *exc):
            assert tree_files(GitStateStore.open(sluice.repo)) == self.before
    return Same()


# ------------------------------------------------------------------ the happy path

def test_init_makes_the_user_admin_and_a_default_target(sluice):
    result = sluice("init")
    assert result.code == 0 and ALICE.email in result.out
    grants = sluice("--json", "policy", "show").json["grants"]
    assert {"role": "admin", "email": ALICE.email, "packages": ["*"]} in grants
    target = sluice("--json", "target", "show", "default").json
    assert target["arches"] == [os.uname().machine]
    again = sluice("init")
    assert again.code == 4 and "already holds a sluice queue" in again.err


def test_submit_then_list_and_show_in_json(queue, make_srpm):
    summary = submit(queue, make_srpm("inventor", "2.1.5", "12", "BuildRequires: gcc"), "--batch", "kde")
    assert set(summary) == {"id", "package", "nvr", "owner", "target", "state", "arches", "batch",
                            "scratch", "contested", "created", "updated"}
    assert (summary["nvr"], summary["owner"], summary["state"], summary["batch"]) == \
        ("inventor-2.1.5-12", BOB.email, "queued", "kde")
    listed = queue("--json", "list").json
    assert listed == [summary]
    shown = queue("--json", "show", summary["id"][:7]).json
    assert shown["id"] == summary["id"]
    assert [e["op"] for e in shown["events"]] == ["submit"]
    assert shown["tasks"] == [{"arch": os.uname().machine, "state": "queued", "host": None, "attempts": [],
                              "logs": {}}]
    srpm = shown["artifacts"][0]
    assert srpm["arch"] == "src" and len(srpm["sha256"]) == 64 and srpm["signed_by"] is None
    assert shown["buildrequires"] == ["gcc"]
    assert "cancel" in queue("--json", "show", summary["id"], user=BOB).json["allowed"]


def test_submit_stores_the_srpm_by_digest(queue, make_srpm, isolated):
    srpm = make_srpm("stored")
    shown = queue("--json", "show", submit(queue, srpm)["id"]).json
    digest = shown["artifacts"][0]["sha256"]
    stored = isolated / ".local/share/sluice/artifacts/sha256" / digest[:2] / digest
    assert stored.read_bytes() == srpm.read_bytes()


def test_list_filters(queue, make_srpm):
    a = submit(queue, make_srpm("alpha"))
    b = submit(queue, make_srpm("beta"), user=ALICE)
    assert queue("--json", "cancel", "--yes", a["id"], user=BOB).code == 0
    ids = lambda *args, user=ALICE: [s["id"] for s in queue("--json", "list", *args, user=user).json]  # noqa: E731
    assert ids() == [b["id"], a["id"]]  # newest first
    assert ids("--state", "cancelled") == [a["id"]]
    assert ids("--state", "cancelled", "--state", "queued") == [b["id"], a["id"]]
    assert ids("--owner", BOB.email) == [a["id"]]
    assert ids("--mine", user=BOB) == [a["id"]]
    assert ids("--package", "be*") == [b["id"]]
    assert ids("--target", "default", "-n", "1") == [b["id"]]
    assert ids("--target", "nope") == []
    human = queue("list").out
    assert "alpha-1.0-1" in human and "cancelled" in human and a["id"][:7] in human


def test_the_review_cycle_hold_unhold_approve_withdraw(queue, make_srpm):
    build = submit(queue, make_srpm("inventor"))["id"]
    built(queue, build)
    held = queue("hold", build[:7], "-m", "waiting for libcdio", user=BOB)
    assert held.code == 0 and "built -> held" in held.out
    assert queue("unhold", build, user=BOB).code == 0
    assert queue("--json", "approve", build, user=BOB).json[0]["state"] == "needsign"
    assert queue("hold", build, "-m", "found a bug", user=BOB).code == 0
    assert queue("--json", "unhold", build, user=BOB).json[0]["state"] == "needsign"  # back where it was
    assert queue("--yes", "withdraw", build, "-m", "broken ABI", user=BOB).code == 0
    shown = queue("--json", "show", build).json
    assert [e["op"] for e in shown["events"]][-6:] == ["hold", "unhold", "approve", "hold", "unhold", "withdraw"]
    assert shown["events"][-1]["reason"] == "broken ABI"
    log = queue("--json", "history", build[:8]).json
    assert [e["op"][0] for e in log][:3] == ["withdraw", "unhold", "hold"]
    assert log[0]["reason"] == "broken ABI" and log[0]["actor"] == [BOB.email]


def test_mark_tested_in_the_wrong_state_names_the_state(queue, make_srpm):
    build = submit(queue, make_srpm("tested"))["id"]
    # reaching testing needs signing, which has not landed; the tester/owner rule is tested in test_fold
    assert queue("policy", "grant", "tester", CAROL.email).code == 0
    refused = queue("mark-tested", build, user=CAROL)
    assert refused.code == 4 and "it is queued" in refused.err


def test_resubmit_after_cancel(queue, make_srpm):
    build = submit(queue, make_srpm("again"))["id"]
    assert queue("--yes", "cancel", build, user=BOB).code == 0
    result = queue("--json", "resubmit", build, user=BOB)
    assert result.json[0]["state"] == "queued" and result.json[0]["arches"] == {os.uname().machine: "queued"}


def test_batch_approve_is_all_or_nothing(queue, make_srpm):
    lib_a = submit(queue, make_srpm("libA", "2.0"), "--batch", "abi")["id"]
    lib_b = submit(queue, make_srpm("libB", "1.1"), "--batch", "abi")["id"]
    built(queue, lib_a)
    refused = queue("approve", lib_a, user=BOB)
    assert refused.code == 4 and "libB-1.1-1" in refused.err and "is queued" in refused.err
    assert queue("--json", "show", lib_a).json["state"] == "built"
    built(queue, lib_b)
    approved = queue("--json", "approve", lib_b, user=BOB).json
    assert {s["id"] for s in approved} == {lib_a, lib_b} and {s["state"] for s in approved} == {"needsign"}
    commit = queue("--json", "history", "-n", "1").json[0]
    assert sorted(commit["build"]) == sorted([lib_a, lib_b])  # one commit for the whole batch


def test_policy_and_target_commands(queue):
    assert queue("policy", "grant", "signer", "sam@example.org", "--package", "kde*").code == 0
    grants = queue("--json", "policy", "show").json["grants"]
    assert {"role": "signer", "email": "sam@example.org", "packages": ["kde*"]} in grants
    assert queue("policy", "revoke", "signer", "sam@example.org").code == 0
    assert queue("target", "add", "epel9", "--arch", "x86_64", "--arch", "aarch64", "--mock-config",
                 "aarch64=rocky-9-aarch64", "--dist-tag", ".el9", "--external-repo",
                 "epel=https://example.org/epel/9").code == 0
    target = queue("--json", "target", "show", "epel9").json
    assert target["mock_config"] == {"x86_64": "default", "aarch64": "rocky-9-aarch64"}
    assert target["external_repos"] == [{"name": "epel", "url": "https://example.org/epel/9", "priority": 99}]
    assert [t["name"] for t in queue("--json", "target", "list").json] == ["default", "epel9"]
    assert queue("target", "add", "epel9", "--arch", "x86_64").code == 4
    log = queue("--json", "history", "--op", "policy-grant").json
    assert log[0]["email"] == ["sam@example.org"] and log[0]["author"] == ALICE.email


def test_embedded_default_is_created_on_first_use(sluice, isolated):
    result = sluice("--json", "list", repo_path=None)
    assert result.code == 0 and result.json == []
    assert (isolated / ".local/share/sluice/state.git/HEAD").exists()
    assert "created a new queue" in result.err
    assert sluice("list", repo_path=None).err == ""


def test_identity_from_git_config(sluice, monkeypatch, isolated):
    monkeypatch.delenv("SLUICE_USER")
    (isolated / ".gitconfig").write_text("[user]\n\temail = dora@example.org\n\tname = Dora\n")
    assert sluice("init").code == 0
    assert sluice("--json", "policy", "show").json["grants"][0]["email"] == "dora@example.org"
    (isolated / ".gitconfig").write_text("")
    result = sluice("policy", "grant", "owner", "x@example.org")
    assert result.code == 3 and "acting as" in result.err and "SLUICE_USER" in result.err
    (isolated / ".gitconfig").write_text("[user]\n\temail = not-an-address\n")
    assert sluice("policy", "show").code == 2


def test_no_identity_at_all_is_a_usage_error_not_a_traceback(sluice, monkeypatch):
    monkeypatch.delenv("SLUICE_USER")

    def no_login():
        raise KeyError("getpwuid(): uid not found: 4242")
    monkeypatch.setattr("getpass.getuser", no_login)
    result = sluice("init")
    assert result.code == 2 and "cannot tell who you are" in result.err and "SLUICE_USER" in result.err


# ------------------------------------------------------------------ bad input

def test_a_file_that_is_not_an_srpm(queue, tmp_path, isolated):
    junk = tmp_path / "junk.src.rpm"
    junk.write_text("hello")
    with unchanged(queue):
        result = queue("submit", str(junk), user=BOB)
    assert result.code == 2 and "not a readable RPM" in result.err and "sluice: error:" in result.err
    assert not (isolated / ".local/share/sluice/artifacts/sha256").exists()


def test_a_truncated_srpm(queue, make_srpm, tmp_path):
    data = make_srpm("cut").read_bytes()
    cut = tmp_path / "cut.src.rpm"
    cut.write_bytes(data[:-200])
    with unchanged(queue):
        result = queue("submit", str(cut), user=BOB)
    assert result.code == 2 and "truncated or corrupted" in result.err


def test_one_bad_srpm_refuses_the_whole_submit(queue, make_srpm, tmp_path):
    junk = tmp_path / "junk.src.rpm"
    junk.write_text("x")
    with unchanged(queue):
        assert queue("submit", str(make_srpm("good")), str(junk), user=BOB).code == 2


def test_an_unknown_id_prefix(queue, make_srpm):
    submit(queue, make_srpm())
    with unchanged(queue):
        for args, code in ((("show", "ffffffff"), 2), (("hold", "0000", "-m", "x"), 2), (("show", "xyz!"), 2),
                           (("show", "ab"), 2)):
            result = queue(*args)
            assert result.code == code
            assert "sluice list" in result.err or "hex digits" in result.err


def test_an_ambiguous_id_prefix(queue, make_srpm, monkeypatch):
    import app.submit
    ids = iter(["abcd" + "1" * 36, "abcd" + "2" * 36])
    monkeypatch.setattr(app.submit.secrets, "token_hex", lambda n: next(ids))
    submit(queue, make_srpm("one"))
    submit(queue, make_srpm("two"))
    with unchanged(queue):
        result = queue("hold", "abcd", "-m", "x", user=BOB)
    assert result.code == 2 and "matches 2 builds" in result.err and "one-1.0-1" in result.err
    assert queue("show", "abcd1").code == 0


def test_a_transition_not_allowed_in_the_current_state(queue, make_srpm):
    build = submit(queue, make_srpm())["id"]
    with unchanged(queue):
        result = queue("approve", build, user=BOB)
    assert result.code == 4
    assert "it is queued" in result.err and "you may: cancel" in result.err


def test_an_action_the_policy_does_not_allow(queue, make_srpm):
    build = submit(queue, make_srpm())["id"]
    with unchanged(queue):
        for args in (("--yes", "cancel", build), ("policy", "grant", "admin", MALLORY.email),
                     ("target", "add", "x", "--arch", "x86_64")):
            result = queue(*args, user=MALLORY)
            assert result.code == 3, args
            assert "may not" in result.err
        refused = queue("submit", str(make_srpm("mine")), user=MALLORY)
    assert refused.code == 3 and "policy grant owner" in refused.err


@pytest.mark.parametrize("op", ["hold", "withdraw"])
def test_hold_and_withdraw_need_a_reason(queue, make_srpm, op):
    build = submit(queue, make_srpm())["id"]
    with unchanged(queue), pytest.raises(SystemExit) as usage:
        queue(op, build)
    assert usage.value.code == 2
    with unchanged(queue):
        empty = queue("--yes", op, build, "-m", "  ", user=BOB)
    assert empty.code == 2 and "reason" in empty.err


def test_destructive_actions_need_confirmation_without_a_terminal(queue, make_srpm):
    build = submit(queue, make_srpm())["id"]
    with unchanged(queue):
        result = queue("cancel", build, user=BOB)
    assert result.code == 2 and "--yes" in result.err


def test_malformed_policy_file(queue, tmp_path):
    bad = tmp_path / "policy.toml"
    bad.write_text('[[grant]]\nrole = "admin"\nemail = "alice@example.org"\n\n[[grant]]\nrole = "boss"\n'
                   'email = "x@example.org"\n')
    with unchanged(queue):
        result = queue("policy", "load", str(bad))
    assert result.code == 2 and f"{bad}, line 5" in result.err and "unknown role" in result.err
    bad.write_text('[[grant]\n')
    assert f"{bad}, line 1" in queue("policy", "load", str(bad)).err


def test_malformed_target_file(queue, tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text('arches = ["x86_64"]\ndist_tag = .el9\n')
    with unchanged(queue):
        result = queue("target", "load", "epel9", str(bad))
    assert result.code == 2 and f"{bad}, line 2" in result.err
    good = tmp_path / "good.toml"
    good.write_text('arches = ["x86_64"]\ndist_tag = ".el9"\n')
    assert queue("target", "load", "epel9", str(good)).code == 0


def test_submitting_an_nvr_that_is_already_in_the_target(queue, make_srpm):
    srpm = make_srpm("dup")
    first = submit(queue, srpm)["id"]
    with unchanged(queue):
        result = queue("submit", str(srpm), user=BOB)
    assert result.code == 4 and first[:7] in result.err and "bump the release" in result.err
    assert queue("submit", "--scratch", str(srpm), user=BOB).code == 0
    assert queue("--yes", "cancel", first, user=BOB).code == 0
    assert queue("submit", str(srpm), user=BOB).code == 0  # a cancelled NVR may be built again


def test_submit_to_an_unknown_target_or_arch(queue, make_srpm):
    with unchanged(queue):
        result = queue("submit", "--target", "nope", str(make_srpm()), user=BOB)
        assert result.code == 2 and "no target 'nope'" in result.err and "default" in result.err
        result = queue("submit", "--arch", "ppc64le", str(make_srpm()), user=BOB)
        assert result.code == 2 and "does not build ppc64le" in result.err
        result = queue("submit", str(make_srpm("nothere", extra=f"ExcludeArch: {os.uname().machine}")), user=BOB)
        assert result.code == 2 and "builds on none" in result.err


def test_commands_on_a_repo_without_a_queue(sluice, tmp_path):
    GitStateStore.open(str(tmp_path / "empty.git"), create=True)
    result = sluice("list", repo_path=str(tmp_path / "empty.git"))
    assert result.code == 2 and "sluice --repo" in result.err and "init" in result.err
    result = sluice("list", repo_path=str(tmp_path / "missing.git"))
    assert result.code == 2 and "sluice init" in result.err


def test_no_command_summarises_the_queue(queue, make_srpm):
    first = submit(queue, make_srpm("one"))["id"]
    submit(queue, make_srpm("two"))
    assert queue("--yes", "cancel", first, user=BOB).code == 0
    summary = queue("--json").json
    assert summary["builds"] == 2 and summary["states"] == {"queued": 1, "cancelled": 1}
    assert "1 queued, 1 cancelled" in queue().out or "1 cancelled, 1 queued" in queue().out
