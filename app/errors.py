"""Every error sluice reports, and the exit code it maps to.

    SluiceError                 1  root: message + what to do next (backends.base)
    ├── BackendError            1  a backend failed: command, status, output (backends.base)
    ├── BadInput                2  a file or value is not what it must be (backends.base)
    │   ├── UsageError          2  bad arguments or a command that cannot run here
    │   ├── NotFound            2  no build (or target, remote) matches
    │   ├── AmbiguousId         2  an id prefix matches several builds
    │   ├── ConfigError         2  a TOML file is malformed: names file and line
    │   └── NotAvailable        2  the command needs a part that has not landed yet
    ├── NotPermitted            3  the policy does not allow this actor to do this
    │   └── HistoryRefused      3  sync: fetched history breaks the policy or was tampered with
    └── StateConflict           4  not allowed in the build's current state
        └── Contested           4  concurrent events disagree: `sluice resolve` first

Messages say what happened; hints say what to do next. The CLI prints
`sluice: error: <message>` then the hint, and exits with `exit_code`.
"""
from __future__ import annotations

from backends.base import BackendError, BadInput, SluiceError

__all__ = ["SluiceError", "BackendError", "BadInput", "UsageError", "NotFound", "AmbiguousId",
           "ConfigError", "NotAvailable", "NotPermitted", "HistoryRefused", "StateConflict",
           "Contested"]


class UsageError(BadInput):
    exit_code = 2


class NotFound(BadInput):
    exit_code = 2


class AmbiguousId(BadInput):
    exit_code = 2


class ConfigError(BadInput):
    """A TOML file could not be used; `where` names the file (and line)."""

    exit_code = 2

    def __init__(self, where: str, problem: str, hint: str = "") -> None:
        super().__init__(f"{where}: {problem}", hint)
        self.where = where


class NotAvailable(BadInput):
    exit_code = 2


class NotPermitted(SluiceError):
    exit_code = 3


class HistoryRefused(NotPermitted):
    """Sync refused what it fetched; `findings` lists every reason, one a line."""

    def __init__(self, message: str, findings: list[str], hint: str = "") -> None:
        super().__init__(message, hint)
        self.findings = findings

    def __str__(self) -> str:
        lines = [self.message, *(f"  {finding}" for finding in self.findings)]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class StateConflict(SluiceError):
    exit_code = 4


class Contested(StateConflict):
    exit_code = 4
