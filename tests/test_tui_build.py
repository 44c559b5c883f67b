"""The build screen: every action through its key, with the dialogs it
opens, and the refusals (each says why and changes nothing)."""
from __future__ import annotations

import io

import pytest

from app import builds
from app.actions import Action
from app.model import Op, State
from app.queue import make_event
from screens.build import BuildScreen
from screens.dialogs import Choose, CommandLogScreen, Confirm, HelpScreen, Reason
from tests.conftest import ALICE, BOB, CAROL, forge, tree_files
from tests.tui_support import cockpit, drive, screen_text, settle


@pytest.fixture
def built(clone, make_srpm):
    build = clone.submit(make_srpm("inventor"), who=BOB)
    clone.built(build)
    return build


def on_build(clone, build, script, who=ALICE, size=(80, 24)):
    """Open the cockpit straight on `build`'s screen and run `script(pilot, app)`."""
    app = cockpit(clone, who)

    async def go(pilot):
        app.open_build(build)
        await settle(pilot, app)
        assert isinstance(app.screen, BuildScreen)
        await script(pilot, app)
    drive(app, go, size)
    return app


def notices(app) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


async def answer(pilot, app, text):
    """Type `text` into the dialog's input box and press enter."""
    from textual.widgets import Input
    app.screen.query_one(Input).value = text
    await _press(pilot, app, "enter")


async def _press(pilot, app, *keys):
    await pilot.press(*keys)
    await settle(pilot, app)


def test_approve(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "a")
        assert "sluice approve" in notices(app)
        assert "needsign" in screen_text(app)
    app = on_build(clone, built, script)
    assert clone.state(built) is State.NEEDSIGN
    assert app.commands_run[-1].command == f"sluice approve {built[:7]}"


def test_hold_asks_why_and_keeps_the_reason(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "h")
        assert isinstance(app.screen, Reason)
        await answer(pilot, app, "waiting for libcdio")
        assert isinstance(app.screen, BuildScreen)
    app = on_build(clone, built, script, who=BOB)
    view = clone.queue().view(built)
    assert view.state is State.HELD and view.events[-1].event.reason == "waiting for libcdio"
    assert app.commands_run[-1].command == f"sluice hold {built[:7]} -m 'waiting for libcdio'"


def test_hold_cancelled_at_the_reason_changes_nothing(clone, built):
    before = tree_files(clone.store)

    async def script(pilot, app):
        await _press(pilot, app, "h")
        await _press(pilot, app, "escape")
        assert isinstance(app.screen, BuildScreen)
    app = on_build(clone, built, script)
    assert tree_files(clone.store) == before and app.commands_run == []


def test_unhold(clone, built):
    clone.queue().perform(Action(Op.HOLD, built, "wait"))
    on_build(clone, built, lambda pilot, app: _press(pilot, app, "u"))
    assert clone.state(built) is State.BUILT


def test_withdraw_confirms_and_enter_means_no(clone, built):
    before = tree_files(clone.store)

    async def script(pilot, app):
        await _press(pilot, app, "w")
        await answer(pilot, app, "broken abi")
        assert isinstance(app.screen, Confirm)
        assert "sluice withdraw" in screen_text(app)
        await _press(pilot, app, "enter")  # the focused answer is No
        assert isinstance(app.screen, BuildScreen)
    on_build(clone, built, script)
    assert tree_files(clone.store) == before


def test_withdraw_confirmed(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "w")
        await answer(pilot, app, "broken abi")
        await _press(pilot, app, "y")
        assert "withdrawn" in screen_text(app)
    app = on_build(clone, built, script)
    assert clone.state(built) is State.WITHDRAWN
    assert "done: withdrew" in app.commands_run[-1].outcome


