"""Reading builds, the policy and targets out of a snapshot of the state tree.

    builds/<id[:2]>/<id>/build.json
    builds/<id[:2]>/<id>/events/<lamport:08d>-<replica>-<sha8>.json
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Iterator

from app.errors import AmbiguousId, ConfigError, NotFound, UsageError
from app.lifecycle import BuildView, fold
from app.model import HEX_ID, BuildRecord, StoredEvent, decode_event, decode_record
from app.policy import POLICY_PATH, Policy
from app.targets import TARGETS_DIR, Target, target_path
from backends.base import Snapshot

BUILDS = "builds"
_PREFIX = re.compile(r"[0-9a-f]{4,40}")
_EVENT_CACHE = 50_000  # decoded events kept: ~150 MB at most
_VIEW_CACHE = 4096
_views: OrderedDict[str, BuildView] = OrderedDict()
_events: dict[str, StoredEvent] = {}
_policies: dict[str, Policy] = {}
_targets: dict[tuple[str, str], Target] = {}


def build_dir(build_id: str) -> str:
    return f"{BUILDS}/{build_id[:2]}/{build_id}"


def record_path(build_id: str) -> str:
    return f"{build_dir(build_id)}/build.json"


def event_path(build_id: str, event_id: str) -> str:
    return f"{build_dir(build_id)}/events/{event_id}.json"


def load_record(snap: Snapshot, build_id: str) -> BuildRecord | None:
    data = snap.read(record_path(build_id))
    return decode_record(build_id, data) if data is not None else None


def load_events(snap: Snapshot, build_id: str) -> list[StoredEvent]:
    """The build's events."""
    folder = f"{build_dir(build_id)}/events"
    found = (load_event(snap, build_id, name, blob) for name, blob in snap.entries(folder))
    return [stored for stored in found if stored is not None]


def load_event(snap: Snapshot, build_id: str, name: str, blob: str) -> StoredEvent | None:
    """One event file (`name` in the build's events/, stored as `blob`), or
    None if it is no event file. Events never change, so each is decoded once
    per process and remembered by its blob id."""
    if not name.endswith(".json"):
        return None
    stored = _events.get(blob)
    if stored is not None and stored.id == name[:-5]:
        return stored
    data = snap.read(f"{build_dir(build_id)}/events/{name}")
    if data is None:
        return None
    stored = decode_event(name[:-5], data)
    if len(_events) > _EVENT_CACHE:
        _events.clear()
    _events[blob] = stored
    return stored


def load_build(snap: Snapshot, build_id: str) -> BuildView:
    """The build as its events fold, remembered by its directory's tree id
    (any change to the build's files changes that id)."""
    key = snap.object_id(build_dir(build_id))
    view = _views.get(key) if key else None
    if view is not None:
        _views.move_to_end(key)
        return view
    record = load_record(snap, build_id)
    if record is None:
        raise NotFound(f"no build {build_id[:7]}", "see the builds with `sluice list`")
    view = fold(record, load_events(snap, build_id))
    _views[key] = view
    if len(_views) > _VIEW_CACHE:
        _views.popitem(last=False)
    return view


def build_ids(snap: Snapshot) -> Iterator[str]:
    for shard in snap.list(BUILDS):
        for name in snap.list(f"{BUILDS}/{shard}"):
            if HEX_ID.fullmatch(name):
                yield name


def resolve(snap: Snapshot, prefix: str) -> str:
    """The one build id that starts with `prefix`, like git's short ids."""
    prefix = prefix.lower()
    if not _PREFIX.fullmatch(prefix):
        raise UsageError(f"{prefix!r} is not a build id", "give at least 4 hex digits, as `sluice list` shows")
    matches = [name for name in snap.list(f"{BUILDS}/{prefix[:2]}") if name.startswith(prefix)]
    if not matches:
        raise NotFound(f"no build matches {prefix}", "see the builds with `sluice list`")
    if len(matches) > 1:
        shown = ", ".join(f"{m[:10]} {_nvr(snap, m)}" for m in sorted(matches)[:10])
        raise AmbiguousId(f"{prefix} matches {len(matches)} builds: {shown}", "give more digits")
    return matches[0]


def _nvr(snap: Snapshot, build_id: str) -> str:
    try:
        record = load_record(snap, build_id)
    except Exception:  # only for a message; a broken record is reported elsewhere
        return "?"
    return record.nvr if record else "?"


def load_policy(snap: Snapshot) -> Policy:
    """The policy in force in `snap` (parsed once per distinct file content)."""
    blob = snap.object_id(POLICY_PATH)
    if blob is None:
        raise ConfigError(POLICY_PATH, "is missing: this repository has no sluice state",
                          "run `sluice init`, or `sluice sync REMOTE` to join an existing queue")
    if blob not in _policies:
        where = f"{POLICY_PATH} in {(snap.commit or '')[:10]}"
        _policies[blob] = Policy.parse(snap.read(POLICY_PATH) or b"", where)
    return _policies[blob]


def target_names(snap: Snapshot) -> list[str]:
    return sorted(name[:-5] for name in snap.list(TARGETS_DIR) if name.endswith(".toml"))


def load_target(snap: Snapshot, name: str) -> Target:
    path = target_path(name)
    blob = snap.object_id(path)
    if blob is None:
        known = ", ".join(target_names(snap)) or "none"
        raise NotFound(f"no target {name!r} (targets: {known})",
                       "add one with `sluice target add NAME --arch ARCH`")
    key = (name, blob)
    if key not in _targets:
        _targets[key] = Target.parse(name, snap.read(path) or b"", f"{path} in {(snap.commit or '')[:10]}")
    return _targets[key]
