"""The terminal UI's keys, and the `[keys]` table of the local config that
remaps them.

Muscle memory differs (lazygit, tig, vim, emacs), so every key of the cockpit
is named here with its default, and a maintainer may rebind any of them:

    [keys]
    hold = "H"
    withdraw = "ctrl+w"
    filter = "/,f"          # several keys: comma-separated

The table is checked when the cockpit starts, with the file and line of the
mistake: an unknown action, a key that is not a key, or two actions of one
screen on the same key would otherwise fail silently in front of a build.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from app import tomlfile
from app.config import LocalConfig
from app.errors import ConfigError


@dataclass(frozen=True)
class Key:
    action: str
    keys: str  # comma-separated, as written in the config
    scope: str  # the screen it acts on; "global" acts everywhere
    description: str


DEFAULTS: tuple[Key, ...] = (
    Key("help", "?", "global", "the keys of this screen"),
    Key("command_log", "@", "global", "the CLI commands the cockpit ran"),
    Key("palette", "ctrl+p", "global", "every action, by name"),
    Key("back", "escape,q", "global", "back (quit on the queue)"),
    Key("open", "enter", "queue", "open the build"),
    Key("filter", "/", "queue", "filter as you type"),
    Key("mine", "m", "queue", "only my builds"),
    Key("history", "H", "queue", "the state history"),
    Key("builders", "b", "queue", "the builders: health, slots, running tasks"),
    Key("repos", "R", "queue", "the repos: what they hold, what a push would change"),
    Key("sign_screen", "S", "queue", "sign: the builds waiting for a signature"),
    Key("refresh", "ctrl+r", "queue", "reload the queue now"),
    Key("state_all", "0", "queue", "every state"),
    Key("state_active", "1", "queue", "queued and building"),
    Key("state_built", "2", "queue", "built"),
    Key("state_held", "3", "queue", "held"),
    Key("state_needsign", "4", "queue", "needsign"),
    Key("state_failed", "5", "queue", "failed and failed-to-import"),
    Key("state_testing", "6", "queue", "signed, testing and tested"),
    Key("state_done", "7", "queue", "stable, withdrawn, cancelled, superseded"),
    Key("hold", "h", "build", "hold (asks why)"),
    Key("unhold", "u", "build", "release the hold"),
    Key("approve", "a", "build", "approve: send to be signed"),
    Key("withdraw", "w", "build", "withdraw for good (asks why, confirms)"),
    Key("cancel", "c", "build", "cancel (confirms)"),
    Key("resubmit", "r", "build", "queue again"),
    Key("rescue", "R", "build", "re-import the results"),
    Key("sign", "s", "build", "sign (confirms)"),
    Key("push_testing", "p", "build", "push to testing (confirms)"),
    Key("push_stable", "P", "build", "push to stable (confirms)"),
    Key("mark_tested", "t", "build", "mark tested"),
    Key("resolve", "x", "build", "settle a contested build"),
    Key("log", "l", "build", "the build logs"),
    Key("review", "v", "build", "review: the diff against the last release, rpmlint"),
    Key("select", "space", "sign", "select the build (again: unselect)"),
    Key("select_all", "a", "sign", "select every build (again: none)"),
    Key("sign_selected", "s", "sign", "sign the selection, or the build under the cursor (confirms)"),
    Key("repos_open", "enter", "repos", "open the build of the line"),
    Key("history_filter", "/", "history", "filter by build, actor or op"),
    Key("history_open", "enter", "history", "show the commit"),
    Key("review_open", "enter", "review", "open the build of the line (a build that needs a rebuild)"),
    Key("review_again", "r", "review", "review again"),
    Key("review_lint", "n", "review", "review again without rpmlint (again: with it)"),
    Key("review_fold", "e", "review", "show the long lists whole (again: fold them)"),
    Key("follow", "f", "log", "follow the end of the log"),
    Key("search", "/", "log", "search the log"),
    Key("next_match", "n", "log", "the next match"),
    Key("next_log", "tab", "log", "the next log (build, root, state)"),
)
SCOPES = frozenset(k.scope for k in DEFAULTS)
_NAMED = ("enter", "escape", "tab", "space", "up", "down", "left", "right", "home", "end", "pageup",
          "pagedown", "delete", "backspace", "insert", *(f"f{n}" for n in range(1, 13)))
_KEY = re.compile(r"((ctrl|shift|alt)\+)*(" + "|".join(_NAMED) + r"|[!-~])")


@dataclass(frozen=True)
class Keymap:
    keys: Mapping[str, Key]

    def of(self, action: str) -> str:
        return self.keys[action].keys

    def scope(self, scope: str) -> list[Key]:
        return [k for k in self.keys.values() if k.scope == scope]


def default() -> Keymap:
    return Keymap({k.action: k for k in DEFAULTS})


def load(config: LocalConfig) -> Keymap:
    """The defaults with the config's `[keys]` applied, or ConfigError."""
    table = config.get("keys")
    if table is None:
        return default()
    where = config.path or "the config"
    text = _text(config.path)
    if not isinstance(table, dict):
        raise ConfigError(tomlfile.locate(text, where, r"keys\s*="), "keys must be a table ([keys])",
                          "see docs/config.md")
    keys = {k.action: k for k in DEFAULTS}
    for action, value in table.items():
        line = tomlfile.locate(text, where, tomlfile.key_pattern(action))
        if action not in keys:
            raise ConfigError(line, f"[keys] has no action {action!r}",
                              f"the actions are: {', '.join(sorted(keys))} (see docs/config.md)")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(line, f"keys.{action} must be a string such as \"h\" or \"ctrl+h,H\"")
        parts = [p.strip() for p in value.split(",")]
        bad = [p for p in parts if not _KEY.fullmatch(p)]
        if bad:
            raise ConfigError(line, f"keys.{action}: {bad[0]!r} is not a key",
                              "use one character, or a name such as enter, escape, tab, f5, "
                              "with ctrl+, alt+ or shift+ before it")
        keys[action] = Key(action, ",".join(parts), keys[action].scope, keys[action].description)
    _check_clashes(keys, text, where)
    return Keymap(keys)


def _check_clashes(keys: Mapping[str, Key], text: str, where: str) -> None:
    """Two actions that one screen would see on the same key."""
    owner: dict[tuple[str, str], str] = {}
    for key in keys.values():
        scopes = {"global"} if key.scope == "global" else {key.scope}
        for part in key.keys.split(","):
            for scope in scopes:
                for seen_scope in (SCOPES if scope == "global" else {scope, "global"}):
                    other = owner.get((seen_scope, part))
                    if other and other != key.action:
                        raise ConfigError(tomlfile.locate(text, where, tomlfile.key_pattern(key.action)),
                                          f"keys: {part!r} is bound to both {other} and {key.action}",
                                          "give one of them another key")
            owner[(key.scope, part)] = key.action


def _text(path: str | None) -> str:
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""
