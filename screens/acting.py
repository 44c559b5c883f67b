"""What the screens that act share: how an outcome is reported, and the way
sign and push go (confirm, passphrases, the work in a worker).

Every finished action is a notification and a line of the command log (the
CLI command that does the same, never a passphrase). Sign and push call the
services `sluice sign` and `sluice push` call (`Services.sign`,
`Services.push`); the passphrases, when a key needs one, are asked after the
confirmation, live in one dict for the length of the work, and are cleared
from it when the work is done, whatever its outcome.
"""
from __future__ import annotations

from typing import Sequence

from textual import work

from app.cli import render
from app.cli.transition_cmd import TRANSITIONS
from app.errors import SluiceError
from app.keys import TargetKey
from app.lifecycle import BuildView
from app.model import Op
from screens.dialogs import Confirm, ask_passphrases

VERBS = {op: verb for op, _, verb in TRANSITIONS} | {
    Op.RESOLVE: "resolved", Op.RESCUE: "rescued", Op.SIGN: "signed", Op.PUSH_TESTING: "pushed to testing",
    Op.PUSH_STABLE: "pushed to stable"}
STAGE = {Op.PUSH_TESTING: "testing", Op.PUSH_STABLE: "stable"}


class Acts:
    """Mixed into a Screen; `acted()` is called after every outcome."""

    def report(self, op: Op, command: str, views: Sequence[BuildView] = (), error: SluiceError | None = None,
               said: Sequence[str] = ()) -> None:
        """The outcome, on the UI thread: a notification and the command log."""
        if error is not None:
            self.app.logged(command, f"refused: {error.message}")
            self.notify(error.message + (f"\n{error.hint}" if error.hint else ""), title=f"{op}: refused",
                        severity="error", timeout=8)
        else:
            lines = [render.transition(v, VERBS.get(op, str(op))) for v in views] + list(said)
            self.app.logged(command, "done: " + "; ".join(lines))
            self.notify("\n".join(lines), title=command)
            self.app.poll()
        self.acted()

    def acted(self) -> None:
        """Read again what the action changed."""

    # ------------------------------------------------------------ sign and push

    def release(self, op: Op, ids: Sequence[str], command: str, question: str, locked: Sequence[TargetKey]) -> None:
        """Confirm (default No), ask the passphrases `locked` needs, then do it."""
        def confirmed(yes: bool | None) -> None:
            if yes:
                ask_passphrases(self.app, locked, lambda phrases: phrases is not None and
                                self._release(op, list(ids), command, phrases))
        self.app.push_screen(Confirm(question, f"This is: {command}"), confirmed)

    @work(thread=True, group="act", exit_on_error=False, description="sign or push")
    def _release(self, op: Op, ids: list[str], command: str, phrases: dict[str, str]) -> None:
        s = self.app.services
        said: list[str] = []
        try:
            with s.lock:
                if op is Op.SIGN:
                    views = s.sign(ids, phrases)
                else:
                    views, said = s.push(STAGE[op], ids, phrases)
        except SluiceError as exc:
            self.app.call_from_thread(self.report, op, command, error=exc)
            return
        finally:
            phrases.clear()
        self.app.call_from_thread(self.report, op, command, views, said=said)
