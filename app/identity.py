"""Who is acting: `SLUICE_USER`, else git's `user.email` (and `user.name`).

`SLUICE_USER` may be a bare email or `Name <email>`.
"""
from __future__ import annotations

import os
import re
from typing import Callable

from app.errors import UsageError
from backends.base import Person

_NAMED = re.compile(r"\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*")
_BARE = re.compile(r"[^<>\s]+@[^<>\s]+")


def current(git_config: Callable[[str], str | None]) -> Person:
    given = os.environ.get("SLUICE_USER")
    if given:
        named = _NAMED.fullmatch(given)
        if named:
            return Person(named.group(1) or named.group(2).split("@")[0], named.group(2))
        if _BARE.fullmatch(given.strip()):
            email = given.strip()
            return Person(git_config("user.name") or email.split("@")[0], email)
        raise UsageError(f"SLUICE_USER={given!r} is not an email address",
                         "set SLUICE_USER=you@example.org or 'Your Name <you@example.org>'")
    email = git_config("user.email")
    if not email or not _BARE.fullmatch(email):
        raise UsageError("sluice does not know who you are",
                         "set SLUICE_USER=you@example.org, or `git config --global user.email you@example.org`")
    return Person(git_config("user.name") or email.split("@")[0], email)
