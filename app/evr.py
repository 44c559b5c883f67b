"""rpm's version order, so that stable never goes back to an older NEVR.

A copy of rpm's `rpmvercmp` (lib/rpmvercmp.c): the domain must not load the
rpm bindings to compare two strings (backends/remote/rpmbuild_helper.py has
the same for the builder hosts, which run without sluice installed).
"""
from __future__ import annotations

import re
from itertools import zip_longest

_SEGMENT = re.compile(r"[0-9]+|[A-Za-z]+|~|\^")


def rpmvercmp(a: str, b: str) -> int:
    for x, y in zip_longest(_SEGMENT.findall(a), _SEGMENT.findall(b)):
        if x == y:
            continue
        if "~" in (x, y):  # a tilde sorts before everything, even the end
            return -1 if x == "~" else 1
        if "^" in (x, y) and None not in (x, y):  # a caret: after the end, before the rest
            return -1 if x == "^" else 1
        if None in (x, y):  # the longer one is newer
            return -1 if x is None else 1
        if x.isdigit() != y.isdigit():  # a number is newer than letters
            return 1 if x.isdigit() else -1
        if x.isdigit():
            x, y = x.lstrip("0"), y.lstrip("0")
            if len(x) != len(y):
                return 1 if len(x) > len(y) else -1
        if x != y:
            return 1 if x > y else -1
    return 0


def compare(a: tuple[int | None, str, str], b: tuple[int | None, str, str]) -> int:
    """-1, 0 or 1 as (epoch, version, release) `a` is older, the same or newer."""
    if (a[0] or 0) != (b[0] or 0):
        return 1 if (a[0] or 0) > (b[0] or 0) else -1
    return rpmvercmp(a[1], b[1]) or rpmvercmp(a[2], b[2])
