"""The queue screen, driven with Pilot on a real repo."""
from __future__ import annotations

from app.model import State
from screens.queue import QueueScreen, QueueTable
from tests.conftest import BOB
from tests.tui_support import cockpit, drive, settle


def _queue(app) -> QueueScreen:
    assert isinstance(app.screen, QueueScreen)
    return app.screen


def test_lists_every_build_newest_first(clone, make_srpm):
    first = clone.submit(make_srpm("alpha"))
    second = clone.submit(make_srpm("beta"), who=BOB)
    app = cockpit(clone)

    async def script(pilot):
        table = _queue(app).query_one(QueueTable)
        assert [r.id for r in table.rows] == [second, first]
        assert "2 of 2 builds" in str(app.screen.query_one("#title").render())
    drive(app, script)
