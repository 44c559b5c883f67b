"""The queue screen, driven with Pilot on a real repo: listing, filters,
quick filters, live updates that keep the cursor, and opening a build."""
from __future__ import annotations

import asyncio

from app import listing
from app.actions import Action
from app.model import Op, State
from screens.build import BuildScreen
from screens.queue import QueueScreen, QueueTable
from tests.conftest import BOB
from tests.tui_support import cockpit, drive, screen_text, settle


def _table(app) -> QueueTable:
    assert isinstance(app.screen, QueueScreen)
    return app.screen.query_one(QueueTable)


async def _press(pilot, app, *keys):
    await pilot.press(*keys)
    await settle(pilot, app)


def test_lists_every_build_newest_first(clone, make_srpm):
    first = clone.submit(make_srpm("alpha"))
    second = clone.submit(make_srpm("beta"), who=BOB)
    app = cockpit(clone)

    async def script(pilot):
        assert [r.id for r in _table(app).rows] == [second, first]
        text = screen_text(app)
        assert "2 of 2 builds" in text and "beta-1.0-1" in text and "queued" in text
    drive(app, script)


def test_filter_as_you_type_and_quick_filters(clone, make_srpm):
    alpha = clone.submit(make_srpm("alpha"))
    beta = clone.submit(make_srpm("beta"), who=BOB)
    gamma = clone.submit(make_srpm("gamma"), who=BOB)
    clone.built(gamma)
    clone.queue(BOB).perform(Action(Op.HOLD, gamma, "wait"))
    app = cockpit(clone, BOB)

    async def script(pilot):
        await _press(pilot, app, "slash")
        await pilot.press("a", "l")
        await settle(pilot, app)
        assert [r.id for r in _table(app).rows] == [alpha]
        assert "1 of 3 builds  filter: al" in screen_text(app)
        await _press(pilot, app, "escape")  # clears the words
        assert len(_table(app).rows) == 3
        await _press(pilot, app, "m")  # mine: bob's
        assert [r.id for r in _table(app).rows] == [gamma, beta]
        await _press(pilot, app, "3")  # held
        assert [r.id for r in _table(app).rows] == [gamma]
        assert "owner:bob@example.org state:held" in screen_text(app)
        await _press(pilot, app, "0", "m")
        assert len(_table(app).rows) == 3
        await _press(pilot, app, "slash")
        app.screen.query_one("#filter").value = "state:queued owner:bob"
        await settle(pilot, app)
        assert [r.id for r in _table(app).rows] == [beta]
        await _press(pilot, app, "enter")  # keeps the filter, back to the table
        assert _table(app).has_focus and len(_table(app).rows) == 1
    drive(app, script)


def test_enter_opens_the_build_under_the_cursor(clone, make_srpm):
    older = clone.submit(make_srpm("alpha"))
    clone.submit(make_srpm("beta"))
    app = cockpit(clone)

    async def script(pilot):
        await _press(pilot, app, "j", "enter")
        assert isinstance(app.screen, BuildScreen) and app.screen.build_id == older
        assert "alpha-1.0-1" in screen_text(app)
        await _press(pilot, app, "q")
        assert isinstance(app.screen, QueueScreen)
    drive(app, script)


def test_live_updates_keep_the_cursor_on_its_build(clone, make_srpm):
    """Another terminal writes; the poller sees the ref move and reloads."""
    first = clone.submit(make_srpm("alpha"))
    second = clone.submit(make_srpm("beta"))
    app = cockpit(clone, poll_every=0.05)

    async def script(pilot):
        await _press(pilot, app, "j")
        assert _table(app).current.id == first
        newest = clone.submit(make_srpm("gamma"))  # lands above the cursor
        clone.queue().perform(Action(Op.CANCEL, first))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(_table(app).rows) == 3 and _table(app).current.state == "cancelled":
                break
        table = _table(app)
        assert [r.id for r in table.rows] == [newest, second, first]
        assert table.current.id == first and table.cursor == 2
    drive(app, script)


