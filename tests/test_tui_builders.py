"""The builders screen, driven with Pilot over a status file the test writes
the way a runner does (`waits.write_status`: this process's pid and host, so
the runner counts as alive), and the service behind it."""
from __future__ import annotations

import json

from app import waits
from app.builders import Builder, RunnerSettings
from app.errors import ConfigError
from screens.build import BuildScreen
from screens.builders import BuildersScreen, BuilderCard, TaskTable
from screens.queue import QueueScreen
from tests.tui_support import cockpit, drive, screen_text, settle

STARTED = "2024-01-01T23:48:00.000Z"  # 12 minutes before tui_support.FIXED_NOW
SETTINGS = RunnerSettings((Builder("b1", ("x86_64", "i686"), "ssh", "build1.example.org", slots=2, tool="mock"),
                           Builder("arm", ("aarch64",), "ssh", "arm7.example.org", tool="mock"),
                           Builder("local", ("x86_64",), tool="rpmbuild")))


def status_doc(build: str = "ab" * 20, nvr: str = "inventor-2.1.6-3.fc40", **changes) -> dict:
    """A runner's status: b1 up with one task, arm down, local idle."""
    builders = [
        {"name": "b1", "transport": "ssh", "host": "build1.example.org", "tool": "mock",
         "arches": ["x86_64", "i686"], "state": "up", "reason": "", "slots": 2, "busy": 1,
         "running": [{"build": build, "nvr": nvr, "arch": "x86_64", "n": 2, "started": STARTED}],
         "load": [0, 1, 2, 2, 1, 0, 1, 2, 1, 1]},
        {"name": "arm", "transport": "ssh", "host": "arm7.example.org", "tool": "mock", "arches": ["aarch64"],
         "state": "down", "reason": "connection refused by arm7.example.org:22", "slots": 1, "busy": 0,
         "running": [], "load": [0, 0, 0]},
        {"name": "local", "transport": "local", "host": "localhost", "tool": "rpmbuild", "arches": ["x86_64"],
         "state": "idle", "reason": "", "slots": 1, "busy": 0, "running": [], "load": []},
    ]
    return {"builders": builders, "waiting": {}, **changes}


def status_file(clone) -> str:
    return waits.status_path(clone.store.index_dir())


def on_builders(clone, script, size=(80, 24), **how):
    app = cockpit(clone, status_file=status_file(clone), settings=lambda: SETTINGS, **how)

    async def go(pilot):
        await pilot.press("b")
        await settle(pilot, app)
        assert isinstance(app.screen, BuildersScreen)
        await script(pilot, app)
    drive(app, go, size)
    return app


def test_lists_each_builder_with_its_health_slots_and_reason(clone):
    waits.write_status(status_file(clone), status_doc())

    async def script(pilot, app):
        text = screen_text(app)
        assert "3 builders, 1 of 4 slots busy, 1 building" in text
        assert "b1     up  1/2 slots busy  build1.example.org  mock  x86_64 i686" in text
        assert "arm    down  0/1 slots busy" in text
        assert "down: connection refused by arm7.example.org:22" in text
        assert "local  idle  0/1 slots busy  this machine  rpmbuild" in text
        assert "now 1, peak 2 of 2" in text
        assert "inventor-2.1.6-3.fc40" in text and "x86_64" in text and "ababab" in text
        assert [len(c.query_one("Sparkline").data) for c in app.screen.query(BuilderCard)] == [10, 3, 0]
    on_builders(clone, script)


def test_enter_on_a_running_task_opens_its_build(clone, make_srpm):
    build = clone.submit(make_srpm("inventor"))
    waits.write_status(status_file(clone), status_doc(build))

    async def script(pilot, app):
        assert app.screen.query_one(TaskTable).current.build == build
        await pilot.press("enter")
        await settle(pilot, app)
        assert isinstance(app.screen, BuildScreen) and app.screen.build_id == build
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, BuildersScreen)
        builders = app.screen
        await pilot.press("escape")
        await settle(pilot, app)
        assert isinstance(app.screen, QueueScreen)
        builders.show(app.services.builders())  # a read that ends after the screen went: ignored
    on_builders(clone, script)


def test_without_a_runner_the_configured_builders_and_how_to_start_one(clone):
    async def script(pilot, app):
        text = screen_text(app)
        assert "no runner is running on this machine: start one with `sluice run`" in text
        assert "3 builders configured, no runner" in text
        assert "b1     2 slots  build1.example.org  mock  x86_64 i686" in text
        assert "local  1 slot  this machine  rpmbuild  x86_64" in text
        assert "BUILDER" not in text  # no tasks table: nothing can be building
    on_builders(clone, script)


