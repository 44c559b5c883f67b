"""What one upstream import did, kept in the state tree and mailed to admins.

Each import run that finds anything new writes one file,
`imports/<target>/<YYYYMMDDTHHMMSSZ>-<hex8>.json`, in the same commit as the
builds it queued: what was queued (with the build id), skipped, replaced
(and by which of our packages) or refused, and why. `git log -- imports/T`
is the target's import history, and the files tell later runs what they
already decided (see `app.upstream_import`). Trusted upstream keys live
beside the targets, `config/keys/<FINGERPRINT>.asc`, so every clone checks
signatures against the same keys.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from app.errors import BadInput
from app.model import FINGERPRINT, NAME, canonical
from app.policy import Policy
from backends.base import Mail, Snapshot

PATH = re.compile(rf"imports/({NAME.pattern})/([0-9]{{8}}T[0-9]{{6}}Z-[0-9a-f]{{8}})\.json")
KEY_PATH = re.compile(rf"config/keys/({FINGERPRINT.pattern})\.asc")
OUTCOMES = ("queued", "skipped", "replaced", "refused")


def record_path(target: str, record_id: str) -> str:
    return f"imports/{target}/{record_id}.json"


def key_path(fingerprint: str) -> str:
    return f"config/keys/{fingerprint}.asc"


@dataclass(frozen=True)
class Outcome:
    nevr: str
    name: str
    outcome: str  # one of OUTCOMES
    reason: str
    checksum: str = ""  # the upstream metadata's checksum of the SRPM
    build: str = ""  # queued: the build's id
    signed_by: str = ""  # queued: the trusted key that signed it
    replaced_by: str = ""  # replaced: our package
    again: str = ""  # refused as the record named here refused it: not recorded or mailed again


@dataclass(frozen=True)
class ImportReport:
    target: str
    url: str
    actor: str
    at: str
    record: str = ""  # the record's id; "" when nothing new was written (or a dry run)
    dry_run: bool = False
    outcomes: tuple[Outcome, ...] = ()
    seen: int = 0  # upstream packages decided by an earlier import or already in the queue
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.outcome == "refused"]

    @property
    def news(self) -> list[Outcome]:
        """What a record keeps: everything but refusals already recorded."""
        return [o for o in self.outcomes if not o.again]

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "url": self.url, "actor": self.actor, "at": self.at,
                "record": self.record or None, "dry_run": self.dry_run, "seen": self.seen,
                "counts": {o: self.count(o) for o in OUTCOMES},
                "packages": [{k: v for k, v in asdict(o).items() if v or k in ("outcome", "reason")}
                             for o in self.outcomes]}

    def encode(self) -> bytes:
        doc = self.to_json()
        doc["packages"] = [p for p, o in zip(doc["packages"], self.outcomes) if not o.again]
        del doc["record"], doc["dry_run"]
        return canonical(doc)

    def summary(self) -> str:
        return ", ".join(f"{self.count(o)} {o}" for o in OUTCOMES)


def parse(path: str, data: bytes) -> dict[str, Any]:
    """A record as written (checked enough to trust its shape)."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or not isinstance(doc.get("packages"), list):
            raise ValueError("no packages")
        for p in doc["packages"]:
            if not (isinstance(p, dict) and isinstance(p.get("nevr"), str) and p.get("outcome") in OUTCOMES):
                raise ValueError("a package without nevr or a known outcome")
        if not isinstance(doc.get("actor"), str):
            raise ValueError("no actor")
    except ValueError as exc:
        raise BadInput(f"{path} is not an import record ({exc})") from exc
    return doc


def earlier(snap: Snapshot, target: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """{nevr: (record id, what the newest record that names it says)} for `target`."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    folder = f"imports/{target}"
    for name in sorted(snap.list(folder)):
        path = f"{folder}/{name}"
        if not PATH.fullmatch(path):
            continue
        for package in parse(path, snap.read(path) or b"")["packages"]:
            found[package["nevr"]] = (name[:-len(".json")], package)
    return found


def compose_mail(report: ImportReport, sender: str, policy: Policy) -> Mail | None:
    """The admins' mail about an import that refused packages (None: no news)."""
    refused = [o for o in report.refused if not o.again]
    if not refused or not report.record:
        return None
    lines = [f"sluice import of {report.url} for target {report.target}, by {report.actor} at {report.at}:",
             f"{report.summary()}.", "", "Refused (not queued):"]
    lines += [f"  {o.nevr}: {o.reason}" for o in refused]
    others = [o for o in report.news if o.outcome != "refused"]
    if others:
        lines += ["", "Also:"] + [f"  {o.nevr}: {o.outcome}, {o.reason}" for o in others]
    lines += ["", f"record:  imports/{report.target}/{report.record}.json in the state tree",
              "next:    a checksum mismatch is usually a mirror caught mid-sync: run the import again later; "
              "an unsigned package or an untrusted key needs the upstream's attention, or, once you have "
              f"checked the key, `sluice target trust {report.target} KEYFILE`. Refused packages are tried "
              "again by every import."]
    headers = {"X-Sluice-Target": report.target, "X-Sluice-Import": report.record,
               "X-Sluice-State": "import-refused"}
    return Mail(sender, tuple(policy.holders("admin")),
                f"[sluice import] {report.target}: {len(refused)} refused from {report.url}",
                "\n".join(lines) + "\n", f"<{report.record}.{report.target}.import@sluice>", headers)


def check_key_file(path: str, data: bytes) -> None:
    if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" not in data or b"PRIVATE KEY" in data:
        raise BadInput(f"{path} is not an ASCII-armoured public key")
