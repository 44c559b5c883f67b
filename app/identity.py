"""Who is acting: `SLUICE_USER`, else git's `user.email` (and `user.name`),
else `login@fqdn` with a warning every time, so a fresh machine still works.

`SLUICE_USER` may be a bare email or `Name <email>`.
"""
from __future__ import annotations

import getpass
import os
import re
import socket
from typing import Callable

from app.errors import UsageError
from backends.base import Person

_NAMED = re.compile(r"\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*")
_BARE = re.compile(r"[^<>\s]+@[^<>\s]+")


def current(git_config: Callable[[str], str | None], warn: Callable[[str], None] = lambda _: None) -> Person:
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
    if email and _BARE.fullmatch(email):
        return Person(git_config("user.name") or email.split("@")[0], email)
    if email:
        raise UsageError(f"git's user.email {email!r} is not an email address",
                         "set SLUICE_USER=you@example.org, or fix `git config --global user.email`")
    try:
        login = getpass.getuser()
    except (KeyError, OSError) as exc:  # no passwd entry and no USER/LOGNAME (some containers)
        raise UsageError("cannot tell who you are: no SLUICE_USER, no git user.email and no login name",
                         "set SLUICE_USER=you@example.org") from exc
    guessed = f"{login}@{socket.getfqdn()}"
    warn(f"acting as {guessed}; set SLUICE_USER=you@example.org or "
         "`git config --global user.email you@example.org` to be known by your address")
    return Person(login, guessed)
