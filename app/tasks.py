"""Per-arch tasks, their attempts and the build's artifacts, read off events.

The runner writes one `start` event when it claims a task and one `finish`
event when the attempt ends, each carrying `data.attempt`:

    start:  {"tasks": {arch: "building"},
             "attempt": {"n", "builder", "host", "started", "resultdir"},
             "buildroot": [ids of the builds in the target's buildroot repo]}
    finish: {"tasks": {arch: "built" | "failed" | "failed-to-import" | "queued"},
             "attempt": {... "ended", "exit", "log", "error"},
             "artifacts": [{"name", "arch", "sha256", "size"}],
             "logs": {"build.log": sha256, ...}, "missing": [BuildRequires],
             "installed": [[nevra, repo it came from], ...] (app.provenance)}
    rescue: {"tasks": {arch: "built"}, "artifacts": [...], "logs": {arch: {...}}}
    sign:   {"artifacts": [{"name", "arch", "sha256", "size", "signed_by"}], "key": fingerprint}

Events arrive from other clones, so everything here reads `data` defensively:
a malformed entry is skipped, never trusted. Nothing derived is stored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from app.model import ARCH, FINGERPRINT, SHA256, Op, clean_text

if TYPE_CHECKING:
    from app.lifecycle import BuildView

# What a result file may be called: a plain name, never a path.
RESULT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~^-]{0,254}")


def safe_name(name: str) -> bool:
    return bool(RESULT_NAME.fullmatch(name)) and ".." not in name


@dataclass(frozen=True)
class Artifact:
    name: str
    arch: str
    sha256: str
    size: int
    signed_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "sha256": self.sha256, "size": self.size,
                "signed_by": self.signed_by}


@dataclass(frozen=True)
class Attempt:
    n: int
    builder: str
    host: str
    started: str
    resultdir: str = ""
    ended: str | None = None
    exit: int | None = None
    log: str | None = None  # sha256 of the streamed log
    error: str = ""
    result: str | None = None  # the task state this attempt ended in
    runner: str = ""  # host:pid of the runner that claimed it

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "builder": self.builder, "host": self.host, "started": self.started,
                "ended": self.ended, "exit": self.exit, "log": self.log, "error": self.error,
                "result": self.result, "resultdir": self.resultdir}


def attempts(view: "BuildView") -> dict[str, list[Attempt]]:
    """Every attempt per arch, oldest first, over the build's whole life. An
    attempt a cancel cut short ends with the cancel."""
    found: dict[str, list[Attempt]] = {arch: [] for arch in view.record.arches}
    for stored in view.events:
        event, arch = stored.event, stored.event.arch
        if event.op is Op.CANCEL:
            for runs in found.values():
                if runs and runs[-1].ended is None:
                    runs[-1] = replace(runs[-1], ended=event.at, result="cancelled", error="cancelled")
            continue
        if arch not in found or not isinstance(event.data.get("attempt"), dict):
            continue
        doc = event.data["attempt"]
        if event.op is Op.START:
            found[arch].append(Attempt(_int(doc, "n") or len(found[arch]) + 1, _str(doc, "builder"),
                                       _str(doc, "host"), _str(doc, "started") or event.at, _str(doc, "resultdir"),
                                       runner=_str(doc, "runner")))
        elif event.op is Op.FINISH and found[arch]:
            found[arch][-1] = replace(found[arch][-1], ended=_str(doc, "ended") or event.at,
                                      exit=_int(doc, "exit"), log=_sha(doc.get("log")),
                                      error=clean_text(_str(doc, "error"), 2000),
                                      result=str(event.tasks.get(arch, "")) or None)
    return found


def current_round(view: "BuildView", arch: str) -> int:
    """How many attempts the task has had since the build was last
    (re)submitted: what counts against the runner's limit (in fold order,
    never by comparing clocks of different machines)."""
    return sum(1 for s in _since_last_submit(view) if s.event.op is Op.START and s.event.arch == arch)


STOPPED = ("the runner stopped; queued again", "the runner that claimed it stopped")


def tries(view: "BuildView", arch: str) -> int:
    """The attempts that count against the runner's limit: those of the
    current round, less the ones a stopping runner gave back (their attempt
    says `given_back`)."""
    given_back = sum(1 for s in _since_last_submit(view) if s.event.op is Op.FINISH and s.event.arch == arch
                     and isinstance(s.event.data.get("attempt"), dict)
                     and s.event.data["attempt"].get("given_back") is True)
    return current_round(view, arch) - given_back


def lost_on(view: "BuildView", arch: str) -> set[str]:
    """The builders that lost this task in the current round (try others)."""
    lost = set()
    for stored in _since_last_submit(view):
        event = stored.event
        attempt = event.data.get("attempt")
        if event.op is Op.FINISH and event.arch == arch and event.tasks.get(arch) == "queued" \
                and isinstance(attempt, dict):
            lost.add(_str(attempt, "builder"))
    return lost


def artifacts(view: "BuildView", signed: bool = True) -> list[Artifact]:
    """The SRPM and what the current round's built tasks produced; a `sign`
    event's artifacts (new files: a signature changes the bytes) stand in
    for the unsigned ones of the same name, unless `signed` is False."""
    srpm = view.record.srpm
    found = [Artifact(str(srpm.get("name")), "src", str(srpm.get("sha256")), _int(srpm, "size") or 0)]
    signatures: dict[str, Artifact] = {}
    for stored in _since_last_submit(view):
        if stored.event.op in (Op.FINISH, Op.RESCUE):
            found += parse_artifacts(stored.event.data.get("artifacts"))
        elif stored.event.op is Op.SIGN and signed:
            signatures.update((a.name, a) for a in parse_artifacts(stored.event.data.get("artifacts"))
                              if a.signed_by)
    kept: dict[str, Artifact] = {}
    for artifact in found:  # a noarch package built on two arches is kept once: the first
        kept.setdefault(artifact.name, artifact)
    return [signatures.get(name, artifact) for name, artifact in kept.items()]


def logs(view: "BuildView", arch: str) -> dict[str, str]:
    """The log files of the task's last finished attempt (name -> sha256):
    the tool's own logs and `output`, the stream the build printed."""
    found: dict[str, str] = {}
    for stored in view.events:
        event = stored.event
        if event.op is Op.FINISH and event.arch == arch:
            docs = event.data.get("logs")
            attempt = event.data.get("attempt")
            found = _log_files(docs)
            if isinstance(attempt, dict) and _sha(attempt.get("log")):
                found["output"] = attempt["log"]
        elif event.op is Op.RESCUE and isinstance(event.data.get("logs"), dict) and arch in event.data["logs"]:
            found = {**found, **_log_files(event.data["logs"][arch])}
    return found


