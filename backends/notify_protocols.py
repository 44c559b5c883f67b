"""The notifier interface: one mail, handed to a mail server.

Re-exported by `backends.base`, which is what `app/` imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from backends.base import BackendError


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    message_id: str  # stable per event: a mail sent again after a crash is recognisably the same
    headers: Mapping[str, str] = field(default_factory=dict)


class MailRefused(BackendError):
    """The server refused this mail for good (every recipient, or a 5xx on
    its content): sending it again cannot help, and it must not hold up the
    mails behind it."""


class Notifier(Protocol):
    def send(self, mail: Mail) -> tuple[str, ...]:
        """Hand `mail` to the server; raises BackendError when it is not taken
        at all, returns the recipients refused when it was taken for the rest."""
        ...
