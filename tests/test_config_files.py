"""policy.toml, target TOML and the local config: round trips and errors that
name the file and line."""
from __future__ import annotations

import pytest

from app import config
from app.errors import ConfigError, UsageError
from app.policy import Policy
from app.targets import ExternalRepo, Target
from tests.conftest import dedent


def test_policy_round_trips_through_toml():
    policy = Policy.initial("alice@example.org").grant("owner", "bob@example.org", "kde*") \
        .grant("owner", "bob@example.org", "inventor").grant("tester", "carol@example.org")
    again = Policy.parse(policy.dump())
    assert again == policy
    assert again.has("bob@example.org", "owner", "kdelibs")
    assert again.has("bob@example.org", "owner", "inventor")
    assert not again.has("bob@example.org", "owner", "kernel")


def test_revoke_one_glob_keeps_the_others_and_never_the_last_admin():
    policy = Policy.initial("alice@example.org").grant("owner", "bob@example.org", "a*") \
        .grant("owner", "bob@example.org", "b*")
    policy = policy.revoke("owner", "bob@example.org", "a*")
    assert policy.has("bob@example.org", "owner", "bash") and not policy.has("bob@example.org", "owner", "apr")
    with pytest.raises(UsageError, match="without an admin"):
        policy.revoke("admin", "alice@example.org")
    with pytest.raises(UsageError, match="holds no"):
        policy.revoke("signer", "bob@example.org")


@pytest.mark.parametrize("text, line, words", [
    ('version = 1\n[[grant]]\nrole = "admin"\nemail = "a@x"\n[[grant\n', 5, "line 5"),
    ('[[grant]]\nrole = "admin"\nemail = "a@x"\n\n[[grant]]\nrole = "admn"\nemail = "b@x"\n', 5, "unknown role"),
    ('[[grant]]\nrole = "admin"\nemail = "a@x"\nowner_may_mark_tested = 1\n', 1, "unknown key"),
    ('owner_may_mark_tested = "yes"\n[[grant]]\nrole = "admin"\nemail = "a@x"\n', 1, "true or false"),
    ('colour = "blue"\n[[grant]]\nrole = "admin"\nemail = "a@x"\n', 1, "unknown setting"),
    ('[[grant]]\nrole = "owner"\nemail = "a@x"\n', None, "no admin"),
])
def test_malformed_policy_names_file_and_line(text, line, words):
    with pytest.raises(ConfigError) as refused:
        Policy.parse(text.encode(), "policy.toml")
    message = str(refused.value)
    assert message.startswith("policy.toml")
    if line:
        assert f"line {line}" in message
    assert words in message


def test_target_round_trips_and_checks_values():
    target = Target("epel9", ("x86_64", "aarch64"), {"aarch64": "rocky-9-aarch64"}, ".el9",
                    (ExternalRepo("epel", "https://mirror/epel/9"), ExternalRepo("base", "file:///srv/base")))
    again = Target.parse("epel9", target.dump())
    assert again == target
    assert again.mock_config_for("x86_64") == "default"
    assert [r.name for r in again.external_repos] == ["epel", "base"]  # order is priority
    with pytest.raises(UsageError):
        Target("bad name", ("x86_64",))
    with pytest.raises(UsageError):
        Target("t", ("x86_64",), {"ppc64le": "c"})
    with pytest.raises(UsageError):
        Target("t", ("x86_64",), external_repos=(ExternalRepo("r", "not a url"),))


def test_external_repos_sort_by_priority_and_keep_the_file_order_on_ties():
    text = (b'arches = ["x86_64"]\n[[external_repo]]\nname = "late"\nurl = "https://m/late"\npriority = 50\n'
            b'[[external_repo]]\nname = "epel"\nurl = "https://m/epel"\npriority = 10\n'
            b'[[external_repo]]\nname = "base"\nurl = "https://m/base"\n'
            b'[[external_repo]]\nname = "also50"\nurl = "https://m/also"\npriority = 50\n')
    target = Target.parse("t", text)
    assert [r.name for r in target.external_repos] == ["epel", "late", "also50", "base"]
    assert Target.parse("t", target.dump()) == target
    for bad in (0, 100, True, "1"):
        with pytest.raises(UsageError):
            Target("t", ("x86_64",), external_repos=(ExternalRepo("r", "https://m/r", bad),))
    with pytest.raises(UsageError):  # the target's own builds are "buildroot" in `show`
        Target("t", ("x86_64",), external_repos=(ExternalRepo("buildroot", "https://m/r"),))
    with pytest.raises(ConfigError) as refused:
        Target.parse("t", b'arches = ["x86_64"]\n[[external_repo]]\nname = "r"\nurl = "https://m"\nprio = 1\n')
    assert "priority (1-99)" in str(refused.value)


@pytest.mark.parametrize("text, words", [
    ('arches = ["x86_64"\n', "line 1"),
    ('arches = ["x86_64"]\ndist_tag = 5\n', "line 2"),
    ('arches = ["x86_64"]\nsupersede = true\nmock = "x"\n', "line 3"),
    ('arches = "x86_64"\n', "line 1"),
])
def test_malformed_target_names_file_and_line(text, words):
    with pytest.raises(ConfigError) as refused:
        Target.parse("t", text.encode(), "t.toml")
    assert str(refused.value).startswith("t.toml") and words in str(refused.value)


def test_local_config_and_paths(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text(dedent("""
        repo = "~/queues/state.git"
        remote = "origin"
    """))
    local = config.load(str(path))
    where = config.paths(local)
    assert where.repo.endswith("/queues/state.git") and not where.is_default
    assert config.paths(local, "/x/y").repo == "/x/y"
    assert config.paths(config.load(None)).is_default
    monkeypatch.setenv("SLUICE_REPO", "/from/env")
    assert config.paths(config.load(None)).repo == "/from/env"
    path.write_text('repo = "x"\nreop = "typo"\n')
    with pytest.raises(ConfigError, match="line 2"):
        config.load(str(path))
    path.write_text('repo = "x"\n\n[kyes]\nhold = "H"\n')  # a misspelt table is caught too
    with pytest.raises(ConfigError, match=r"line 3: unknown setting 'kyes'"):
        config.load(str(path))
    with pytest.raises(UsageError, match="no config file"):
        config.load(str(tmp_path / "missing.toml"))