def _log_files(docs: Any) -> dict[str, str]:
    if not isinstance(docs, dict):
        return {}
    return {str(k): v for k, v in docs.items() if safe_name(str(k)) and _sha(v)}


def buildroot_of(view: "BuildView") -> dict[str, list[str]]:
    """Per arch, the build ids that were in the buildroot repo when the
    task's last attempt started."""
    found: dict[str, list[str]] = {}
    for stored in view.events:
        event = stored.event
        if event.op is Op.START and event.arch and isinstance(event.data.get("buildroot"), list):
            found[event.arch] = [i for i in event.data["buildroot"] if isinstance(i, str)]
    return found


def installed(view: "BuildView") -> dict[str, list[list[str]]]:
    """Per arch, [nevra, repo] of each package in the buildroot of the task's
    last finished attempt, as its root.log listed them (see app.provenance)."""
    found: dict[str, list[list[str]]] = {}
    for stored in view.events:
        event = stored.event
        if event.op is Op.FINISH and event.arch and isinstance(event.data.get("installed"), list):
            found[event.arch] = [[str(p[0]), str(p[1])] for p in event.data["installed"]
                                 if isinstance(p, list) and len(p) == 2]
    return found


def buildroot_uses(view: "BuildView") -> set[tuple[str, str]]:
    """(arch, build id) for every build in the buildroot of any attempt."""
    return {(stored.event.arch, dep) for stored in view.events
            if stored.event.op is Op.START and stored.event.arch
            and isinstance(stored.event.data.get("buildroot"), list)
            for dep in stored.event.data["buildroot"] if isinstance(dep, str)}


def parse_artifacts(value: Any) -> list[Artifact]:
    if not isinstance(value, list):
        return []
    found = []
    for doc in value:
        if isinstance(doc, dict) and safe_name(str(doc.get("name"))) and _sha(doc.get("sha256")) \
                and isinstance(doc.get("arch"), str) and (ARCH.fullmatch(doc["arch"]) or doc["arch"] == "src"):
            signer = doc.get("signed_by")
            found.append(Artifact(doc["name"], doc["arch"], doc["sha256"], _int(doc, "size") or 0,
                                  signer if isinstance(signer, str) and FINGERPRINT.fullmatch(signer) else None))
    return found


def rpms(view: "BuildView", signed: bool = False) -> list[Artifact]:
    """The binary RPMs of a built build: as built (what its buildroot repo
    gets; every builder machine has these), or as signed (what testing and
    stable get; only the signer's machine has them)."""
    return [a for a in artifacts(view, signed=signed) if a.arch != "src" and a.name.endswith(".rpm")
            and not a.name.endswith(".src.rpm")]


def _since_last_submit(view: "BuildView") -> Iterable:
    events = list(view.events)
    rounds = [n for n, s in enumerate(events) if s.event.op in (Op.SUBMIT, Op.RESUBMIT)]
    return events[rounds[-1]:] if rounds else events


def _str(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    return value if isinstance(value, str) else ""


def _int(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sha(value: Any) -> str | None:
    return value if isinstance(value, str) and SHA256.fullmatch(value) else None
