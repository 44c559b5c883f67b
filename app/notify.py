"""Mail about builds: who hears what, and an outbox that loses nothing.

A build that reaches failed, failed-to-import, needsign, testing, stable or
withdrawn is worth a mail to its owner and to the watchers and admins the
policy names for its package. The machine that writes the event writes the
mail: into the outbox first (`<git dir>/sluice/outbox/`, one JSON file per
event, named by the event id so it is never queued twice), then sends what
the outbox holds. A mail the server does not take stays there and is sent
by the next sluice command that writes, or by `sluice run` every minute; a
sent mail moves to `outbox/sent/` and is never sent again. Should sluice die
between the server taking a mail and the move, the mail goes once more with
the same Message-ID, which mail clients fold into one.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterable

from app import tasks
from app.config import LocalConfig
from app.errors import ConfigError, SluiceError
from app.lifecycle import BuildView
from app.model import State, parse_timestamp
from app.policy import Policy
from backends.base import Mail, MailRefused, Notifier, write_atomic

NEWS = {State.FAILED: "failed", State.FAILED_TO_IMPORT: "failed to import", State.NEEDSIGN: "waiting for signature",
        State.TESTING: "pushed to testing", State.STABLE: "pushed to stable", State.WITHDRAWN: "withdrawn"}
KEEP_SENT = 30 * 86400  # seconds a sent mail's record is kept
RETRY_EVERY = 60.0  # seconds between the runner's tries of what waits


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    user: str = ""
    password_file: str = ""
    announce: str = ""  # the list that advisories are announced to

    @classmethod
    def load(cls, config: LocalConfig) -> "SmtpSettings | None":
        """`[smtp]` of the local config, or None: no mail without one."""
        table = config.get("smtp")
        if table is None:
            return None
        where = f"{config.path}: [smtp]"
        known = {"host": str, "sender": str, "port": int, "starttls": bool, "user": str, "password_file": str,
                 "announce": str}
        if not isinstance(table, dict):
            raise ConfigError(where, "[smtp] must be a table", "fix [smtp] in the local config (docs/config.md, `[smtp]`)")
        for key, value in table.items():
            if key not in known:
                raise ConfigError(where, f"unknown setting {key!r}; settings are {', '.join(known)}",
                                  "a password goes in a file named by password_file, never in the config")
            if not isinstance(value, known[key]) or isinstance(value, bool) is not (known[key] is bool):
                raise ConfigError(where, f"{key} must be a {known[key].__name__}", "fix [smtp] in the local config (docs/config.md, `[smtp]`)")
        for key in ("host", "sender"):
            if not table.get(key):
                raise ConfigError(where, f"{key} is required", "fix [smtp] in the local config (docs/config.md, `[smtp]`)")
        if table.get("user") and not table.get("password_file"):
            raise ConfigError(where, "user needs password_file (a file holding the password)", "fix [smtp] in the local config (docs/config.md, `[smtp]`)")
        port = table.get("port", 587 if table.get("starttls") else 25)
        if "announce" in table and "@" not in table["announce"]:
            raise ConfigError(where, f"announce = {table['announce']!r} is not a mail address",
                              'name the list advisories go to, e.g. announce = "updates@example.org"')
        return cls(table["host"], table["sender"], port, table.get("starttls", False), table.get("user", ""),
                   os.path.expanduser(table.get("password_file", "")), table.get("announce", ""))


def recipients(view: BuildView, policy: Policy) -> tuple[str, ...]:
    package = view.record.package
    found = [view.record.owner, *policy.holders("watcher", package), *policy.holders("admin", package)]
    return tuple(dict.fromkeys(found))


def compose(before: BuildView, after: BuildView, event_id: str, sender: str, policy: Policy) -> Mail | None:
    """The mail for a build's state change, or None when it is no news."""
    state = after.state
    if state == before.state or state not in NEWS:
        return None
    r = after.record
    attempts = tasks.attempts(after)
    last = {arch: runs[-1] for arch, runs in attempts.items() if runs}
    lines = [f"{r.nevr} ({r.short}) for {r.target}: {NEWS[state]}", "",
             f"build:     {r.id}", f"package:   {r.package}  owner: {r.owner}",
             "arches:    " + ", ".join(f"{arch} {task}" for arch, task in after.tasks.items()),
             f"state:     {before.state} -> {state}"]
    took = _duration(last.values())
    if took:
        lines.append(f"duration:  {took}")
    if last:
        lines.append("builders:  " + ", ".join(f"{arch} on {a.builder} ({a.host})" for arch, a in last.items()))
        lines.append("logs:      " + "; ".join(f"sluice log {r.short} --arch {arch}" for arch in last))
    reason = after.events[-1].event.reason if after.events else ""
    if reason:
        lines += ["", "why:", *("  " + line for line in reason.splitlines()[-40:])]
    lines += ["", "next: " + _next(after)]
    headers = {"X-Sluice-Build": r.id, "X-Sluice-State": str(state), "X-Sluice-Target": r.target,
               "X-Sluice-Package": r.package, "X-Sluice-Owner": r.owner}
    return Mail(sender, recipients(after, policy), f"[sluice {r.short}] {r.nvr} for {r.target}: {state}",
                "\n".join(lines) + "\n", f"<{event_id}.{r.id}@sluice>", headers)


def announcement_mail(advisory_id: str, target: str, kind: str, severity: str, title: str, text: str,
                      sender: str, to: str) -> Mail:
    """An advisory's announcement as a mail to the announce list."""
    headers = {"X-Sluice-Advisory": advisory_id, "X-Sluice-Target": target, "X-Sluice-Advisory-Type": kind}
    if severity:
        headers["X-Sluice-Severity"] = severity
    return Mail(sender, (to,), f"[{advisory_id}] {title}", text, f"<{advisory_id}.{target}.advisory@sluice>",
                headers)


