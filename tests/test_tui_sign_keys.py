"""The Sign and Repos screens' keys, help and palette, without a signing key:
selection, remapping, and what `?` and `ctrl+p` list (the signing itself is
in test_tui_sign.py, with real keys)."""
from __future__ import annotations

import pytest

from app import keymap
from app.actions import Action
from app.model import Op
from screens.dialogs import HelpScreen
from screens.repos import ReposScreen
from screens.sign import SignScreen
from tests.conftest import ALICE, BOB, tree_files
from tests.tui_support import cockpit, drive, screen_text, settle


@pytest.fixture
def needsign(clone, make_srpm):
    ids = []
    for name in ("alpha", "beta", "gamma"):
        build = clone.submit(make_srpm(name), who=BOB)
        clone.built(build)
        clone.queue(BOB).perform(Action(Op.APPROVE, build))
        ids.append(build)
    return ids


async def press(pilot, app, *keys):
    await pilot.press(*keys)
    await settle(pilot, app)


def notices(app) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


def test_space_selects_and_a_selects_all_or_none(clone, needsign):
    app = cockpit(clone)

    async def script(pilot):
        await press(pilot, app, "S")
        assert isinstance(app.screen, SignScreen)
        await press(pilot, app, "space", "space")
        assert len(app.screen.chosen) == 2 and "2 selected" in screen_text(app)
        await press(pilot, app, "k", "space")  # again: unselect
        assert len(app.screen.chosen) == 1
        await press(pilot, app, "a")
        assert app.screen.chosen == set(needsign)
        await press(pilot, app, "a")
        assert app.screen.chosen == set()
    drive(app, script)


def test_a_build_that_leaves_needsign_leaves_the_screen_and_the_selection(clone, needsign):
    app = cockpit(clone)

    async def script(pilot):
        app.open_sign()
        await settle(pilot, app)
        await press(pilot, app, "a")
        clone.queue(BOB).perform(Action(Op.HOLD, needsign[0], "wait"))  # another terminal
        app.poll(force=True)
        await settle(pilot, app)
        assert app.screen.chosen == set(needsign[1:]) and "2 builds in needsign" in screen_text(app)
    drive(app, script)


def test_without_a_key_for_the_target_signing_is_refused_before_any_dialog(clone, needsign):
    clone.admin().grant("signer", ALICE.email)
    before = tree_files(clone.store)
    app = cockpit(clone)

    async def script(pilot):
        app.open_sign()
        await settle(pilot, app)
        await press(pilot, app, "a", "s")
        assert isinstance(app.screen, SignScreen)
        assert "sign: refused" in notices(app) and "has no signing key" in notices(app)
    drive(app, script)
    assert tree_files(clone.store) == before and app.commands_run == []


def test_help_lists_the_sign_screens_keys_and_the_queue_lists_both_screens(clone, needsign):
    app = cockpit(clone)

    async def script(pilot):
        await press(pilot, app, "question_mark")
        text = screen_text(app)
        assert "the repos: what they hold" in text and "sign: the builds waiting" in text
        await press(pilot, app, "escape", "S", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "select the build" in text and "sign the selection" in text and "space" in text
    drive(app, script)


def test_help_on_the_repos_screen(clone):
    app = cockpit(clone)

    async def script(pilot):
        await press(pilot, app, "R")
        assert isinstance(app.screen, ReposScreen)
        assert "buildroot: 0 packages" in screen_text(app)
        await press(pilot, app, "question_mark")
        assert "open the build of the line" in screen_text(app)
    drive(app, script)


def test_a_remapped_sign_key_acts(clone, needsign):
    keys = keymap.Keymap({**keymap.default().keys,
                          "sign_selected": keymap.Key("sign_selected", "ctrl+s", "sign", "sign")})
    app = cockpit(clone, BOB, keys=keys)

    async def script(pilot):
        app.open_sign()
        await settle(pilot, app)
        await press(pilot, app, "s")
        assert notices(app) == ""  # the old key does nothing now
        await press(pilot, app, "ctrl+s")
        assert "sign: refused" in notices(app) and "may not sign" in notices(app)
    drive(app, script)


def test_the_palette_lists_the_new_screens_and_sign_actions(clone, needsign):
    app = cockpit(clone)

    async def script(pilot):
        titles = [c[0] for c in app.screen.commands()]
        assert "Repos" in titles and "Sign" in titles
        app.open_sign()
        await settle(pilot, app)
        titles = [c[0] for c in app.screen.commands()]
        assert "Sign the selection" in titles and "Select every build" in titles
        await press(pilot, app, "ctrl+p")
        await pilot.press(*"Select every")
        await pilot.pause(0.3)
        await press(pilot, app, "enter")
        assert app.screen.chosen == set(needsign)
    drive(app, script)