def test_quit_from_the_queue(clone):
    app = cockpit(clone)

    async def script(pilot):
        await pilot.press("q")
        await pilot.pause()
        assert app._exit
    drive(app, script)


def test_an_empty_queue_says_so(clone):
    app = cockpit(clone)

    async def script(pilot):
        assert "0 of 0 builds" in screen_text(app) and "no builds match" in screen_text(app)
    drive(app, script)


# ---------------------------------------------------------------- the listing service


def test_listing_loads_what_list_shows_and_filters_like_it(clone, make_srpm, sluice):
    a = clone.submit(make_srpm("kdelibs"))
    b = clone.submit(make_srpm("kdepim"), who=BOB)
    c = clone.submit(make_srpm("vim"), who=BOB)
    clone.built(c)
    index = clone.queue().index
    index.refresh()
    rows = listing.load(index)
    assert [r.id for r in rows] == [c, b, a]
    assert rows[0].arches() == {"x86_64": "built"} and rows[0].state == State.BUILT
    assert [r.id for r in listing.load(index, limit=1)] == [c]

    def ids(text="", owner=None, states=()):
        return [r.id for r in listing.Query(text, owner, states).select(rows)]
    assert ids("package:kde*") == [b, a]
    assert ids("KDE bob") == [b]
    assert ids("owner:bob state:built") == [c]
    assert ids(f"id:{a[:6]}") == [a]
    assert ids("target:default", owner=BOB.email, states=("queued",)) == [b]
    assert ids("nothing-like-this") == []
    assert listing.position(rows, b) == 1 and listing.position(rows, "f" * 40) is None
    assert listing.Query("x", BOB.email, ("held",)).describe() == "owner:bob@example.org state:held x"


def test_the_palette_on_the_queue_acts_on_the_selected_build(clone, make_srpm):
    build = clone.submit(make_srpm("alpha"), who=BOB)
    clone.built(build)
    app = cockpit(clone)

    async def script(pilot):
        titles = [title for title, _, _ in app.screen.commands()]
        assert f"Approve {build[:7]} alpha-1.0-1" in titles and "Show held builds" in titles
        dict((t, c) for t, _, c in app.screen.commands())[f"Approve {build[:7]} alpha-1.0-1"]()
        await settle(pilot, app)
        assert isinstance(app.screen, BuildScreen)
    drive(app, script)
    assert clone.state(build) is State.NEEDSIGN


def test_refresh_reloads_at_once_without_the_poller(clone, make_srpm):
    clone.submit(make_srpm("alpha"))
    app = cockpit(clone)  # no poller: only ctrl+r reloads

    async def script(pilot):
        assert len(_table(app).rows) == 1
        clone.submit(make_srpm("beta"))
        await _press(pilot, app, "ctrl+r")
        assert [r.nvr for r in _table(app).rows] == ["beta-1.0-1", "alpha-1.0-1"]
    drive(app, script)


def test_keys_of_other_screens_type_into_the_filter(clone, make_srpm):
    """'@', '?', 'q' and digits are keys elsewhere, but text in the box."""
    clone.submit(make_srpm("alpha"))
    app = cockpit(clone)

    async def script(pilot):
        await _press(pilot, app, "slash")
        await _press(pilot, app, "o", "w", "n", "e", "r", "colon", "a", "l", "i", "c", "e", "at", "question_mark",
                     "q", "3")
        assert app.screen.query_one("#filter").value == "owner:alice@?q3"
        assert isinstance(app.screen, QueueScreen) and not app._exit
    drive(app, script)


def test_a_click_selects_and_a_double_click_opens(clone, make_srpm):
    older = clone.submit(make_srpm("alpha"))
    clone.submit(make_srpm("beta"))
    app = cockpit(clone)

    async def script(pilot):
        await pilot.click(QueueTable, offset=(10, 2))  # the header is line 0
        await settle(pilot, app)
        assert _table(app).current.id == older
        await pilot.click(QueueTable, offset=(10, 2), times=2)
        await settle(pilot, app)
        assert isinstance(app.screen, BuildScreen) and app.screen.build_id == older
    drive(app, script)
