"""Signing and pushing from the cockpit, with the real gpg, rpmsign, rpmkeys
and createrepo_c: the Sign screen, the build screen's sign and push keys,
their refusals, and the passphrase, which must never show or stay."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import textual.constants
from textual.widgets import Input

from backends.artifacts import FileArtifactStore
from backends.gitstore import GitStateStore
from screens.build import BuildScreen
from screens.dialogs import CommandLogScreen, Confirm, Passphrase
from screens.sign import SignScreen
from tests.conftest import ALICE, BOB, CAROL, Clone, tree_files
from tests.test_signing import SECRET, built_and_approved, gnupg, phrase_file, queue  # noqa: F401 (fixtures)
from tests.tui_support import cockpit, drive, screen_text, settle


@pytest.fixture
def locked_key(queue, phrase_file):  # noqa: F811
    """The queue with a passphrase-protected key for target default."""
    assert queue("key", "create", "--target", "default", "--passphrase-file", phrase_file).code == 0
    return queue


def clone_of(sluice, isolated: Path) -> Clone:
    return Clone(Path(sluice.repo), GitStateStore.open(sluice.repo),
                 FileArtifactStore(str(isolated / ".local/share/sluice/artifacts")))


def on_sign_screen(sluice, isolated: Path, script, who):
    """Open the cockpit on the Sign screen as `who` and run `script(pilot, app)`."""
    app = cockpit(clone_of(sluice, isolated), who)

    async def go(pilot):
        app.open_sign()
        await settle(pilot, app)
        await script(pilot, app)
    drive(app, go)
    return app


def state(sluice, build: str) -> str:
    return sluice("--json", "show", build).json["state"]


def notices(app) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


async def press(pilot, app, *keys):
    await pilot.press(*keys)
    await settle(pilot, app)


async def type_passphrase(pilot, app, phrase: str):
    assert isinstance(app.screen, Passphrase)
    box = app.screen.query_one(Input)
    assert box.password  # drawn as dots, never as what was typed
    await press(pilot, app, *phrase.split(" ")[0])  # typed for real, key by key …
    box.value = phrase  # … and the rest set at once (spaces are key names in Pilot)
    shown = screen_text(app)
    assert phrase[:5] not in shown and "•" in shown
    await press(pilot, app, "enter")
    assert box.value == ""  # emptied before the dialog closed


def test_the_sign_screen_signs_the_selection_in_one_go(locked_key, make_srpm, isolated, tmp_path, caplog,
                                                       monkeypatch):
    first, second, third = built_and_approved(locked_key, make_srpm("one", "1.0", "1"),
                                              make_srpm("two", "1.0", "1"), make_srpm("three", "1.0", "1"))
    caplog.set_level(logging.DEBUG)
    log = tmp_path / "textual.log"
    monkeypatch.setattr(textual.constants, "LOG_FILE", str(log))
    app = cockpit(clone_of(locked_key, isolated), CAROL)

    async def script(pilot):
        await press(pilot, app, "S")
        assert isinstance(app.screen, SignScreen)
        assert "3 builds in needsign" in screen_text(app)
        rows = [r.id for r in app.screen.query_one("#needsign").rows]
        await press(pilot, app, "space")  # select the first, the cursor moves on
        await press(pilot, app, "j", "space")  # skip the second, select the third
        assert app.screen.chosen == {rows[0], rows[2]} and "2 selected" in screen_text(app)
        await press(pilot, app, "s")
        assert isinstance(app.screen, Confirm) and "Sign 2 builds" in screen_text(app)
        await press(pilot, app, "enter")  # the focused answer is No
        assert isinstance(app.screen, SignScreen) and app.commands_run == []
        await press(pilot, app, "s")
        await press(pilot, app, "y")
        await type_passphrase(pilot, app, SECRET)
        assert isinstance(app.screen, SignScreen)
        assert "signed" in notices(app)
        assert "1 build in needsign" in screen_text(app)  # the queue moved, the screen followed
        await press(pilot, app, "at")
        assert isinstance(app.screen, CommandLogScreen)
        assert f"sluice sign {rows[0][:7]} {rows[2][:7]}" in screen_text(app)
        return rows
    drive(app, script)
    signed = {b for b in (first, second, third) if state(locked_key, b) == "signed"}
    assert len(signed) == 2 and len({first, second, third} - signed) == 1
    assert app.commands_run[-1].outcome.startswith("done: ")
    for text in [c.command + c.outcome for c in app.commands_run] + [notices(app), caplog.text]:
        assert SECRET not in text
    assert log.stat().st_size > 0 and SECRET not in log.read_text()  # Textual's own log saw the whole session


def test_a_wrong_passphrase_signs_nothing_and_says_so(locked_key, make_srpm, isolated):
    [build] = built_and_approved(locked_key, make_srpm("wrongly", "1.0", "1"))
    before = tree_files(GitStateStore.open(locked_key.repo))
    async def script(pilot, app):
        await press(pilot, app, "s")  # nothing selected: the build under the cursor
        await press(pilot, app, "y")
        await type_passphrase(pilot, app, "not the passphrase")
        assert "sign: refused" in notices(app) and "wrong passphrase" in notices(app)
        assert "nothing was signed" in notices(app)
    app = on_sign_screen(locked_key, isolated, script, CAROL)
    assert state(locked_key, build) == "needsign"
    assert tree_files(GitStateStore.open(locked_key.repo)) == before
    assert app.commands_run[-1].command == f"sluice sign {build[:7]}"
    assert app.commands_run[-1].outcome.startswith("refused: wrong passphrase")
    assert "not the passphrase" not in notices(app) + app.commands_run[-1].outcome


def test_a_cancelled_passphrase_signs_nothing(locked_key, make_srpm, isolated):
    [build] = built_and_approved(locked_key, make_srpm("cancelled", "1.0", "1"))
    async def script(pilot, app):
        await press(pilot, app, "s")
        await press(pilot, app, "y")
        assert isinstance(app.screen, Passphrase)
        await press(pilot, app, "escape")
        assert isinstance(app.screen, SignScreen)
    app = on_sign_screen(locked_key, isolated, script, CAROL)
    assert state(locked_key, build) == "needsign" and app.commands_run == []


def test_someone_who_is_not_a_signer_is_refused_with_the_reason(locked_key, make_srpm, isolated):
    [build] = built_and_approved(locked_key, make_srpm("notmine", "1.0", "1"))
    before = tree_files(GitStateStore.open(locked_key.repo))
    async def script(pilot, app):
        await press(pilot, app, "space", "s")
        assert isinstance(app.screen, SignScreen)  # refused before any dialog
        assert "sign: refused" in notices(app) and "may not sign" in notices(app) and "signer" in notices(app)
    on_sign_screen(locked_key, isolated, script, BOB)
    assert tree_files(GitStateStore.open(locked_key.repo)) == before and state(locked_key, build) == "needsign"


def test_a_batch_not_ready_is_refused_and_names_the_member(locked_key, make_srpm, isolated):
    liba, libb = built_and_approved(locked_key, make_srpm("liba", "2.0", "1"), make_srpm("libb", "1.0", "2"),
                                    batch="abi")
    assert locked_key("hold", libb[:7], "-m", "not yet", user=BOB).code == 0
    async def script(pilot, app):
        await press(pilot, app, "s")
        assert isinstance(app.screen, SignScreen)
        assert "sign: refused" in notices(app) and "libb-1.0-2" in notices(app) and "held" in notices(app)
    on_sign_screen(locked_key, isolated, script, CAROL)
    assert state(locked_key, liba) == "needsign"


def test_sign_then_push_from_the_build_screen(locked_key, make_srpm, isolated):
    assert locked_key("policy", "grant", "signer", ALICE.email).code == 0
    [build] = built_and_approved(locked_key, make_srpm("shipped", "1.0", "1"))
    app = cockpit(clone_of(locked_key, isolated), ALICE)

    async def script(pilot):
        app.open_build(build)
        await settle(pilot, app)
        await press(pilot, app, "p")  # not signed yet: refused, no dialog
        assert isinstance(app.screen, BuildScreen) and "push-testing: refused" in notices(app)
        await press(pilot, app, "s")
        assert isinstance(app.screen, Confirm) and f"sluice sign {build[:7]}" in screen_text(app)
        await press(pilot, app, "y")
        await type_passphrase(pilot, app, SECRET)
        assert "signed" in screen_text(app)
        await press(pilot, app, "p")
        assert isinstance(app.screen, Confirm) and f"sluice push testing {build[:7]}" in screen_text(app)
        await press(pilot, app, "y")
        await type_passphrase(pilot, app, SECRET)  # publishing signs repomd.xml
        assert "testing" in screen_text(app)
        assert "testing default: 1 packages" in notices(app)  # what the publish said
    drive(app, script, size=(80, 24))
    assert state(locked_key, build) == "testing"
    assert [c.command for c in app.commands_run] == [f"sluice sign {build[:7]}", f"sluice push testing {build[:7]}"]
    repomd = isolated / ".local/share/sluice/repos/default/testing/repodata/repomd.xml.asc"
    assert repomd.exists()
    assert SECRET not in notices(app) + "".join(c.outcome for c in app.commands_run)


def test_a_key_without_a_passphrase_asks_for_none(queue, make_srpm, isolated):  # noqa: F811
    assert queue("key", "create", "--target", "default", "--no-passphrase").code == 0
    [build] = built_and_approved(queue, make_srpm("unattended", "1.0", "1"))
    async def script(pilot, app):
        await press(pilot, app, "s")
        assert isinstance(app.screen, Confirm)
        await press(pilot, app, "y")
        assert isinstance(app.screen, SignScreen)  # straight to the work: no passphrase field
        assert "0 builds in needsign" in screen_text(app)
    on_sign_screen(queue, isolated, script, CAROL)
    assert state(queue, build) == "signed"


def test_the_repos_screen_shows_what_a_push_would_add_and_opens_the_build(queue, make_srpm, isolated):  # noqa: F811
    assert queue("key", "create", "--target", "default", "--no-passphrase").code == 0
    [build] = built_and_approved(queue, make_srpm("pending", "1.0", "1"))
    assert queue("sign", build[:7], user=CAROL).code == 0
    app = cockpit(clone_of(queue, isolated), BOB)

    async def script(pilot):
        await press(pilot, app, "R")
        text = screen_text(app)
        assert "buildroot: 1 package" in text and "testing: 0 packages" in text
        assert f"sluice push testing {build[:7]} would:" in text and "+ testing" in text
        table = app.screen.query_one("#repos")
        at = next(n for n, line in enumerate(table.rows) if line.change == "+ testing")
        table.move_to(at)
        await press(pilot, app, "enter")
        assert isinstance(app.screen, BuildScreen) and app.screen.build_id == build
        await press(pilot, app, "escape")
        assert queue("push", "testing", build[:7], user=CAROL).code == 0
        app.poll(force=True)  # as the poller does when the ref moves
        await settle(pilot, app)
        text = screen_text(app)
        assert "testing: 1 package, manifest 1" in text and "would:" not in text
    drive(app, script)