def test_cancel_confirms_then_resubmit(clone, make_srpm):
    build = clone.submit(make_srpm("queued-one"))

    async def script(pilot, app):
        await _press(pilot, app, "c")
        assert isinstance(app.screen, Confirm)
        await _press(pilot, app, "y")
        assert clone.state(build) is State.CANCELLED
        await _press(pilot, app, "r")
    app = on_build(clone, build, script)
    assert clone.state(build) is State.QUEUED
    assert [c.command for c in app.commands_run] == [f"sluice cancel {build[:7]}",
                                                     f"sluice resubmit {build[:7]}"]


def test_mark_tested_by_a_tester(clone, built):
    clone.admin().grant("signer", CAROL.email)
    clone.admin().grant("tester", CAROL.email)
    clone.queue(BOB).perform(Action(Op.APPROVE, built))
    clone.queue(CAROL).perform(Action(Op.SIGN, built))
    clone.queue(CAROL).perform(Action(Op.PUSH_TESTING, built))
    on_build(clone, built, lambda pilot, app: _press(pilot, app, "t"), who=CAROL)
    assert clone.state(built) is State.TESTED


def test_resolve_offers_the_contending_states(clone, built):
    view = clone.queue().view(built)
    approve = make_event(view, Op.APPROVE, BOB.email, "b0b00002")
    withdraw = make_event(view, Op.WITHDRAW, ALICE.email, "a11ce001", reason="abi")
    files = {builds.event_path(built, e.encode()[0]): e.encode()[1] for e in (approve, withdraw)}
    forge(clone.store, files, ALICE, "two clones decided at once")
    assert clone.queue().view(built).contested

    async def script(pilot, app):
        assert "contested" in screen_text(app)
        await _press(pilot, app, "x")
        assert isinstance(app.screen, Choose)
        await pilot.press("down")  # choices are in the view's order: pick the other one too
        await pilot.press("up")
        await _press(pilot, app, "enter")
    on_build(clone, built, script)
    view = clone.queue().view(built)
    assert not view.contested and view.state in (State.NEEDSIGN, State.WITHDRAWN)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("key, op, words", [
    ("c", "cancel", "it is built"),  # not in this state
    ("s", "sign", "that needs signer"),  # not permitted (admins too need the signer role)
    ("p", "push-testing", "it is built"),
    ("P", "push-stable", "it is built"),
    ("R", "rescue", "cannot rescue"),  # rescue is for failed-to-import builds
    ("t", "mark-tested", "that needs tester"),  # not permitted
    ("x", "resolve", "not contested"),
    ("u", "unhold", "it is built"),
    ("r", "resubmit", "it is built"),
])
def test_a_refused_action_says_why_and_changes_nothing(clone, built, key, op, words):
    before = tree_files(clone.store)

    async def script(pilot, app):
        await _press(pilot, app, key)
        assert isinstance(app.screen, BuildScreen)  # no dialog was opened
        assert f"{op}: refused" in notices(app) and words in notices(app)
    on_build(clone, built, script)
    assert tree_files(clone.store) == before


def test_someone_without_the_role_is_refused_before_any_dialog(clone, built):
    from tests.conftest import MALLORY

    async def script(pilot, app):
        assert "nothing in this state" in screen_text(app)
        await _press(pilot, app, "w")
        assert isinstance(app.screen, BuildScreen)
        assert "may not withdraw" in notices(app) and "policy grant owner" in notices(app)
    on_build(clone, built, script, who=MALLORY)
    assert clone.state(built) is State.BUILT


def test_a_race_lost_after_the_check_is_reported_not_lost(clone, built):
    """Someone else moves the build between the check and the write."""
    async def script(pilot, app):
        await _press(pilot, app, "w")
        await answer(pilot, app, "bad")
        clone.queue(BOB).perform(Action(Op.HOLD, built, "mine now"))
        await _press(pilot, app, "y")
    app = on_build(clone, built, script)
    assert clone.state(built) is State.WITHDRAWN  # held -> withdrawn is allowed too
    assert app.commands_run[-1].outcome.startswith("done")


# ---------------------------------------------------------------- everywhere


