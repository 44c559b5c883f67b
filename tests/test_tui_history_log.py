"""The history screen (the state ref's log) and the log screen (the seam to
the builders' logs), with Pilot; and the log seam itself."""
from __future__ import annotations

import asyncio
from pathlib import Path

from app import tasklog
from app.actions import Action
from app.model import Op
from app.tasklog import LogRef
from screens.build import BuildScreen
from screens.history import CommitScreen, HistoryScreen, parse
from screens.logs import LogScreen
from textual.widgets import Log
from tests.conftest import BOB
from tests.tui_support import cockpit, drive, screen_text, settle


async def _press(pilot, app, *keys):
    await pilot.press(*keys)
    await settle(pilot, app)


def test_history_lists_filters_and_shows_a_commit(clone, make_srpm):
    build = clone.submit(make_srpm("alpha"))
    clone.built(build)
    clone.queue().perform(Action(Op.HOLD, build, "waiting for libcdio"))
    app = cockpit(clone)

    async def script(pilot):
        await _press(pilot, app, "H")
        assert isinstance(app.screen, HistoryScreen)
        titles = [e.title for e in app.screen.query_one("#history").rows]
        assert titles[0].startswith("hold alpha-1.0-1") and any(t.startswith("init") for t in titles)
        await _press(pilot, app, "slash")
        app.screen.query_one("#filter").value = "op:hold"
        await settle(pilot, app)
        assert [e.values("Op") for e in app.screen.query_one("#history").rows] == [["hold"]]
        await _press(pilot, app, "escape")  # leaves the box, keeps the filter
        await _press(pilot, app, "enter")
        assert isinstance(app.screen, CommitScreen)
        text = screen_text(app)
        assert "waiting for libcdio" in text and f"Sluice-Build: {build}" in text
        await _press(pilot, app, "escape")
        await _press(pilot, app, "escape")
        assert not isinstance(app.screen, HistoryScreen)
    drive(app, script)


def test_history_of_one_build_from_the_palette(clone, make_srpm):
    one = clone.submit(make_srpm("alpha"))
    clone.submit(make_srpm("beta"), who=BOB)
    app = cockpit(clone)

    async def script(pilot):
        app.open_build(one)
        await settle(pilot, app)
        app.open_history(one)
        await settle(pilot, app)
        rows = app.screen.query_one("#history").rows
        assert rows and all(one in e.values("Build") for e in rows)
        assert f"build:{one[:10]}" in screen_text(app)
    drive(app, script)


def test_history_filter_words():
    assert parse("build:3f9a actor:bob@x op:hold ABI") == (
        {"build": "3f9a", "actor": "bob@x", "op": "hold"}, ["abi"])


def test_no_log_yet_until_the_builders_write_one(clone, make_srpm):
    build = clone.submit(make_srpm("alpha"))
    app = cockpit(clone)

    async def script(pilot):
        app.open_build(build)
        await settle(pilot, app)
        await _press(pilot, app, "l")
        assert isinstance(app.screen, LogScreen)
        assert "no log yet for x86_64 (output)" in screen_text(app)
        await _press(pilot, app, "tab")
        assert "no log yet for x86_64 (build.log)" in screen_text(app)
        await _press(pilot, app, "escape")
        assert isinstance(app.screen, BuildScreen)
    drive(app, script)


def test_a_finished_log_streams_in_and_search_finds_a_line(clone, tmp_path):
    path = tmp_path / "build.log"
    path.write_text("".join(f"line {n}\n" for n in range(5000)) + "error: missing libcdio\ntail\n")
    app = cockpit(clone)
    ref = LogRef("ab" * 20, "x86_64", "build", str(path), live=False)

    async def script(pilot):
        app.push_screen(LogScreen({"id": "ab" * 20, "tasks": [{"arch": "x86_64"}]}, ref))
        await settle(pilot, app)
        log = app.screen.query_one(Log)
        assert log.line_count == 5002 and log.lines[-1] == "tail"
        assert "5,002 lines" in screen_text(app)
        await _press(pilot, app, "slash")
        app.screen.query_one("#search").value = "line 12"
        await _press(pilot, app, "enter")
        assert int(log.scroll_offset.y) == 12  # from the end, the search wrapped around
        assert "paused" in screen_text(app)  # a search stops following
        await _press(pilot, app, "escape", "n")  # back in the log, the next match
        assert int(log.scroll_offset.y) == 120
        await _press(pilot, app, "slash")
        app.screen.query_one("#search").value = "LIBCDIO"
        await _press(pilot, app, "enter")
        assert int(log.scroll_offset.y) <= 5000 <= int(log.scroll_offset.y) + log.size.height
        await _press(pilot, app, "escape", "f")
        assert "following" in screen_text(app)
    drive(app, script)