def _next(view: BuildView) -> str:
    short = view.record.short
    return {State.FAILED: f"read the log, fix the package and submit a new release, or `sluice resubmit {short}` "
                          "if the builder was at fault",
            State.FAILED_TO_IMPORT: f"the build succeeded but its results were not imported: `sluice rescue {short}` "
                                    "fetches them again (no rebuild)",
            State.NEEDSIGN: f"a signer runs `sluice sign {short}`",
            State.TESTING: f"test it from the testing repo; a tester runs `sluice mark-tested {short}`",
            State.STABLE: "it is in the stable repo; nothing more to do",
            State.WITHDRAWN: "it left the repos it was in; submit a fixed build when it is ready"}[view.state]


def _duration(attempts: Iterable[tasks.Attempt]) -> str:
    spans = [(parse_timestamp(a.started), parse_timestamp(a.ended)) for a in attempts if a.ended]
    spans = [(s, e) for s, e in spans if s is not None and e is not None]
    if not spans:
        return ""
    seconds = int(max(e for _, e in spans) - min(s for s, _ in spans))
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Outbox:
    """Mails waiting to be sent, one file each, and a record of those sent."""

    def __init__(self, folder: str) -> None:
        self.folder, self.sent = folder, os.path.join(folder, "sent")

    def put(self, key: str, mail: Mail) -> None:
        os.makedirs(self.sent, exist_ok=True)
        name = f"{key}.json"
        if any(os.path.exists(os.path.join(where, name)) for where in (self.folder, self.sent)):
            return
        write_atomic(os.path.join(self.folder, name), json.dumps(asdict(mail), sort_keys=True).encode(), 0o600)

    def pending(self) -> list[str]:
        try:
            names = [n for n in os.listdir(self.folder) if n.endswith(".json") and not n.startswith(".")]
        except FileNotFoundError:
            return []
        return sorted(names, key=lambda n: os.stat(os.path.join(self.folder, n)).st_mtime_ns)

    def flush(self, notifier: Notifier, note: Callable[[str], None], sender: str) -> int:
        """Send what waits, oldest first, from the sender configured now (a
        refused sender, once fixed, fixes the mails that waited); stop at the
        first failure (the server is down or refusing: the rest would fail
        alike). Returns how many were sent."""
        if not self.pending():
            return 0
        os.makedirs(self.sent, exist_ok=True)
        sent = 0
        with open(os.path.join(self.folder, ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two sluice processes never send the same mail
            for name in self.pending():
                path = os.path.join(self.folder, name)
                try:
                    with open(path, encoding="utf-8") as f:
                        mail = replace(_mail(json.load(f)), sender=sender)
                except (OSError, ValueError, TypeError) as exc:
                    note(f"warning: mail {path} is damaged ({exc}); moved aside to {path}.damaged")
                    os.replace(path, path + ".damaged")
                    continue
                try:
                    refused = notifier.send(mail)
                except MailRefused as exc:
                    note(f"mail {mail.subject!r} refused for good, kept in {path}.refused: {exc}")
                    os.replace(path, path + ".refused")
                    continue
                except SluiceError as exc:
                    note(f"mail not sent, {len(self.pending())} waiting in {self.folder}: {exc}")
                    break
                os.replace(path, os.path.join(self.sent, name))
                sent += 1
                if refused:
                    note(f"mail {mail.subject!r}: the server refused {', '.join(refused)}")
        self._prune()
        return sent

    def _prune(self) -> None:
        limit = time.time() - KEEP_SENT
        for name in os.listdir(self.sent):
            path = os.path.join(self.sent, name)
            if os.stat(path).st_mtime < limit:
                os.unlink(path)


def _mail(doc: dict[str, Any]) -> Mail:
    return Mail(str(doc["sender"]), tuple(map(str, doc["recipients"])), str(doc["subject"]), str(doc["body"]),
                str(doc["message_id"]), {str(k): str(v) for k, v in dict(doc.get("headers", {})).items()})


class Mailer:
    """The queue's listener: a mail into the outbox for each state change
    worth one, then the outbox sent."""

    def __init__(self, outbox: Outbox, notifier: Notifier, sender: str, policy: Callable[[], Policy],
                 note: Callable[[str], None]) -> None:
        self.outbox, self.notifier, self.sender, self.policy, self.note = outbox, notifier, sender, policy, note
        self._tried = 0.0

    def __call__(self, changes: list[tuple[BuildView, BuildView, str]]) -> None:
        try:
            self._queue(changes)
        except Exception as exc:  # the event is written: a mail problem must never fail the command
            self.note(f"warning: no mail for this change: {exc}")

    def _queue(self, changes: list[tuple[BuildView, BuildView, str]]) -> None:
        mails = []
        policy = self.policy()
        for before, after, event_id in changes:
            mail = compose(before, after, event_id, self.sender, policy)
            if mail is not None:
                mails.append((event_id, mail))
        for event_id, mail in mails:
            self.outbox.put(event_id, mail)
        if mails or time.monotonic() - self._tried > RETRY_EVERY:
            self.flush()

    def flush(self) -> None:
        self._tried = time.monotonic()
        try:
            self.outbox.flush(self.notifier, self.note, self.sender)
        except OSError as exc:  # the outbox folder itself: say it, never fail the command that wrote the event
            self.note(f"warning: the mail outbox {self.outbox.folder} cannot be used: {exc}")

    def housekeeping(self) -> None:
        """For a long-running process: send what waits, once a minute."""
        if time.monotonic() - self._tried > RETRY_EVERY and self.outbox.pending():
            self.flush()