def test_help_lists_this_screens_keys(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "withdraw for good" in text and "hold (asks why)" in text
        await _press(pilot, app, "escape")
        assert isinstance(app.screen, BuildScreen)
    on_build(clone, built, script)


def test_the_command_log_shows_the_cli_equivalent(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "a")
        await _press(pilot, app, "at")
        assert isinstance(app.screen, CommandLogScreen)
        assert f"sluice approve {built[:7]}" in screen_text(app)
    on_build(clone, built, script)


def test_the_palette_runs_an_action(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "ctrl+p")
        await pilot.press(*"Approve")
        await pilot.pause(0.3)
        await _press(pilot, app, "enter")
    on_build(clone, built, script)
    assert clone.state(built) is State.NEEDSIGN


def test_escape_goes_back_to_the_queue(clone, built):
    async def script(pilot, app):
        await _press(pilot, app, "escape")
        assert not isinstance(app.screen, BuildScreen)
    on_build(clone, built, script)


def test_what_the_builders_add_to_detail_is_shown_when_present():
    """hosts, attempts and durations, signers and waits: rendered when
    `detail()` has them (the builders fill them in), skipped when not."""
    from rich.console import Console
    from screens.build import artifacts_table, summary, tasks_table

    def text(renderable) -> str:
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(renderable)
        return console.export_text()
    # the shape BuildView.detail() gives: the task's host, attempts with started/ended
    tasks = [{"arch": "x86_64", "state": "built", "host": "builder2", "attempts": [
        {"n": 1, "host": "builder1", "started": "2024-01-01T00:00:00.000Z", "ended": "2024-01-01T00:00:10.000Z"},
        {"n": 2, "host": "builder2", "started": "2024-01-01T00:01:00.000Z", "ended": "2024-01-01T00:02:30.000Z"}]},
             {"arch": "aarch64", "state": "building", "host": "arm7",
              "attempts": [{"n": 1, "host": "arm7", "started": "2024-01-01T00:00:00.000Z", "ended": None}]}]
    shown = text(tasks_table(tasks))
    assert "builder2" in shown and "1m30s" in shown and "arm7" in shown
    assert "+" in text(tasks_table(tasks[1:]))  # still running: how long so far
    signed = text(artifacts_table([{"name": "a.rpm", "arch": "x86_64", "sha256": "ab" * 32,
                                    "signed_by": "key 4f2e"}, {}]))
    assert "key 4f2e" in signed and "abababab" in signed and "unsigned" in signed
    waiting = text(summary({"id": "ab" * 20, "nvr": "a-1-1", "state": "queued",
                            "waiting": {"x86_64": "libcdio is still building", "aarch64": "no builder is free"}}))
    assert "x86_64 because libcdio is still building" in waiting and "aarch64 because no builder" in waiting


def test_sign_and_push_without_the_targets_key_here_are_refused_before_any_dialog(clone, built):
    clone.admin().grant("signer", ALICE.email)
    clone.queue(BOB).perform(Action(Op.APPROVE, built))
    before = tree_files(clone.store)

    async def script(pilot, app):
        await _press(pilot, app, "s")
        assert isinstance(app.screen, BuildScreen)
        assert "sign: refused" in notices(app) and "target default has no signing key" in notices(app)
        assert "sluice key create --target default" in notices(app)
    app = on_build(clone, built, script)
    assert tree_files(clone.store) == before and app.commands_run == []


def test_a_bug_in_a_worker_is_reported_and_the_cockpit_carries_on(clone, built, monkeypatch):
    app = cockpit(clone)

    def broken(build):
        raise ValueError("the fold fell over")

    async def script(pilot):
        monkeypatch.setattr(app.services.queue, "view", broken)
        app.open_build(built)
        await settle(pilot, app)
        assert "internal error" in notices(app) and "ValueError: the fold fell over" in notices(app)
        await _press(pilot, app, "escape")
        assert app.is_running and not isinstance(app.screen, BuildScreen)
    drive(app, script)
