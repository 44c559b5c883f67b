"""Where things are: the local config file, the state repo and the artifacts.

Repo: `--repo`, else `SLUICE_REPO`, else `repo` in the config file, else
`$XDG_DATA_HOME/sluice/state.git` (the embedded default, created on first
use). Artifacts: `SLUICE_ARTIFACTS`, else `artifacts` in the config file, else
`$XDG_DATA_HOME/sluice/artifacts`. Published repos: `SLUICE_REPOS`, else `repos`
in the config file, else `$XDG_DATA_HOME/sluice/repos`. Signing keys:
`SLUICE_GNUPGHOME`, else `gnupg` in the config file, else
`$XDG_DATA_HOME/sluice/gnupg`. How `sluice sync` moves artifacts: the `[sync]`
table (see `sync_settings`). Config file: `--config`, else
`$XDG_CONFIG_HOME/sluice/config.toml` (optional).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from app import tomlfile
from app.errors import ConfigError, UsageError

_KEYS = {"repo", "artifacts", "remote", "repos", "gnupg", "repos_url", "user_gnupg", "commit_passphrase_file"}
_LISTS = {"builder"}  # arrays of tables: [[builder]]
_TABLES = {"runner", "keys", "sync", "smtp"}  # [runner], [keys], [sync], [smtp]; read by app.builders,
# app.keymap, here and app.notify
_SYNC_KEYS = {"artifacts", "key", "known_hosts"}


def data_home() -> str:
    return os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")


def config_home() -> str:
    return os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")


@dataclass(frozen=True)
class LocalConfig:
    path: str | None
    values: dict[str, Any]

    def get(self, key: str) -> Any:
        return self.values.get(key)


def load(path: str | None) -> LocalConfig:
    explicit = path is not None
    path = path or os.path.join(config_home(), "sluice", "config.toml")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"no config file {path}", "check the --config path") from None
        return LocalConfig(None, {})
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "check its permissions") from exc
    text, values = tomlfile.decode(data, path, "fix the file, see docs/config.md")
    for key, value in values.items():
        if key not in _KEYS | _LISTS | _TABLES:
            where = tomlfile.locate(text, path, rf"\[+\s*{re.escape(key)}\s*\]+" if isinstance(value, (dict, list))
                                    else tomlfile.key_pattern(key))
            known = ", ".join(sorted(_KEYS | {f"[{t}]" for t in _TABLES} | {f"[[{t}]]" for t in _LISTS}))
            raise ConfigError(where, f"unknown setting {key!r} (a misspelling?); known: {known}", "see docs/config.md")
        if key in _KEYS and not isinstance(value, str):
            raise ConfigError(tomlfile.locate(text, path, tomlfile.key_pattern(key)), f"{key} must be a string")
    _check_sync(text, path, values.get("sync", {}))
    return LocalConfig(path, values)


@dataclass(frozen=True)
class SyncSettings:
    """`[sync]`: where artifacts travel and how the SSH host is trusted.

    `artifacts` is one artifact folder for every remote (a path, file://,
    ssh:// or user@host:path), false for none, or a table of remote (its
    name or URL, as given to `sluice sync`) -> folder or false."""

    artifacts: Any = None
    key: str | None = None  # the SSH key for artifact hosts (else the agent and ~/.ssh/id_*)
    known_hosts: str | None = None  # else ~/.ssh/known_hosts

    def artifacts_for(self, *remotes: str) -> str | bool | None:
        """The configured folder for a remote known by any of `remotes`:
        a location, False (artifacts do not travel), None (not configured)."""
        if not isinstance(self.artifacts, dict):
            return self.artifacts
        return next((self.artifacts[r] for r in remotes if r in self.artifacts), None)


def sync_settings(config: LocalConfig) -> SyncSettings:
    table = config.get("sync") or {}
    return SyncSettings(table.get("artifacts"), table.get("key"), table.get("known_hosts"))


def _check_sync(text: str, path: str, table: Any) -> None:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(tomlfile.locate(text, path, tomlfile.key_pattern(key)), problem, "see docs/config.md#sync")
    if not isinstance(table, dict):
        raise ConfigError(path, "sync must be a table ([sync])", "see docs/config.md#sync")
    for key, value in table.items():
        if key not in _SYNC_KEYS:
            raise fail(key, f"unknown setting {key!r} in [sync]; known: {', '.join(sorted(_SYNC_KEYS))}")
        if key != "artifacts" and not isinstance(value, str):
            raise fail(key, f"sync.{key} must be a string")
        chosen = value.values() if key == "artifacts" and isinstance(value, dict) else [value]
        if key == "artifacts" and not all(isinstance(v, (str, bool)) and v is not True for v in chosen):
            raise fail(key, "sync.artifacts must be a folder (a path, file://, ssh:// or user@host:path), "
                            "false, or a table of remote = folder")


@dataclass(frozen=True)
class Paths:
    repo: str
    artifacts: str
    is_default: bool  # the embedded default repo, created on first use
    repos: str = ""  # published repos (the buildroot repo), one folder per target
    work: str = ""  # the local builder's build folders
    gnupg: str = ""  # sluice's own GnuPG home: the signing keys of this machine


def paths(config: LocalConfig, repo: str | None = None) -> Paths:
    chosen = repo or os.environ.get("SLUICE_REPO") or config.get("repo")
    default = os.path.join(data_home(), "sluice", "state.git")
    artifacts = os.environ.get("SLUICE_ARTIFACTS") or config.get("artifacts") or \
        os.path.join(data_home(), "sluice", "artifacts")
    repos = os.environ.get("SLUICE_REPOS") or config.get("repos") or os.path.join(data_home(), "sluice", "repos")
    gnupg = os.environ.get("SLUICE_GNUPGHOME") or config.get("gnupg") or os.path.join(data_home(), "sluice", "gnupg")
    return Paths(os.path.abspath(os.path.expanduser(chosen or default)),
                 os.path.abspath(os.path.expanduser(artifacts)), chosen is None,
                 os.path.abspath(os.path.expanduser(repos)), os.path.join(data_home(), "sluice", "work"),
                 os.path.abspath(os.path.expanduser(gnupg)))