def test_a_runner_that_stopped_or_went_away_counts_as_none(clone):
    waits.write_status(status_file(clone), status_doc(stopped=True))

    async def script(pilot, app):
        assert "no runner is running" in screen_text(app)
    on_builders(clone, script)
    waits.write_status(status_file(clone), status_doc())
    doc = json.loads(open(status_file(clone)).read())
    with open(status_file(clone), "w") as f:
        json.dump({**doc, "pid": 2 ** 22 + 7}, f)  # no such process
    on_builders(clone, script)


def test_updates_live_when_the_status_file_changes(clone):
    waits.write_status(status_file(clone), status_doc())

    async def script(pilot, app):
        assert "arm    down" in screen_text(app)
        doc = status_doc()
        doc["builders"][1].update(state="up", reason="")
        doc["builders"][0].update(busy=2, running=doc["builders"][0]["running"] * 2)
        doc["builders"][0]["running"][1] = {**doc["builders"][0]["running"][1], "arch": "i686", "n": 1}
        waits.write_status(status_file(clone), doc)
        await pilot.pause(1.5)  # the screen reads the file about every second
        await settle(pilot, app)
        text = screen_text(app)
        assert "arm    up  0/1" in text and "connection refused" not in text
        assert "2 of 4 slots busy, 2 building" in text
        assert len(app.screen.query_one(TaskTable).rows) == 2
    on_builders(clone, script)


def test_the_key_can_be_remapped(clone):
    from app import keymap
    keys = keymap.Keymap({**keymap.default().keys, "builders": keymap.Key("builders", "B", "queue", "builders")})
    app = cockpit(clone, keys=keys)

    async def script(pilot):
        await pilot.press("b")
        await settle(pilot, app)
        assert isinstance(app.screen, QueueScreen)
        await pilot.press("B")
        await settle(pilot, app)
        assert isinstance(app.screen, BuildersScreen)
    drive(app, script)


# ---------------------------------------------------------------- the service


def test_the_service_merges_the_runner_with_the_config():
    doc = status_doc()
    doc["builders"].append({"name": "gone", "state": "up", "slots": "two", "running": [{"n": True}]})
    status = waits.builders_status(lambda: RunnerSettings(SETTINGS.builders[:2] + (
        Builder("new", ("ppc64le",), "ssh", "p9.example.org"),)), doc)
    assert status.runner and [b.name for b in status.builders] == ["b1", "arm", "local", "gone", "new"]
    named = {b.name: b for b in status.builders}
    assert named["local"].note == "not in the local config any more"
    assert "restart `sluice run`" in named["new"].note and named["new"].state == ""
    assert named["gone"].slots == 0 and named["gone"].running[0].attempt == 0  # mistyped: empty, no crash
    assert named["b1"].running[0].attempt == 2 and named["b1"].load[:3] == (0, 1, 2)


def test_the_service_without_a_runner_or_with_a_broken_config():
    status = waits.builders_status(lambda: SETTINGS, None)
    assert not status.runner and [b.state for b in status.builders] == ["", "", ""]

    def broken():
        raise ConfigError("config.toml, builder 1", "arches must be a list")
    status = waits.builders_status(broken, None)
    assert status.builders == () and "the local config is broken" in status.problem
    assert [b.name for b in waits.builders_status(broken, status_doc()).builders] == ["b1", "arm", "local"]


# ---------------------------------------------------------------- why a build waits, on its screen


def test_the_build_screen_says_why_each_queued_arch_waits(clone, make_srpm):
    build = clone.submit(make_srpm("inventor"))
    arches = sorted(clone.queue().view(build).tasks)
    app = cockpit(clone, status_file=status_file(clone), settings=lambda: SETTINGS)

    async def script(pilot):
        app.open_build(build)
        await settle(pilot, app)
        assert f"{arches[0]} because no runner is running on this machine" in screen_text(app)
        assert set(app.screen.detail["waiting"]) == set(arches)
        waits.write_status(status_file(clone), status_doc(waiting={build: {arches[0]: "all 2 slots are busy"}}))
        app.screen.load()
        await settle(pilot, app)
        assert f"{arches[0]} because all 2 slots are busy" in screen_text(app)
    drive(app, script)
