"""TOML in and out for sluice's config files.

Reading uses the standard library's tomllib (tomli) and turns its errors into
`ConfigError`s that name the file and line. Writing covers only the shapes
sluice stores (strings, booleans, integers, lists of strings, tables and
arrays of tables); strings are escaped with JSON's rules, which TOML's basic
strings share.
"""
from __future__ import annotations

import json
import re
import tomllib
from typing import Any, Mapping

from app.errors import ConfigError

_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def loads(text: str, where: str, hint: str = "") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _LINE.search(message)
        if found:
            where = f"{where}, line {found.group(1)}, column {found.group(2)}"
            message = _LINE.sub("", message).strip()
        elif "(at end of document)" in message:
            where = f"{where}, line {max(1, len(text.splitlines()))} (end of file)"
            message = message.replace("(at end of document)", "").strip()
        raise ConfigError(where, message, hint) from exc


def decode(data: bytes, where: str, hint: str = "") -> tuple[str, dict[str, Any]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(where, "is not UTF-8 text", hint) from exc
    return text, loads(text, where, hint)


def locate(text: str, where: str, pattern: str, occurrence: int = 1) -> str:
    """`where` plus the line of the n-th line matching `pattern` (a regex), for
    errors about values that parsed but make no sense."""
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(pattern, line.strip()):
            seen += 1
            if seen == occurrence:
                return f"{where}, line {number}"
    return where


def key_pattern(key: str) -> str:
    return rf"{re.escape(key)}\s*="


def dumps(doc: Mapping[str, Any], header: str = "") -> str:
    lines = [f"# {line}" for line in header.splitlines()]
    scalars = {k: v for k, v in doc.items() if not isinstance(v, (dict, list)) or _is_str_list(v)}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    for key, value in doc.items():
        if isinstance(value, dict):
            lines += ["", f"[{_key(key)}]"] + [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and not _is_str_list(value):
            for item in value:
                lines += ["", f"[[{_key(key)}]]"] + [f"{_key(k)} = {_value(v)}" for k, v in item.items()]
    return "\n".join(lines).lstrip("\n") + "\n"


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
