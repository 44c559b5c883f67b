"""Builder hosts, as the local config declares them.

A builder is a transport (`local`, or `ssh` through paramiko) times a build
tool (`mock`, or `rpmbuild` on hosts without mock). Builders are a property of
one machine's runner, not of the shared queue, so they live in the local
config file:

    [runner]
    attempts = 3                 # tries per task when hosts drop out

    [[builder]]
    name = "b1"
    host = "build1.example.org"  # ssh; leave out host for this machine
    port = 22
    user = "builder"
    key = "~/.ssh/sluice_ed25519"
    known_hosts = "~/.ssh/known_hosts"
    arches = ["x86_64", "i686"]
    slots = 2
    tool = "mock"
    workdir = "sluice-builds"     # on the host, relative to the login dir
    [builder.mock_config]          # per target; {arch} is filled in
    epel9 = "rocky+epel-9-{arch}"

With no `[[builder]]` at all, sluice uses one local builder for this
machine's arch (mock when it is installed, else rpmbuild), so a new user
builds with no hosts.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Mapping

from app.errors import ConfigError
from app.model import ARCH, NAME

TOOLS = ("mock", "rpmbuild")
_KEYS = {"name", "host", "port", "user", "key", "known_hosts", "arches", "slots", "tool", "workdir",
         "mock_config", "transport", "max_sessions"}
# A build holds one SSH session for its whole run; uploads, downloads and
# short commands need two more. sshd allows 10 per connection by default.
SESSIONS_BESIDE_BUILDS = 2
DEFAULT_ATTEMPTS = 3


@dataclass(frozen=True)
class Builder:
    name: str
    arches: tuple[str, ...]
    transport: str = "local"  # or "ssh"
    host: str = "localhost"
    port: int = 22
    user: str = ""
    key: str = ""
    known_hosts: str = ""
    slots: int = 1
    tool: str = "rpmbuild"
    workdir: str = ""
    mock_config: Mapping[str, str] = field(default_factory=dict)
    max_sessions: int = 10  # the host sshd's MaxSessions

    def mock_config_for(self, target: str, arch: str, fallback: str) -> str:
        """The builder's own config for `target` (its `{arch}` filled in), else
        the target's config for `arch`."""
        chosen = self.mock_config.get(target)
        return chosen.replace("{arch}", arch) if chosen else fallback

    def describe(self) -> str:
        where = "this machine" if self.transport == "local" else f"{self.user}@{self.host}:{self.port}"
        return f"{self.name}: {where}, {self.tool}, arches {' '.join(self.arches)}, {self.slots} slot(s)"


@dataclass(frozen=True)
class RunnerSettings:
    builders: tuple[Builder, ...]
    attempts: int = DEFAULT_ATTEMPTS
    embedded: bool = False  # the default local builder, no [[builder]] given


def default_builder(arch: str, workdir: str) -> Builder:
    return Builder("local", (arch,), tool="mock" if shutil.which("mock") else "rpmbuild", workdir=workdir)


def settings(values: Mapping[str, Any], where: str, arch: str, local_workdir: str) -> RunnerSettings:
    """The builders and runner settings from the local config's values."""
    runner = values.get("runner", {})
    if not isinstance(runner, dict) or set(runner) - {"attempts"}:
        raise ConfigError(where, "[runner] takes only attempts = N", "see docs/config.md")
    attempts = runner.get("attempts", DEFAULT_ATTEMPTS)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 20:
        raise ConfigError(where, "[runner] attempts must be a whole number from 1 to 20")
    declared = values.get("builder")
    if declared is None:
        return RunnerSettings((default_builder(arch, local_workdir),), attempts, embedded=True)
    if not isinstance(declared, list) or not declared:
        raise ConfigError(where, "builders are declared as [[builder]] tables", "see docs/config.md")
    found = tuple(_builder(doc, f"{where}, builder {n}", local_workdir) for n, doc in enumerate(declared, 1))
    names = [b.name for b in found]
    if len(set(names)) != len(names):
        raise ConfigError(where, "two builders share a name", "give each [[builder]] its own name")
    return RunnerSettings(found, attempts)


def _builder(doc: Any, where: str, local_workdir: str) -> Builder:
    if not isinstance(doc, dict):
        raise ConfigError(where, "is not a table")
    unknown = set(doc) - _KEYS
    if unknown:
        raise ConfigError(where, f"unknown setting {sorted(unknown)[0]!r}; settings are {', '.join(sorted(_KEYS))}")
    name = _string(doc, "name", where)
    where = f"{where} ({name})"
    if not NAME.fullmatch(name):
        raise ConfigError(where, f"{name!r} is not a builder name", "use letters, digits and . _ + -")
    arches = doc.get("arches")
    if not (isinstance(arches, list) and arches and all(isinstance(a, str) and ARCH.fullmatch(a) for a in arches)):
        raise ConfigError(where, "arches must be a list of arch names, such as [\"x86_64\"]")
    transport = doc.get("transport", "ssh" if "host" in doc else "local")
    if transport not in ("local", "ssh"):
        raise ConfigError(where, f"transport must be local or ssh, not {transport!r}")
    for key in ("host", "user", "key", "known_hosts", "workdir", "transport", "tool"):
        if key in doc and not (isinstance(doc[key], str) and doc[key]):
            raise ConfigError(where, f"{key} must be a non-empty string")
    tool = doc.get("tool", "mock")
    if tool not in TOOLS:
        raise ConfigError(where, f"tool must be one of {', '.join(TOOLS)}, not {tool!r}")
    slots = doc.get("slots", 1)
    port = doc.get("port", 22)
    sessions = doc.get("max_sessions", 10)
    for key, value, top in (("slots", slots, 64), ("port", port, 65535), ("max_sessions", sessions, 1000)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            raise ConfigError(where, f"{key} must be a whole number from 1 to {top}")
    if transport == "ssh" and slots + SESSIONS_BESIDE_BUILDS > sessions:
        raise ConfigError(where, f"slots = {slots} needs {slots + SESSIONS_BESIDE_BUILDS} SSH sessions, "
                          f"but max_sessions is {sessions}",
                          "raise MaxSessions in the host's sshd_config and max_sessions here, or lower slots")
    mock = doc.get("mock_config", {})
    if not (isinstance(mock, dict) and all(isinstance(v, str) and v for v in mock.values())):
        raise ConfigError(where, "[builder.mock_config] maps target = \"mock config\"")
    if transport == "local":
        return Builder(name, tuple(arches), "local", slots=slots, tool=tool, mock_config=dict(mock),
                       workdir=_path(doc.get("workdir") or local_workdir))
    host = _string(doc, "host", where)
    user = doc.get("user") or os.environ.get("USER") or "root"
    key = _path(_string(doc, "key", where, "the private key file sluice logs in with"))
    known = _path(doc.get("known_hosts") or "~/.ssh/known_hosts")
    return Builder(name, tuple(arches), "ssh", host, port, user, key, known, slots, tool,
                   doc.get("workdir") or "sluice-builds", dict(mock), sessions)


def _string(doc: Mapping[str, Any], key: str, where: str, what: str = "") -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"{key} is missing or not a string" + (f" ({what})" if what else ""))
    return value


def _path(value: str) -> str:
    return os.path.abspath(os.path.expanduser(value))
