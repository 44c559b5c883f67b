"""Values of the domain: build states, ops, events and build records.

Events and build records are stored as canonical JSON in the state tree and
arrive from other clones, so their readers check every field and raise
`BadInput` on anything an honest sluice would not have written.
"""
from __future__ import annotations

import calendar
import enum
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from backends.base import BadInput


class State(enum.StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    FAILED = "failed"
    FAILED_TO_IMPORT = "failed-to-import"
    CANCELLED = "cancelled"
    BUILT = "built"
    HELD = "held"
    WITHDRAWN = "withdrawn"
    NEEDSIGN = "needsign"
    SIGNED = "signed"
    TESTING = "testing"
    TESTED = "tested"
    STABLE = "stable"
    SUPERSEDED = "superseded"


class Op(enum.StrEnum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    RESUBMIT = "resubmit"
    START = "start"
    FINISH = "finish"
    RESCUE = "rescue"
    APPROVE = "approve"
    HOLD = "hold"
    UNHOLD = "unhold"
    WITHDRAW = "withdraw"
    SIGN = "sign"
    PUSH_TESTING = "push-testing"
    MARK_TESTED = "mark-tested"
    PUSH_STABLE = "push-stable"
    SUPERSEDE = "supersede"
    RESOLVE = "resolve"


_STATES = frozenset(str(s) for s in State)
HEX_ID = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")  # an OpenPGP v4 or v5 key
REPLICA = re.compile(r"[0-9a-z]{4,32}")
EVENT_ID = re.compile(r"(\d{8})-([0-9a-z]{4,32})-([0-9a-f]{8})")
ARCH = re.compile(r"[A-Za-z0-9_]{1,32}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
MAX_TEXT = 64 * 1024


def timestamp(now: float | None = None) -> str:
    """UTC with milliseconds, so that builds sort newest first even within a second."""
    t = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def parse_timestamp(stamp: Any) -> float | None:
    """Seconds since the epoch of a `timestamp()` (whole seconds), or None."""
    try:
        return float(calendar.timegm(time.strptime(str(stamp)[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def canonical(obj: Any) -> bytes:
    """The one JSON encoding sluice writes: sorted keys, compact, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class Event:
    op: Op
    src: State | None
    dst: State
    actor: str
    replica: str
    lamport: int
    prev: tuple[str, ...]
    at: str
    reason: str = ""
    arch: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"op": str(self.op), "from": self.src and str(self.src),
                               "to": str(self.dst), "actor": self.actor, "replica": self.replica,
                               "lamport": self.lamport, "prev": list(self.prev), "at": self.at,
                               "reason": self.reason, "data": dict(self.data)}
        if self.arch is not None:
            doc["arch"] = self.arch
        return doc

    def encode(self) -> tuple[str, bytes]:
        """The event's id (its file name without .json) and its bytes."""
        body = canonical(self.to_json())
        sha8 = hashlib.sha256(body).hexdigest()[:8]
        return f"{self.lamport:08d}-{self.replica}-{sha8}", body

    @property
    def tasks(self) -> Mapping[str, str]:
        return self.data.get("tasks", {})


@dataclass(frozen=True)
class StoredEvent:
    """An event together with the id it is stored under."""

    id: str
    event: Event

    @cached_property
    def key(self) -> tuple[int, str, str]:
        """The deterministic fold order: (lamport, replica, hash)."""
        lamport, replica, sha8 = EVENT_ID.fullmatch(self.id).groups()
        return int(lamport), replica, sha8


def decode_event(event_id: str, body: bytes) -> StoredEvent:
    """Read one stored event, refusing anything malformed or mislabelled."""
    match = EVENT_ID.fullmatch(event_id)
    if not match:
        raise BadInput(f"event file name {event_id!r} is not <lamport>-<replica>-<hash>")
    if hashlib.sha256(body).hexdigest()[:8] != match.group(3):
        raise BadInput(f"event {event_id} does not match its hash (modified after it was written)")
    doc = _load_object(body, f"event {event_id}")
    try:
        event = Event(
            op=Op(_typed(doc, "op", str)),
            src=State(doc["from"]) if doc.get("from") is not None else None,
            dst=State(_typed(doc, "to", str)),
            actor=_text(doc, "actor", 320),
            replica=_typed(doc, "replica", str),
            lamport=_typed(doc, "lamport", int),
            prev=tuple(_id_list(doc.get("prev"))),
            at=_text(doc, "at", 64),
            reason=_text(doc, "reason", MAX_TEXT, required=False),
            arch=_arch(doc.get("arch")),
            data=_typed(doc, "data", dict),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise BadInput(f"event {event_id} is malformed: {exc}") from exc
    if event.lamport != int(match.group(1)) or event.replica != match.group(2):
        raise BadInput(f"event {event_id}: lamport or replica differs from its file name")
    if set(doc) - {"op", "from", "to", "actor", "replica", "lamport", "prev", "at", "reason", "data", "arch"}:
        raise BadInput(f"event {event_id} has unknown fields")
    _check_tasks(event_id, event.data.get("tasks", {}))
    return StoredEvent(event_id, event)


@dataclass(frozen=True)
class BuildRecord:
    """The immutable submission record, `builds/<id[:2]>/<id>/build.json`."""

    id: str
    package: str
    epoch: int | None
    version: str
    release: str
    target: str
    arches: tuple[str, ...]
    owner: str
    created: str
    srpm: Mapping[str, Any]
    buildrequires: tuple[str, ...] = ()
    scratch: bool = False
    batch: str | None = None
    after: str | None = None

    @property
    def nvr(self) -> str:
        return f"{self.package}-{self.version}-{self.release}"

    @property
    def nevr(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        return f"{self.package}-{epoch}{self.version}-{self.release}"

    @property
    def short(self) -> str:
        return self.id[:7]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "package": self.package, "epoch": self.epoch,
                "version": self.version, "release": self.release, "nvr": self.nvr,
                "target": self.target, "arches": list(self.arches), "owner": self.owner,
                "created": self.created, "srpm": dict(self.srpm),
                "buildrequires": list(self.buildrequires), "scratch": self.scratch,
                "batch": self.batch, "after": self.after}


def decode_record(build_id: str, body: bytes) -> BuildRecord:
    doc = _load_object(body, f"build {build_id}")
    try:
        record = BuildRecord(
            id=_typed(doc, "id", str), package=_text(doc, "package", 256),
            epoch=doc.get("epoch") if isinstance(doc.get("epoch"), int) else None,
            version=_text(doc, "version", 256), release=_text(doc, "release", 256),
            target=_typed(doc, "target", str), arches=tuple(_arch(a) for a in doc["arches"]),
            owner=_text(doc, "owner", 320), created=_text(doc, "created", 64),
            srpm=_typed(doc, "srpm", dict),
            buildrequires=tuple(str(r) for r in doc.get("buildrequires", [])),
            scratch=bool(doc.get("scratch", False)), batch=doc.get("batch"), after=doc.get("after"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise BadInput(f"build record {build_id} is malformed: {exc}") from exc
    if record.id != build_id or not NAME.fullmatch(record.target):
        raise BadInput(f"build record {build_id} names another id or a bad target")
    if record.batch is not None and not (isinstance(record.batch, str) and NAME.fullmatch(record.batch)):
        raise BadInput(f"build record {build_id} has a bad batch name")
    if record.after is not None and not (isinstance(record.after, str) and HEX_ID.fullmatch(record.after)):
        raise BadInput(f"build record {build_id} has a bad --after id")
    return record


def _load_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadInput(f"{what} is not a JSON object")
    return doc


def _typed(doc: Mapping[str, Any], key: str, kind: type) -> Any:
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key} must be {kind.__name__}")
    return value


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Text from a build or a host, fit for an event (and for a terminal):
    line ends made plain, other control characters (escapes) replaced."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("?", text)[-limit:]


def _text(doc: Mapping[str, Any], key: str, limit: int, required: bool = True) -> str:
    value = doc.get(key, None if required else "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise ValueError(f"{key} must be a string of 1..{limit} characters")
    if _CONTROL.search(value):
        raise ValueError(f"{key} holds control characters")
    return value


def _id_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and EVENT_ID.fullmatch(v) for v in value):
        raise ValueError("prev must be a list of event ids")
    return value


def _arch(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not ARCH.fullmatch(value):
        raise ValueError(f"bad arch {value!r}")
    return value


def _check_tasks(event_id: str, tasks: Any) -> None:
    if not isinstance(tasks, dict) or not all(
            isinstance(a, str) and ARCH.fullmatch(a) and s in _STATES for a, s in tasks.items()):
        raise BadInput(f"event {event_id} has malformed task states")
