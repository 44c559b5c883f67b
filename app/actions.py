"""Every maintainer action as one value.

The CLI parses argv into an `Action`, the TUI builds one from a key press, and
`Queue.perform` executes it; `argv()` turns it back into the equivalent CLI
command so the TUI can show what it did.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from app.errors import UsageError
from app.model import Op, State

# The CLI words for each op a person performs (runner ops have none).
COMMANDS: dict[Op, tuple[str, ...]] = {
    Op.CANCEL: ("cancel",), Op.RESUBMIT: ("resubmit",), Op.RESCUE: ("rescue",),
    Op.APPROVE: ("approve",), Op.HOLD: ("hold",), Op.UNHOLD: ("unhold",),
    Op.WITHDRAW: ("withdraw",), Op.SIGN: ("sign",), Op.PUSH_TESTING: ("push", "testing"),
    Op.MARK_TESTED: ("mark-tested",), Op.PUSH_STABLE: ("push", "stable"), Op.RESOLVE: ("resolve",),
}
NEEDS_REASON = frozenset({Op.HOLD, Op.WITHDRAW})
# Ops that take something away or release something for good: the CLI and
# the cockpit ask first, and the answer they offer is No.
DESTRUCTIVE = frozenset({Op.CANCEL, Op.WITHDRAW, Op.SIGN, Op.PUSH_TESTING, Op.PUSH_STABLE})


@dataclass(frozen=True)
class Action:
    op: Op
    build: str  # an id or any unique prefix
    reason: str = ""
    to: State | None = None  # resolve only

    def __post_init__(self) -> None:
        if self.op in NEEDS_REASON and not self.reason.strip():
            raise UsageError(f"{self.op} needs a reason", f"say why with -m: sluice {self.op} ID -m WHY")
        if (self.op is Op.RESOLVE) != (self.to is not None):
            raise UsageError("only resolve takes --to STATE" if self.to else "resolve needs --to STATE")

    def argv(self) -> list[str]:
        words = ["sluice", *COMMANDS[self.op], self.build[:7]]
        if self.to is not None:
            words += ["--to", str(self.to)]
        if self.reason:
            words += ["-m", self.reason]
        return words

    def command(self) -> str:
        return shlex.join(self.argv())


def command_for(op: Op, builds: list[str]) -> str:
    """The one CLI command acting on several builds (`sluice sign A B C`),
    for the ops whose command takes several ids (sign, push)."""
    return shlex.join(["sluice", *COMMANDS[op], *(b[:7] for b in builds)])