def test_a_live_log_is_followed_as_it_grows(clone, tmp_path):
    path = tmp_path / "build.log"
    path.write_text("starting\n")
    app = cockpit(clone)
    ref = LogRef("ab" * 20, "x86_64", "build", str(path), live=True)

    async def script(pilot):
        app.push_screen(LogScreen({"id": "ab" * 20, "tasks": [{"arch": "x86_64"}]}, ref))
        await pilot.pause(0.2)
        with path.open("a") as f:
            f.write("compiling\nhalf a li")
        log = app.screen.query_one(Log)
        for _ in range(60):
            await asyncio.sleep(0.05)
            if log.line_count >= 2:
                break
        assert list(log.lines) == ["starting", "compiling"]  # never half a line
        await _press(pilot, app, "escape")  # stops the reader
    drive(app, script)


def test_the_seam_reads_detail_and_follows_whole_lines(tmp_path):
    from app import logs
    store = tmp_path / "sha256"
    store.mkdir()
    (store / "d1").write_text("root log\n")
    build = "ab" * 20
    live = Path(logs.live_path(str(tmp_path / "live"), build, "x86_64", 2))
    live.parent.mkdir(parents=True)
    live.write_text("a\nb\nc")
    detail = {"id": build, "tasks": [
        {"arch": "x86_64", "state": "building", "logs": {"root.log": "d1"},
         "attempts": [{"n": 1, "ended": "2026-11-21T10:00:00.000Z"}, {"n": 2, "ended": None}]},
        {"arch": "aarch64", "state": "queued", "attempts": []}]}
    found = tasklog.locate(detail, "x86_64", "output", lambda d: str(store / d), str(tmp_path / "live"))
    assert found == LogRef(build, "x86_64", "output", str(live), True)
    assert tasklog.locate(detail, "x86_64", "output", lambda d: str(store / d)) is None  # no runner here
    assert tasklog.locate(detail, "x86_64", "root", lambda d: str(store / d)).path == str(store / "d1")
    assert tasklog.locate(detail, "x86_64", "state", lambda d: str(store / d)) is None
    assert tasklog.locate(detail, "aarch64", "build", str) is None
    assert tasklog.locate({"id": "x", "tasks": [{"arch": "x86_64", "state": "queued"}]}, "x86_64", "build",
                          str) is None
    live = str(live)
    lines, offset = tasklog.follow(str(live))
    assert lines == ["a", "b"] and offset == 4
    assert tasklog.follow(str(live), offset) == ([], 4)


def test_a_live_log_removed_when_its_attempt_ends_ends_the_stream_quietly(clone, tmp_path):
    path = tmp_path / "build.log"
    path.write_text("starting\n")
    app = cockpit(clone)
    ref = LogRef("ab" * 20, "x86_64", "output", str(path), live=True)

    async def script(pilot):
        app.push_screen(LogScreen({"id": "ab" * 20, "tasks": [{"arch": "x86_64"}]}, ref))
        await pilot.pause(0.3)
        path.unlink()  # what the runner does once the output is stored
        for _ in range(60):
            await asyncio.sleep(0.05)
            if app.screen.done:
                break
        assert app.screen.done and list(app.screen.query_one(Log).lines) == ["starting"]
        assert not [n for n in app._notifications if "internal error" in str(n.message)]
    drive(app, script)
