"""Keys remapped from the local config's `[keys]` table: checked with file
and line, and used by the screens."""
from __future__ import annotations

import pytest

from app import config, keymap
from app.errors import ConfigError
from app.model import State
from screens.app import textual_keys
from tests.conftest import BOB
from tests.tui_support import cockpit, drive, settle


def load(tmp_path, text: str) -> keymap.Keymap:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return keymap.load(config.load(str(path)))


def test_defaults_without_a_table(tmp_path):
    keys = load(tmp_path, 'repo = "/tmp/x"\n')
    assert keys.of("hold") == "h" and keys.of("help") == "?"
    assert {k.action for k in keys.scope("build")} >= {"hold", "withdraw", "approve", "log"}


def test_a_remap_replaces_the_default(tmp_path):
    keys = load(tmp_path, '[keys]\nhold = "H, ctrl+h"\nhelp = "f1"\n')
    assert keys.of("hold") == "H,ctrl+h" and keys.of("help") == "f1"
    assert textual_keys("?,@,/,ctrl+h") == "question_mark,at,slash,ctrl+h"


@pytest.mark.parametrize("text, words", [
    ('[keys]\nexplode = "e"\n', "line 2: [keys] has no action 'explode'"),
    ('[keys]\n\nhold = 3\n', "line 3: keys.hold must be a string"),
    ('[keys]\nhold = "ctrl+hyper+x"\n', "'ctrl+hyper+x' is not a key"),
    ('[keys]\nhold = "w"\n', "'w' is bound to both"),  # withdraw's key on the same screen
    ('[keys]\nhelp = "h"\n', "'h' is bound to both"),  # a global key clashes everywhere
])
def test_mistakes_name_the_file_and_line(tmp_path, text, words):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert words in str(caught.value.message) and "config.toml" in caught.value.message


def test_the_same_key_on_different_screens_is_fine(tmp_path):
    keys = load(tmp_path, '[keys]\nhistory = "h"\n')  # queue's history, build's hold
    assert keys.of("history") == "h" and keys.of("hold") == "h"


def test_a_remapped_key_acts_and_the_old_one_does_not(clone, make_srpm):
    build = clone.submit(make_srpm("alpha"), who=BOB)
    clone.built(build)
    keys = keymap.Keymap({**keymap.default().keys,
                          "approve": keymap.Key("approve", "A", "build", "approve")})
    app = cockpit(clone, keys=keys)

    async def script(pilot):
        app.open_build(build)
        await settle(pilot, app)
        await pilot.press("a")
        await settle(pilot, app)
        assert clone.state(build) is State.BUILT
        await pilot.press("A")
        await settle(pilot, app)
        assert clone.state(build) is State.NEEDSIGN
    drive(app, script)


def test_the_cli_refuses_a_bad_keys_table_before_opening(sluice, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[keys]\nhold = "w"\n')
    sluice("init")
    from screens.services import Services
    from app.cli.context import Context
    import argparse
    ctx = Context(argparse.Namespace(repo=sluice.repo, config=str(path), json=False, yes=False))
    with pytest.raises(ConfigError, match="bound to both"):
        Services.from_context(ctx)
