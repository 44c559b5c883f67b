"""What the upstream import does with each package: the target's `[import]`.

    [import]
    kernel = "skip"                   # never from upstream
    "python3-*" = "rebuild"           # the default for every package
    openssl = "replace openssl-ours"  # we ship our own; say which

A package name matches an exact key first, else the first glob (in the
file's order) that matches it; nothing matching means `rebuild`.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Mapping

from app.errors import UsageError

REBUILD, SKIP, REPLACE = "rebuild", "skip", "replace"
_RULE = re.compile(r"(rebuild|skip)|replace\s+([A-Za-z0-9._+-]{1,64})")
_GLOB = re.compile(r"[A-Za-z0-9._+*?\[\]!-]{1,64}")


@dataclass(frozen=True)
class Decision:
    action: str  # rebuild, skip or replace
    rule: str  # the key that decided it, "" for the default
    replacement: str = ""  # for replace: our package that replaces it


def check(rules: Mapping[str, str]) -> None:
    for glob, rule in rules.items():
        if not isinstance(glob, str) or not _GLOB.fullmatch(glob):
            raise UsageError(f"[import] key {glob!r} is not a package name or glob",
                             "use a name like openssl or a glob like python3-*")
        if not isinstance(rule, str) or not _RULE.fullmatch(rule.strip()):
            raise UsageError(f"[import] {glob} = {rule!r} is not a rule",
                             'use "rebuild", "skip" or "replace OUR-PACKAGE"')


def decide(rules: Mapping[str, str], package: str) -> Decision:
    if package in rules:
        return _decision(package, rules[package])
    for glob, rule in rules.items():
        if fnmatch.fnmatchcase(package, glob):
            return _decision(glob, rule)
    return Decision(REBUILD, "")


def _decision(glob: str, rule: str) -> Decision:
    match = _RULE.fullmatch(rule.strip())
    if match.group(1):
        return Decision(match.group(1), glob)
    return Decision(REPLACE, glob, match.group(2))
