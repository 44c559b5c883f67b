"""Modal screens: confirm (default No), ask why, choose one, the keys of the
screen below, the command log, and a signing key's passphrase.

lazygit's rule: if unsure whether to confirm, confirm. Destructive actions
open `Confirm`, whose focused answer is No, so a stray enter changes nothing.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from rich.markup import escape
from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, OptionList, Static

from app.keys import TargetKey

NAVIGATION = (("j / down, k / up", "move"), ("pgup / pgdn, g / G", "page, first, last"),
              ("enter", "open"), ("esc / q", "back (quit on the queue)"))


class Confirm(ModalScreen[bool]):
    """A yes/no question whose default is No."""

    BINDINGS = [Binding("y", "answer(True)", "yes"), Binding("n,escape,q", "answer(False)", "no")]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            if self.detail:
                yield Static(self.detail, classes="detail")
            with Horizontal(classes="buttons"):
                yield Button("No", id="no", variant="primary")
                yield Button("Yes", id="yes", variant="error")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#no", Button))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class Reason(ModalScreen[str | None]):
    """Ask why (hold and withdraw keep the reason in the event and commit)."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            yield Input(placeholder="why (enter to go on, esc to cancel)", id="reason")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())
        else:
            self.notify("say why: the reason is kept in the event and the commit", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


class Choose(ModalScreen[str | None]):
    """Pick one of a few values (resolve's contending states)."""

    BINDINGS = [Binding("escape,q", "cancel", "cancel")]

    def __init__(self, question: str, choices: Sequence[str]) -> None:
        super().__init__()
        self.question = question
        self.choices = list(choices)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, classes="question")
            yield OptionList(*self.choices, id="choices")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below (as remapped by the config)."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "close")]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        keys = self.app.services.keys
        scope = getattr(self.below, "SCOPE", "queue")
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key in keys.scope(scope):
            table.add_row(escape(key.keys), escape(key.description))
        for keys_text, what in NAVIGATION:
            table.add_row(keys_text, what)
        for key in keys.scope("global"):
            table.add_row(escape(key.keys), escape(key.description))
        with Vertical(classes="dialog wide"):
            yield Static(f"Keys: {getattr(self.below, 'NAME', scope)}  (remap them in \\[keys], docs/config.md)",
                         classes="question")
            with VerticalScroll():
                yield Static(table)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class CommandLogScreen(ModalScreen[None]):
    """Every action the cockpit performed, as the CLI command that does the same."""

    BINDINGS = [Binding("escape,q,at", "close", "close")]

    def __init__(self, logged: Sequence) -> None:
        super().__init__()
        self.logged = logged

    def compose(self) -> ComposeResult:
        if self.logged:
            lines = []
            for item in self.logged:
                when = time.strftime("%H:%M:%S", time.localtime(item.at))
                lines.append(f"[dim]{when}[/]  {escape(item.command)}\n          [dim]{escape(item.outcome)}[/]")
            body = "\n".join(lines)
        else:
            body = "[dim]nothing yet: the cockpit has performed no action in this session[/]"
        with Vertical(classes="dialog wide"):
            yield Static("Command log: the CLI commands equivalent to what the cockpit did",
                         classes="question")
            with VerticalScroll():
                yield Static(body, id="commands")

    def action_close(self) -> None:
        self.dismiss(None)


class _Quiet:
    """A message that names its input but never says what was typed."""

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(input={self.input!r})"

    def __rich_repr__(self):
        yield "input", self.input


class SecretInput(Input):
    """A password field whose messages keep the value out of logs: Textual's
    log (TEXTUAL_LOG, `textual console`) prints every message it dispatches,
    and Input's messages would print what was typed."""

    class Changed(_Quiet, Input.Changed):
        pass

    class Submitted(_Quiet, Input.Submitted):
        pass

    class Blurred(_Quiet, Input.Blurred):
        pass


class Passphrase(ModalScreen[bool]):
    """One signing key's passphrase, in a password field that never echoes.

    The answer is put into `into[fingerprint]` (a dict the caller clears when
    the work is done), never into a message, the screen's result or a log,
    and the field is emptied before the dialog closes."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, key: TargetKey, into: dict[str, str]) -> None:
        super().__init__()
        self.key = key
        self.into = into

    def compose(self) -> ComposeResult:
        uid = self.key.key.uid if self.key.key else ""
        with Vertical(classes="dialog"):
            yield Static(f"The passphrase of target {escape(self.key.target)}'s signing key", classes="question")
            yield Static(f"{escape(uid)}\n{self.key.fingerprint}", classes="detail")
            yield SecretInput(password=True, id="passphrase",
                              placeholder="passphrase (enter to go on, esc to cancel)")

    def on_secret_input_submitted(self, event: SecretInput.Submitted) -> None:
        event.stop()
        box = self.query_one("#passphrase", SecretInput)
        if not box.value:
            self.notify("type the passphrase (esc cancels)", severity="warning")
            return
        self.into[self.key.fingerprint] = box.value
        box.value = ""
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.query_one("#passphrase", SecretInput).value = ""
        self.dismiss(False)


class Phrases(dict):
    """Passphrases by key fingerprint; its repr (in a worker's description,
    a log line, a traceback) says how many, never what they are."""

    def __repr__(self) -> str:
        return f"<{len(self)} passphrase{'s' if len(self) != 1 else ''}>"

    __str__ = __repr__


def ask_passphrases(app, keys: Sequence[TargetKey], then: Callable[[dict[str, str] | None], object]) -> None:
    """Ask each key's passphrase in turn, then `then(phrases)`; `then(None)`
    when one is cancelled (and nothing typed is kept)."""
    phrases = Phrases()

    def ask(n: int) -> None:
        if n == len(keys):
            then(phrases)
            return
        app.push_screen(Passphrase(keys[n], phrases), lambda given: ask(n + 1) if given else cancelled())

    def cancelled() -> None:
        phrases.clear()
        then(None)
    ask(0)
