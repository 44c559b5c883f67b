"""The review screen (`v` on a build): the real `sluice review` service on
real RPMs — an ABI change and the build that needs a rebuild, rpmlint's
findings, a build with nothing to review, and rpmlint missing."""
from __future__ import annotations

from app import keymap
from screens.build import BuildScreen
from screens.dialogs import HelpScreen
from screens.review import SEVERITY, ReviewScreen, ReviewTable
from tests.conftest import BOB
from tests.test_review import BITS, abi_change
from tests.test_release import release  # noqa: F401 (fixtures)
from tests.test_runner import run_once, submit
from tests.test_signing import gnupg, queue  # noqa: F401 (fixtures release needs)
from tests.test_tui_sign import clone_of
from tests.tui_support import cockpit, drive, screen_text, settle


def on_review(clone, build, script, size=(80, 24), **how):
    """The cockpit on `build`'s screen; `v`; then `script(pilot, app)`."""
    app = cockpit(clone, BOB, **how)

    async def go(pilot):
        app.open_build(build)
        await settle(pilot, app)
        await pilot.press("v")
        await settle(pilot, app)
        assert isinstance(app.screen, ReviewScreen)
        await script(pilot, app)
    drive(app, go, size)
    return app


async def press(pilot, app, *keys):
    await pilot.press(*keys)
    await settle(pilot, app)


def test_the_review_shows_the_abi_change_first_and_opens_the_build_to_rebuild(release, make_srpm, isolated):
    first, fooapp, new = abi_change(release, make_srpm)

    async def script(pilot, app):
        text = screen_text(app)
        title = text.splitlines()[0]
        assert "libfoo-2.0-1" in title and "!! 1 ABI change" in title
        assert f"against libfoo-1.0-1 ({first[:7]}, testing)" in text
        lines = text.splitlines()
        abi = next(n for n, line in enumerate(lines) if "!! ABI change" in line)
        assert f"libfoo.so.1(){BITS} is gone" in lines[abi] and abi <= 3  # at the top
        assert f"{fooapp[:7]} fooapp-1.0-1: fooapp." in text
        table = app.screen.query_one(ReviewTable)
        assert table.current.build == fooapp  # the cursor waits on the build to rebuild
        assert table.line(table.rows[abi - 2], 80)[0].style.bgcolor.name == "red"  # below title and heading

        findings = [row for row in table.rows if row.kind == "lint"]
        assert any("no-url-tag" in row.text for row in findings)  # the real rpmlint ran
        e_or_w = [row for row in findings if row.severity in ("E", "W")]
        assert e_or_w and all(table.line(row, 80)[0].style == SEVERITY[row.severity] for row in e_or_w)
        found = app.screen.found
        assert f"{found.findings('E')} E" in title and f"{found.findings('W')} W" in title
        assert found.findings("E") + found.findings("W") == len(found.lint) - found.findings("I")
        await press(pilot, app, "G")
        assert "no-url-tag" in screen_text(app)  # the end of the review, on screen

        await press(pilot, app, "g")
        table.move_to(next(n for n, row in enumerate(table.rows) if row.build))
        await press(pilot, app, "enter")
        assert isinstance(app.screen, BuildScreen) and app.screen.build_id == fooapp
    app = on_review(clone_of(release, isolated), new, script)
    assert [c.command for c in app.commands_run] == [f"sluice review {new[:7]}"]
    assert app.commands_run[0].outcome.startswith("done: 1 ABI change")


def test_a_build_without_rpms_shows_why_not_a_traceback(clone, make_srpm):
    build = clone.submit(make_srpm("inventor"), who=BOB)

    async def script(pilot, app):
        text = screen_text(app)
        assert "has no built RPMs to review (it is queued)" in text and "review a build once it is built" in text
        assert "without rpmlint" not in text  # nothing rpmlint could change
        assert not app.screen.query_one(ReviewTable).rows
        assert not [n for n in app._notifications if "internal error" in (n.title or "")]
        await press(pilot, app, "r")  # again: the same answer, logged again
    app = on_review(clone, build, script)
    assert [c.command for c in app.commands_run] == [f"sluice review {build[:7]}"] * 2
    assert app.commands_run[-1].outcome.startswith("refused: inventor-")


def test_without_rpmlint_the_hint_then_a_review_without_it(queue, make_srpm, isolated, tmp_path, monkeypatch):  # noqa: F811
    build = submit(queue, make_srpm("lonely", "1.0", "1"))
    run_once(queue)
    (tmp_path / "bare").mkdir()

    async def script(pilot, app):
        text = screen_text(app)
        assert "rpmlint is not installed" in text and "press n to review without rpmlint" in text
        await press(pilot, app, "n")
        text = screen_text(app)
        assert "rpmlint is not installed" not in text and "rpmlint not run" in text.splitlines()[0]
        assert "first release" in text and "lonely." in text and ": new" in text
    with monkeypatch.context() as patched:
        patched.setenv("PATH", str(tmp_path / "bare"))  # no rpmlint on it
        app = on_review(clone_of(queue, isolated), build, script)
    assert [c.command for c in app.commands_run] == [f"sluice review {build[:7]}",
                                                     f"sluice review {build[:7]} --no-lint"]
    assert app.commands_run[0].outcome == "failed: rpmlint is not installed"


def test_the_review_key_is_in_the_help_the_palette_and_the_keys_table(clone, make_srpm):
    build = clone.submit(make_srpm("inventor"), who=BOB)
    keys = keymap.Keymap({**keymap.default().keys, "review": keymap.Key("review", "V", "build", "review")})
    app = cockpit(clone, BOB, keys=keys)

    async def script(pilot):
        app.open_build(build)
        await settle(pilot, app)
        await press(pilot, app, "question_mark")
        assert isinstance(app.screen, HelpScreen) and "review" in screen_text(app)
        await press(pilot, app, "escape")
        await press(pilot, app, "v")
        assert isinstance(app.screen, BuildScreen)  # remapped: v is nothing now
        await press(pilot, app, "V")
        assert isinstance(app.screen, ReviewScreen)
        await press(pilot, app, "escape")
        await press(pilot, app, "ctrl+p")
        await pilot.press(*"Review")
        await pilot.pause(0.3)
        await press(pilot, app, "enter")
        assert isinstance(app.screen, ReviewScreen)
    drive(app, script, (160, 48))
